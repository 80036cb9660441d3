"""One reading of a gateway: what the catalog turns into metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pyenphase.models.envoy import EnvoyData

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


def grid_status(data: EnvoyData) -> GridStatus | None:
    """Read the grid status from the Enpower relay or the IQ Meter Collar.

    ``mains_oper_state`` is the relay's real position; ``Enpwr_grid_mode`` lags during an
    outage and is deliberately ignored.
    """
    if data.enpower is not None and data.enpower.mains_oper_state:
        state = data.enpower.mains_oper_state.lower()
        if state == "closed":
            return GridStatus.ON_GRID
        if state == "open":
            return GridStatus.OFF_GRID
    if data.collar is not None and data.collar.grid_state:
        state = data.collar.grid_state.lower().replace("-", "_")
        if state == "on_grid":
            return GridStatus.ON_GRID
        if state == "off_grid":
            return GridStatus.OFF_GRID
    return None
