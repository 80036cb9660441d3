"""How a setting's value is read from text (lists, a Home Assistant release), where state lives
by default, and the one line for a value a settings source could not read at all."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Final, NamedTuple

from pydantic import BeforeValidator
from pydantic_settings import NoDecode, SettingsError

_FIELD_IN_SOURCE_ERROR = re.compile(r'field "(\w+)"')
_RELEASE: Final = re.compile(r"(\d{4})\.(\d{1,2})(?:\.\d+)?")


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


class HaRelease(NamedTuple):
    """A Home Assistant release, year and month (2024.11), ordered as releases are."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> HaRelease:
        """`"2024.11"` or `"2024.11.3"` -> HaRelease(2024, 11); ValueError for anything else.

        The one reading of a release, for HA_COMPAT and the schema evidence alike: a year, a
        month 1-12 and optionally a patch number; no pre-release (`2024.11.0b1`: not one to
        support), no fourth part.
        """
        found = _RELEASE.fullmatch(text.strip())
        if found is None or not 1 <= int(found.group(2)) <= 12:
            raise ValueError(f"not a Home Assistant release: {text!r} (e.g. 2024.11)")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year}.{self.month}"


def read_release(value: object) -> object:
    """A release setting's text as a `HaRelease` (any other value is left to pydantic)."""
    return HaRelease.parse(value) if isinstance(value, str) else value


OLDEST_HA: Final = HaRelease(2024, 1)  # the oldest release the discovery payloads suit

# A release in the text a user writes (`2024.11`), never JSON (which would read it as a float).
HaReleaseText = Annotated[HaRelease, NoDecode, BeforeValidator(read_release)]


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
