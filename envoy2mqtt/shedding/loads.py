"""LOADS_FILE (or LOADS, inline JSON): the loads to shed, declared once, checked at start-up.

Every mistake is reported on a line of its own, naming the load and the setting, so one run
shows them all. What passes becomes the frozen dataclasses of `plan`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings
from envoy2mqtt.shedding.plan import Feedback, Load, Plan, Switch
from envoy2mqtt.shedding.policy import Rule

__all__ = ["Feedback", "Load", "Plan", "Switch", "read_plan"]

NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED: Final = frozenset({"armed", "dry_run", "sync"})  # topics of the stage itself
SOC_GAP: Final = 10.0  # restore_above_soc unless given: this many points above the shed one
RUNWAY_GAP: Final = 1.5  # restore_above_runway_min unless given: this many times the shed one
_TOPIC_BAD: Final = re.compile(r"[+#\x00-\x1f]")
_QUOTE: Final = 'YAML reads ON, OFF, yes and no as true/false: quote it, e.g. "OFF"'


# -- the file's shape (pydantic, at the boundary only) --------------------------------------

Topic = Annotated[str, Field(min_length=1, max_length=1024)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class SwitchModel(_Model):
    """`off:` / `on:` of a load."""

    topic: Topic
    payload: str  # a JSON object in the file is sent as compact JSON
    qos: Literal[0, 1, 2] = 1

    @field_validator("topic")
    @classmethod
    def _publishable(cls, value: str) -> str:
        if value != value.strip() or _TOPIC_BAD.search(value):
            raise ValueError("an MQTT topic to publish to: no '+', '#', spaces around it")
        return value

    @field_validator("payload", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(_QUOTE)  # noqa: TRY004 - a message for the user, not a type bug
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return value

    def switch(self) -> Switch:
        """The command as the actor sends it."""
        return Switch(self.topic, self.payload, self.qos)


class StateModel(_Model):
    """`state:` of a load: its own state topic and the words it uses."""

    topic: Topic
    on: str
    off: str
    field: str | None = None

    @field_validator("on", "off", mode="before")
    @classmethod
    def _not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(_QUOTE)  # noqa: TRY004 - a message for the user, not a type bug
        return value


class LoadModel(_Model):
    """One entry of `loads:`."""

    name: Annotated[str, Field(pattern=NAME.pattern)]
    tier: Annotated[int, Field(ge=1, le=9)]
    off: SwitchModel
    on: SwitchModel
    watts: Annotated[float, Field(ge=0, le=1_000_000)] = 0.0
    shed_below_soc: Annotated[float, Field(gt=0, le=100)] | None = None
    restore_above_soc: Annotated[float, Field(gt=0, le=100)] | None = None
    shed_below_runway_min: Annotated[float, Field(gt=0, le=10_080)] | None = None
    restore_above_runway_min: Annotated[float, Field(gt=0, le=100_000)] | None = None
    min_off: Annotated[float, Field(ge=0, le=86_400)] = 0.0
    state: StateModel | None = None

    def mistakes(self) -> list[str]:
        """What is wrong beyond each field's own type and range."""
        out = []
        soc, runway = self.shed_below_soc, self.shed_below_runway_min
        if self.name in RESERVED:
            out.append(f"name: {self.name!r} is taken by the shedding topics; choose another")
        if self.tier == 1 and (soc is not None or runway is not None):
            out.append("tier 1 sheds the moment the grid fails: shed_below_* is for tiers 2 and up")
        if self.tier > 1 and soc is None and runway is None:
            out.append(
                f"tier {self.tier}: give shed_below_soc or shed_below_runway_min "
                "(tier 1 is the tier shed with the grid)"
            )
        for shed, restore, what in (
            (soc, self.restore_above_soc, "soc"),
            (runway, self.restore_above_runway_min, "runway_min"),
        ):
            if restore is not None and shed is None:
                out.append(f"restore_above_{what} without shed_below_{what}")
            elif restore is not None and shed is not None and restore <= shed:
                out.append(f"restore_above_{what} must be above shed_below_{what} ({shed:g})")
        return out

    def load(self) -> Load:
        """The validated load."""
        soc, runway = self.shed_below_soc, self.shed_below_runway_min
        rule = Rule(
            name=self.name,
            tier=self.tier,
            shed_below_soc=soc,
            restore_above_soc=self.restore_above_soc or _restore_soc(soc),
            shed_below_runway=runway,
            restore_above_runway=self.restore_above_runway_min or _restore_runway(runway),
            watts=self.watts,
            min_off=self.min_off,
        )
        state = self.state
        feedback = Feedback(state.topic, state.on, state.off, state.field) if state else None
        return Load(rule, self.off.switch(), self.on.switch(), feedback)


