"""Commands in, answers out: the command topics and payloads read into typed values (enum,
range and type checks, the rate limit), and what the bridge says back on
`<base>/<serial>/response` (and the `control` event of a revert). Pure: no I/O, no clock of
its own.

A message is `<base>/<serial>/set` with a JSON object
(`{"battery_mode": "backup", "reserve_soc": 30, "transaction": "t1"}`), or
`<base>/<serial>/set/<control>` with one plain value (`backup`, `30`, `on`, or JSON
`{"value": 30, "transaction": "t1"}`); a device's controls live under its path
(`<base>/<serial>/dry_contact/NC1/set`, `.../dry_contact/NC1/set/mode`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeGuard

from envoy2mqtt.core.events import Event
from envoy2mqtt.core.snapshot import Value

Transaction = str | int | None
SET: Final = "set"
TRANSACTION: Final = "transaction"
SAME_NUMBER: Final = 0.05  # a reserve of 30 reads back as 30.0: the same setting
# A response repeats at most this many characters of a name, value or transaction it was sent,
# and says why in at most MESSAGE: an answer stays well under a kilobyte whatever came in (Home
# Assistant's answers sensor keeps it as attributes; its recorder drops those over 16 KB).
ECHO: Final = 64
MESSAGE: Final = 512
BAD_TRANSACTION: Final = (
    f"transaction: expected a string or a whole number of at most {ECHO} characters"
)


class Invalid(ValueError):
    """A value a control does not take; the message says what it takes."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _shown(raw: object) -> str:
    if isinstance(raw, str | int | float | bool) or raw is None:
        return _clip(json.dumps(raw), ECHO)
    return "{...}"


def _echo(raw: object) -> object:
    """A value sent, as a response repeats it: itself if short, else the start of its text."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return str(raw)  # NaN is not JSON: Home Assistant would drop the whole answer
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return raw if len(text) <= ECHO else _clip(text, ECHO)


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words (a select)."""

    options: tuple[str, ...]

    def parse(self, raw: object) -> str:
        """The option `raw` names (case does not matter)."""
        if isinstance(raw, str) and raw.strip().lower() in self.options:
            return raw.strip().lower()
        raise Invalid(f"{_shown(raw)} is not one of {', '.join(self.options)}")


@dataclass(frozen=True, slots=True)
class Whole:
    """A whole number within bounds (a number entity), e.g. a percentage."""

    low: int
    high: int
    unit: str = "%"

    def parse(self, raw: object) -> int:
        """The number `raw` gives (a number, or a number as text)."""
        number: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise Invalid(f"expected a number, got {_shown(raw)}")
        if not number.is_integer():
            raise Invalid(f"expected a whole number, got {_shown(raw)}")
        if not self.low <= number <= self.high:
            raise Invalid(f"{int(number)} is out of range {self.low}-{self.high}")
        return int(number)


@dataclass(frozen=True, slots=True)
class Switch:
    """On or off (a switch): `on`/`off`, `true`/`false`, `1`/`0`, a JSON boolean, and any
    words of its own (a relay's `closed`/`open`); read as `words` (on, off)."""

    words: tuple[str, str] = ("on", "off")
    on: tuple[str, ...] = ()
    off: tuple[str, ...] = ()

    def parse(self, raw: object) -> str:
        """`words[0]` for on, `words[1]` for off."""
        if isinstance(raw, bool):
            return self.words[0] if raw else self.words[1]
        word = str(raw).strip().lower() if isinstance(raw, str | int) else None
        if word in ("on", "true", "1", self.words[0], *self.on):
            return self.words[0]
        if word in ("off", "false", "0", self.words[1], *self.off):
            return self.words[1]
        raise Invalid(f"expected {self.words[0]} or {self.words[1]}, got {_shown(raw)}")


RELAY: Final = Switch(words=("closed", "open"), on=("close",))  # a dry contact's position
GRID: Final = Switch(on=("closed", "close"), off=("open",))  # the grid relay: on = on grid


Kind = Choice | Whole | Switch


@dataclass(frozen=True, slots=True)
class Message:
    """One command message: (control path, raw value) pairs, its transaction, or an error."""

    items: tuple[tuple[str, object], ...] = ()
    transaction: Transaction = None
    error: str | None = None


