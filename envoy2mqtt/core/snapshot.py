"""One reading of a gateway: what the catalog turns into metrics."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from pyenphase.models.envoy import EnvoyData
from pyenphase.models.tariff import EnvoyStorageMode

log = logging.getLogger(__name__)

Value = int | float | str
"""A published value: a number in SI units or a plain word."""


class GridStatus(StrEnum):
    """Whether the site is connected to the utility grid."""

    ON_GRID = "on-grid"
    OFF_GRID = "off-grid"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayInfo:
    """What a gateway says about itself; static between restarts."""

    serial: str
    firmware: str
    part_number: str | None = None
    model: str = "Envoy"
    metered: bool = False
    phase_count: int = 1
    phase_mode: str | None = None
    ct_meters: tuple[str, ...] = ()
    timezone: str | None = None  # the zone the gateway states in /home, e.g. "US/Central"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthStatus:
    """What the bridge knows about its credentials (never the secret itself)."""

    method: str  # "token", "digest" or "none"
    token_expires_at: datetime | None = None
    token_type: str | None = None
    last_success: datetime | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The newest data from every polling lane of one gateway, merged.

    ``data`` is pyenphase's own model of the gateway: the bridge builds on it rather than
    re-parsing the gateway's JSON. The fast lanes overlay their fresher readings on it.
    """

    gateway: GatewayInfo
    data: EnvoyData
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    auth: AuthStatus | None = None
    derived: dict[str, float] = field(default_factory=dict)
    # the grid as read straight from the relay or collar before the probe has told what the
    # gateway has (`data` knows no System Controller yet): the grid watch from the start
    grid: GridStatus | None = None


KNOWN_RELAY_STATES: Final = frozenset({"closed", "open", "open synchronizing", "open synchronized"})
"""Relay states seen in the field (D8.3.6086 islands as `open synchronizing`, then
`open synchronized`, and never reads plain `open`)."""
KNOWN_COLLAR_STATES: Final = frozenset({"on_grid", "off_grid"})
STORAGE_MODES: Final = tuple(
    mode.value for mode in EnvoyStorageMode if mode is not EnvoyStorageMode.LEGACY_SAVINGS
)
"""The battery profiles a gateway reports and takes (`economy` is the app's "savings")."""
SCHEDULE_PATH: Final = "/ivp/sc/sched"
"""What the battery controller runs (firmware D8.3, whose tariff file is a stale copy)."""
GENERATOR_MODES: Final = ("off", "on", "auto")
"""The modes of a generator's dry contact, as read and as written."""
# the words a mode is written in, by gateways and the Enphase app, spelled as `_words` makes them
_MODE_WORDS: Final = {
    "backup": "backup",
    "full backup": "backup",
    "self consumption": "self-consumption",
    "economy": "economy",
    "savings": "economy",
    "savings mode": "economy",
    "cost savings": "economy",
}
_YES: Final = frozenset({"true", "yes", "on", "1", "enabled", "allowed"})
_NO: Final = frozenset({"false", "no", "off", "0", "disabled", "not allowed"})
_ON: Final = frozenset({"closed", "close", "on", "ongrid"})
_OFF: Final = frozenset({"open", "off", "offgrid"})
_reported: set[str] = set()  # unknown states already logged: once per process, not per read


@dataclass(frozen=True, slots=True)
class StorageSchedule:
    """What /ivp/sc/sched says the battery controller runs: its mode and charge from grid."""

    mode: str  # one of STORAGE_MODES where known, else the gateway's own word
    charge_from_grid: bool | None  # None where the answer does not say it plainly


def storage_schedule(answer: object) -> StorageSchedule | None:
    """An /ivp/sc/sched answer read; None where it is not one (no usable "Battery Mode").

    The one parser of the schedule: the polling lanes publish from it, the controls confirm
    their writes from it.
    """
    if not isinstance(answer, dict):
        return None
    mode = answer.get("Battery Mode")
    if not isinstance(mode, str) or not mode.strip():
        return None
    return StorageSchedule(storage_mode(mode), _allowed(answer.get("Charge From Grid Allowed")))


def storage_mode(mode: str) -> str:
    """A battery mode as one of STORAGE_MODES (`Self Consumption`, `Full Backup`, `Savings`
    and the like); a mode never seen before is logged once and kept as the gateway says it."""
    known = _MODE_WORDS.get(_words(mode))
    if known is not None:
        return known
    kept = " ".join(mode.split())
    if kept not in _reported:
        _reported.add(kept)
        log.warning(
            "battery mode %r not seen before: published as reported (not one of %s)",
            kept,
            ", ".join(STORAGE_MODES),
        )
    return kept


def _allowed(flag: object) -> bool | None:
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, int) and flag in (0, 1):
        return bool(flag)
    word = _words(flag) if isinstance(flag, str) else None
    return True if word in _YES else False if word in _NO else None


def _words(text: str) -> str:
    """Lower case, `-` and `_` as spaces, single spaces: how spellings are compared."""
    return " ".join(text.lower().replace("-", " ").replace("_", " ").split())


def grid_status(data: EnvoyData) -> GridStatus | None:
    """Read the grid status from the Enpower relay or the IQ Meter Collar.

    ``mains_oper_state`` is the relay's real position; ``Enpwr_grid_mode`` lags during an
    outage and is deliberately ignored.
    """
    if data.enpower is not None and data.enpower.mains_oper_state:
        status = relay_status(data.enpower.mains_oper_state)
        if status is not None:
            return status
    if data.collar is not None and data.collar.grid_state:
        return collar_status(data.collar.grid_state)
    return None


def relay_status(state: str) -> GridStatus | None:
    """The grid status a relay state means: `closed` on grid, anything `open ...` off grid.

    A state never seen before is logged once and decided by its first word.
    """
    text = " ".join(state.lower().split())
    words = text.replace("-", " ").replace("_", " ").split()
    status = _meaning(words[0]) if words else None
    _report(text, status, KNOWN_RELAY_STATES, "grid relay")
    return status


def collar_status(state: str) -> GridStatus | None:
    """The grid status the IQ Meter Collar's `grid_state` means (`on_grid`, `off_grid`).

    Spelling varies (`on-grid`, `Off Grid`, `multimode-ongrid`): `on grid` / `ongrid` is on,
    `off grid` / `offgrid` off, wherever it stands; a state never seen before is logged once.
    """
    text = " ".join(state.lower().split())
    words = text.replace("-", " ").replace("_", " ").split()
    joined = [a + b for a, b in itertools.pairwise(words) if b == "grid"]
    found = [word for word in joined + words if word in ("ongrid", "offgrid")]
    status = _meaning(found[0]) if found else None
    _report(text, status, KNOWN_COLLAR_STATES, "IQ Meter Collar grid")
    return status


def _meaning(word: str) -> GridStatus | None:
    if word in _ON:
        return GridStatus.ON_GRID
    if word in _OFF:
        return GridStatus.OFF_GRID
    return None


def _report(state: str, status: GridStatus | None, known: frozenset[str], what: str) -> None:
    if state in known or state in _reported:
        return
    _reported.add(state)
    log.warning(
        "%s state %r not seen before: published as reported, read as %s",
        what,
        state,
        status.value if status is not None else "no grid status",
    )