def _restore_soc(shed: float | None) -> float | None:
    """The default restore threshold of a charge rule: SOC_GAP points up (100 at most)."""
    return None if shed is None else min(shed + SOC_GAP, 100.0)


def _restore_runway(shed: float | None) -> float | None:
    """The default restore threshold of a runway rule: RUNWAY_GAP times the shed one."""
    return None if shed is None else shed * RUNWAY_GAP


_FIELDS: Final = ", ".join(LoadModel.model_fields)


def read_plan(settings: Settings, gateways: Sequence[GatewaySettings]) -> Plan | None:
    """The loads configured by LOADS_FILE or LOADS (None without either); ConfigError lists
    every mistake, one per line."""
    source, raw = _raw(settings)
    if source is None:
        return None
    lines: list[str] = []
    loads = _loads(raw, lines)
    gateway = raw.get("gateway") if isinstance(raw, dict) else None
    if isinstance(raw, dict):
        lines += [f"{key}: unknown setting (loads, gateway)" for key in raw if key not in _TOP]
    if gateway is not None and not isinstance(gateway, str | int):
        lines.append("gateway: the serial, name or host of one gateway")
    elif gateway is None and len(gateways) > 1:
        lines.append(
            f"gateway: missing: {len(gateways)} gateways are configured; name the one whose "
            "grid sheds these loads (its serial, name or host)"
        )
    if lines:
        raise ConfigError("\n".join(f"{source}: {line}" for line in lines))
    return Plan(
        loads=tuple(loads),
        gateway=None if gateway is None else str(gateway),
        restore_after=settings.restore_after,
        stagger=settings.restore_stagger,
        dry_run=settings.shedding_dry_run,
    )


_TOP: Final = frozenset({"loads", "gateway"})


def _raw(settings: Settings) -> tuple[str | None, object]:
    """Which setting holds the loads, and what it holds (parsed, not yet checked)."""
    if settings.loads is not None and settings.loads_file is not None:
        raise ConfigError("LOADS and LOADS_FILE: set one of them, not both")
    if settings.loads is not None:
        try:
            return "LOADS", json.loads(settings.loads)
        except ValueError as err:
            raise ConfigError(f"LOADS: not valid JSON: {err}") from None
    if settings.loads_file is None:
        return None, None
    return "LOADS_FILE", _read_file(settings.loads_file)


def _read_file(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"LOADS_FILE: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"LOADS_FILE: {path} is not valid YAML: {detail}") from None


def _loads(raw: object, lines: list[str]) -> list[Load]:
    """Each entry of `loads:` checked; its mistakes appended to `lines`."""
    entries = raw.get("loads") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        lines.append("must hold `loads:`, a non-empty list of loads (see the README)")
        return []
    out: list[Load] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        label = f"load #{index + 1}"
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            label += f" ({name})"
            if name in names:
                lines.append(f"{label}: name: another load is called {name!r}")
            names.add(name)
        try:
            model = LoadModel.model_validate(_on_off_keys(entry))
        except ValidationError as err:
            lines += [f"{label}: {line}" for line in _describe(err)]
            continue
        lines += [f"{label}: {line}" for line in model.mistakes()]
        out.append(model.load())
    return out


def _on_off_keys(entry: object) -> object:
    """YAML reads the keys `on:` and `off:` as true and false: give them their names back."""
    if not isinstance(entry, Mapping):
        return entry
    words = {True: "on", False: "off"}
    return {
        words.get(key, key) if isinstance(key, bool) else key: _on_off_keys(value)
        for key, value in entry.items()
    }


def _describe(err: ValidationError) -> list[str]:
    """One line per error: the setting's path and what is wrong (never the value given)."""
    lines = []
    for error in err.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "missing"
        elif error["type"] == "extra_forbidden":
            message = f"unknown setting (a load has: {_FIELDS})"
        elif error["type"] == "string_pattern_mismatch":
            message = "letters, digits, '-' and '_' only (it is a topic level)"
        elif error["type"] == "model_type":
            message = "expected a mapping of settings"
        lines.append(f"{location}: {message}" if location else message)
    return _unique(lines)


def _unique(lines: list[str]) -> list[str]:
    """Without repeats: a union type reports one mistake once per member."""
    return list(dict.fromkeys(lines))