def parse_message(suffix: str, payload: bytes) -> Message:
    """Read a command from its topic below `<base>/<serial>/` and its payload."""
    parts = suffix.split("/")
    if parts[-1] == SET and len(parts) in (1, 3):
        prefix = "/".join(parts[:-1])
        return _json_object(prefix, payload)
    if len(parts) in (2, 4) and parts[-2] == SET and parts[-1]:
        path = "/".join([*parts[:-2], parts[-1]])
        return _plain(path, payload)
    return Message(error=f"not a command topic: {suffix}")


def _json_object(prefix: str, payload: bytes) -> Message:
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return Message(error='expected a JSON object, e.g. {"battery_mode": "backup"}')
    transaction = document.pop(TRANSACTION, None)
    if not _is_transaction(transaction):
        return Message(error=BAD_TRANSACTION)
    if not document:
        return Message(transaction=transaction, error="no control in the message")
    items = tuple((f"{prefix}/{key}" if prefix else str(key), raw) for key, raw in document.items())
    return Message(items, transaction)


def _plain(path: str, payload: bytes) -> Message:
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        document: object = json.loads(text)
    except ValueError:
        document = text  # a bare word: backup, on, closed
    if not isinstance(document, dict):
        return Message(((path, document),))
    transaction = document.get(TRANSACTION)
    if not _is_transaction(transaction):
        return Message(error=BAD_TRANSACTION)
    if "value" not in document:
        return Message(transaction=transaction, error='expected {"value": ...}')
    return Message(((path, document["value"]),), transaction)


def _is_transaction(value: object) -> TypeGuard[Transaction]:
    if value is None:
        return True
    return isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) <= ECHO


def same_value(actual: Value | None, requested: Value) -> bool:
    """Whether a value read back is the one that was asked for."""
    if isinstance(actual, int | float) and isinstance(requested, int | float):
        return abs(actual - requested) < SAME_NUMBER
    return actual is not None and str(actual).lower() == str(requested).lower()


@dataclass(slots=True)
class RateLimit:
    """At most one write of each control per `interval` seconds; the rest are dropped."""

    interval: float
    _last: dict[str, float] = field(default_factory=dict)

    def wait(self, path: str, now: float) -> float:
        """0 when a write of `path` may go now (and it is counted); else seconds to wait."""
        last = self._last.get(path)
        if last is not None and now - last < self.interval:
            return self.interval - (now - last)
        self._last[path] = now
        return 0.0


REVERTED = "reverted"
CONTROL_EVENT = "control"


class Status(StrEnum):
    """How a command ended."""

    PENDING = "pending"  # taken, on its way: the final answer follows (within `within` s)
    OK = "ok"  # written, and read back as asked
    IGNORED = "ignored"  # taken (200) but the battery controller / relay kept its old value
    ERROR = "error"  # not written (invalid, not available, rate limited, refused, failed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """One control's outcome, published as JSON on `<base>/<serial>/response`."""

    status: Status
    control: str | None  # the command path; None when the message named none readable
    at: datetime
    requested: object = None
    actual: Value | None = None
    transaction: Transaction = None
    message: str | None = None  # why, in words (errors and ignored writes)
    reassert: bool = False  # the bridge wrote a reverted setting once more (CONTROL_REASSERT)
    via: str | None = None  # how it was written: local (the gateway) or enlighten (the cloud)
    within: float | None = None  # pending: seconds until the final answer at the latest

    def to_json(self, serial: str) -> str:
        """The response's wire form."""
        body: dict[str, object] = {
            "status": self.status.value,
            "gateway": serial,
            "control": None if self.control is None else _clip(self.control, ECHO),
            "requested": _echo(self.requested),
            "actual": self.actual,
            "transaction": self.transaction,
            "at": self.at.isoformat(timespec="milliseconds"),
        }
        if self.message:
            body["message"] = _clip(self.message, MESSAGE)
        if self.reassert:
            body["reassert"] = True
        if self.via:
            body["via"] = self.via
        if self.within is not None:
            body["within"] = round(self.within, 1)
        return json.dumps(body, separators=(",", ":"), default=str)


def reverted(
    control: str, requested: Value, actual: Value, at: datetime, transaction: Transaction
) -> Event:
    """The `control` event of a value that went back after it was read back as asked."""
    extra: dict[str, Value] = {"control": control, "status": REVERTED}
    if transaction is not None:
        extra["transaction"] = transaction
    return Event(CONTROL_EVENT, requested, actual, at, extra=extra)
