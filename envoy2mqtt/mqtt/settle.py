"""From raw readings to the values worth believing: counter integrity, clamping, debounce,
a battery state that holds and a runway smoothed over minutes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from envoy2mqtt.catalog.derived import RUNWAY_CAP_MIN
from envoy2mqtt.catalog.metric import Reading
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.changes import CounterGuard, Debouncer
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.core.steady import (
    BATTERY_BAND_W,
    BATTERY_DWELL_S,
    RUNWAY_TAU_S,
    BatteryState,
    Runway,
)
from envoy2mqtt.core.zones import local_to


@dataclass(slots=True)
class Settler:
    """Turns one gateway's readings into the values to publish, with memory between them."""

    grid_debounce: int = 2
    clamp_negative_production: bool = True
    battery_dwell: float = BATTERY_DWELL_S
    battery_band: float = BATTERY_BAND_W
    runway_tau: float = RUNWAY_TAU_S
    counters: CounterGuard = field(default_factory=CounterGuard)
    debounce: Debouncer = field(init=False)
    _day: str | None = None
    _held: dict[str, Value] = field(default_factory=dict)  # debounced values as believed
    _states: dict[str, BatteryState] = field(default_factory=dict)
    _runways: dict[str, Runway] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.debounce = Debouncer(reads=self.grid_debounce)

    def settle(
        self,
        readings: Mapping[str, Reading],
        roles: Roles,
        taken_at: datetime,
        *,
        fresh_reads: bool = True,
        vouched: bool = False,
        zone: tzinfo | None = None,
    ) -> dict[str, Value]:
        """The values to publish for these readings.

        `fresh_reads`: the readings hold a new reading of the debounced values (the debounce
        counts readings, not snapshots: other lanes re-publish the same reading). `vouched`:
        that new reading needs no confirming read (see `Debouncer.feed`).
        """
        # "today" counters reset at the gateway's midnight, in the zone it states (else TZ)
        day = local_to(zone, taken_at).date().isoformat()
        day_changed = self._day is not None and day != self._day
        self._day = day
        now = taken_at.timestamp()
        out: dict[str, Value] = {}
        for path, reading in readings.items():
            value = reading.value
            if isinstance(value, int | float):
                if path in roles.clamped and self.clamp_negative_production and value < 0:
                    value = 0
                daily = roles.counters.get(path)
                if daily is not None:
                    value = self.counters.check(path, value, daily=daily, day_changed=day_changed)
            if path in roles.debounced:
                if fresh_reads or path not in self._held:
                    vouch = vouched and fresh_reads
                    self._held[path] = self.debounce.feed(path, value, vouched=vouch)
                value = self._held[path]
            elif (load_path := roles.smoothed.get(path)) is not None:
                load = _number(readings, load_path)
                if isinstance(value, int | float):
                    value = self._runway(path).feed(value, load, now)
            elif (power := roles.held.get(path)) is not None:
                watts = _number(readings, power)
                if watts is not None:
                    value = self._state(path).feed(watts, now)
            out[path] = value
        return out

    def _state(self, path: str) -> BatteryState:
        if (state := self._states.get(path)) is None:
            state = self._states[path] = BatteryState(self.battery_dwell, self.battery_band)
        return state

    def _runway(self, path: str) -> Runway:
        if (runway := self._runways.get(path)) is None:
            runway = self._runways[path] = Runway(self.runway_tau, RUNWAY_CAP_MIN)
        return runway

    def unconfirmed(self, roles: Roles) -> bool:
        """A changed debounced value was read and awaits its confirming read."""
        return any(self.debounce.pending(path) for path in roles.debounced)


def _number(readings: Mapping[str, Reading], path: str) -> float | None:
    value = readings[path].value if path in readings else None
    return value if isinstance(value, int | float) else None
