"""How a setting's value is read from text, where state lives by default, and the one line
for a value a settings source could not read at all."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode, SettingsError

_FIELD_IN_SOURCE_ERROR = re.compile(r'field "(\w+)"')


def split_list(value: object) -> object:
    """A list setting's text as its items: `20,10` (what .env.example shows) or `[20, 10]`."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("expected a JSON list such as [20, 10], or 20,10") from None
    return [part.strip() for part in text.split(",") if part.strip()]


# A list of plain values in any form: pydantic-settings would otherwise insist on JSON in the
# environment and .env (and fail there with a traceback), while a flag gave the comma form.
IntList = Annotated[list[int], NoDecode, BeforeValidator(split_list)]


def default_state_dir() -> Path:
    """Where state lives unless STATE_DIR says: the XDG state folder, never the working folder.

    `run` and `health` must agree from any directory; the Docker image and the add-on set
    STATE_DIR=/data themselves.
    """
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "envoy2mqtt"
    try:
        return Path.home() / ".local" / "state" / "envoy2mqtt"
    except RuntimeError:  # no home directory at all (a bare service user)
        return Path("state").absolute()


def describe_source_error(err: SettingsError) -> str:
    """One line naming the setting a source could not decode, and why (never its value)."""
    found = _FIELD_IN_SOURCE_ERROR.search(str(err))
    name = found.group(1).upper() if found else "settings"
    return f"{name}: cannot be read ({_reason(err)})"


def _reason(err: SettingsError) -> str:
    """What the source said about the value, without the value itself."""
    cause = err.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return f"not valid JSON: {cause.msg}"
    return type(cause).__name__ if cause is not None else "invalid"
