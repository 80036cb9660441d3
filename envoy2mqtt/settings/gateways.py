"""One gateway's settings (GATEWAYS / GATEWAYS_FILE entries), polling cadence, and the
helpers that turn a bad value into one line naming the setting."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and says what is wrong."""


# Each interval's bounds, once: the flat settings and a gateway's own `cadence` share them.
FastInterval = Annotated[float, Field(ge=0.2, le=60)]
GridConfirmDelay = Annotated[float, Field(ge=0.05, le=10)]
BatteryInterval = Annotated[float, Field(ge=1, le=300)]
PollInterval = Annotated[float, Field(ge=5, le=3600)]
InverterInterval = Annotated[float, Field(ge=30, le=3600)]
QuietInterval = Annotated[float, Field(ge=1, le=600)]


class Cadence(BaseModel):
    """How often each polling lane reads a gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fast: FastInterval = 1.0
    # a changed grid status is read again this soon, not a whole fast interval later
    grid_confirm: GridConfirmDelay = 0.15
    battery: BatteryInterval = 5.0
    normal: PollInterval = 60.0
    inverters: InverterInterval = 300.0
    quiet_start: time | None = time(22, 58)
    quiet_end: time | None = time(23, 6)
    quiet_fast: QuietInterval = 10.0


class GatewaySettings(BaseModel):
    """One gateway: where it is and how to authenticate to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Annotated[str, Field(min_length=1)]
    name: str | None = None
    serial: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    cadence: Cadence = Cadence()

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        value = value.strip()
        if "://" in value or "/" in value:
            raise ValueError("give a host name or address (optionally :port), not a URL")
        return value


def parse_quiet_window(value: str) -> tuple[time | None, time | None]:
    """Parse "HH:MM-HH:MM" (or "off"/empty) into a start and end time."""
    value = value.strip().lower()
    if value in ("", "off", "none", "disabled"):
        return None, None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not match:
        raise ValueError("expected HH:MM-HH:MM or 'off'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        return time(h1, m1), time(h2, m2)
    except ValueError as err:
        raise ValueError(f"expected HH:MM-HH:MM or 'off' ({err})") from None


def inherit_cadence(gateway: GatewaySettings, flat: Cadence) -> GatewaySettings:
    """The gateway with the cadence fields its entry did not set taken from `flat`."""
    if "cadence" not in gateway.model_fields_set:
        return gateway.model_copy(update={"cadence": flat})
    own = gateway.cadence.model_dump(include=gateway.cadence.model_fields_set)
    return gateway.model_copy(update={"cadence": flat.model_copy(update=own)})


def read_gateways_file(path: Path) -> list[GatewaySettings]:
    """The gateways a GATEWAYS_FILE lists (YAML), each checked; one line per mistake."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"GATEWAYS_FILE: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"GATEWAYS_FILE: {path} is not valid YAML: {err}") from None
    entries = raw.get("gateways") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"GATEWAYS_FILE: {path} must hold a non-empty list of gateways")
    gateways = []
    for index, entry in enumerate(entries):
        try:
            gateways.append(GatewaySettings.model_validate(entry))
        except ValidationError as err:
            detail = describe_error(err, prefix="")
            raise ValueError(f"GATEWAYS_FILE: gateway #{index + 1}: {detail}") from None
    return gateways


def describe_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad setting and what is wrong with it (never its value)."""
    first = err.errors(include_input=False, include_url=False)[0]
    location = "_".join(str(part) for part in first["loc"] if not isinstance(part, int))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "missing"
    if not location:
        return message
    return f"{(prefix + location).upper()}: {message}"
