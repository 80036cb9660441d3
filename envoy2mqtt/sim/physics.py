"""A small solar house: sun, clouds, load noise, a battery, and the grid that balances them.

The gateway's own arithmetic holds on every sample: the house is fed by PV, battery and
grid (house = production + battery + net), and what the gateway calls total consumption is
production + net, so it counts battery charging as consumption and discharging against it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from .storage import Battery, StorageSettings

DAY: Final = 86_400.0
CLOUD_GAP_S: Final = 300.0  # mean clear spell between clouds
CLOUD_S: Final = (20.0, 240.0)
CLOUD_DEPTH: Final = (0.25, 0.8)
# the mean of the cloud factor over a day, for the "today" and 7-day counters' history
_CLOUDED: Final = sum(CLOUD_S) / 2 / (CLOUD_GAP_S + sum(CLOUD_S) / 2)
CLOUD_MEAN: Final = 1.0 - _CLOUDED * (1.0 - sum(CLOUD_DEPTH) / 2)
SUN_HOURS: Final = 24.0 / math.pi  # a clear day's production over its peak power, in hours
MIN_LOAD_W: Final = 50.0


@dataclass(frozen=True, slots=True)
class PowerSample:
    """Power flows at one instant, in watts."""

    production_w: float  # metered PV; a few watts negative at night (inverter standby)
    inverters_w: float  # microinverter AC output, never negative
    house_w: float  # what the house itself uses, battery not included
    battery_w: float  # positive = discharging into the house
    net_w: float  # positive = importing from the grid; 0 off grid

    @property
    def consumption_w(self) -> float:
        """The gateway's total consumption: production plus net."""
        return self.production_w + self.net_w


def daylight(now: float, utc_offset_s: float) -> float:
    """0 at night, rising to 1 at local solar noon (06:00-18:00 day)."""
    hour = ((now + utc_offset_s) % DAY) / 3600.0
    if not 6.0 < hour < 18.0:
        return 0.0
    return math.sin(math.pi * (hour - 6.0) / 12.0)


def sun_hours(start: float, end: float, utc_offset_s: float) -> float:
    """The integral of `daylight` from `start` to `end`, in hours."""

    def since_epoch(t: float) -> float:
        days, seconds = divmod(t + utc_offset_s, DAY)
        hour = min(max(seconds / 3600.0 - 6.0, 0.0), 12.0)
        return days * SUN_HOURS + SUN_HOURS / 2 * (1.0 - math.cos(math.pi * hour / 12.0))

    return since_epoch(end) - since_epoch(start)


class Physics:
    """Steps power forward in time; all randomness comes from one seeded RNG."""

    def __init__(
        self,
        *,
        peak_w: float,
        base_load_w: float,
        battery: Battery | None,
        utc_offset_s: float,
        rng: random.Random,
    ) -> None:
        """Describe the house; nothing moves until the first `step`."""
        self.peak_w = peak_w
        self.base_load_w = base_load_w
        self.battery = battery
        self.utc_offset_s = utc_offset_s
        self._rng = rng
        self._last: tuple[float, PowerSample] | None = None
        self._cloud = (math.inf, math.inf, 1.0)  # start, end, depth of the next cloud
        self._inputs: tuple[bool, StorageSettings, float | None] | None = None

    def step(self, now: float, *, grid_on: bool, settings: StorageSettings) -> PowerSample:
        """Charge the battery with the previous sample up to `now`; return the new one.

        At the same instant the previous sample stands, unless the grid or the storage
        settings changed since: then the house is resampled with nothing integrated.
        """
        inputs = (grid_on, settings, self.battery.override_w if self.battery else None)
        if self._last is not None:
            then, previous = self._last
            if now < then or (now == then and inputs == self._inputs):
                return previous
            if self.battery is not None:
                self.battery.integrate(previous.battery_w, now - then)
        self._inputs = inputs
        sample = self._sample(now, grid_on=grid_on, settings=settings)
        self._last = (now, sample)
        return sample

    def expected_production_wh(self, start: float, end: float) -> float:
        """What an average day's weather would produce between two instants."""
        return self.peak_w * CLOUD_MEAN * sun_hours(start, end, self.utc_offset_s)

    def _sample(self, now: float, *, grid_on: bool, settings: StorageSettings) -> PowerSample:
        sun = daylight(now, self.utc_offset_s)
        if sun > 0.0:
            jitter = 1.0 + self._rng.gauss(0.0, 0.01)
            production = self.peak_w * sun * self._clouds(now) * jitter
        else:
            production = -self._rng.uniform(1.0, 5.0)
        house = max(MIN_LOAD_W, self.base_load_w * (1.0 + self._rng.gauss(0.0, 0.05)))
        if not grid_on:
            return self._island(production, house)
        battery = 0.0
        if self.battery is not None:
            battery = self.battery.on_grid(production - house, settings)
        return PowerSample(
            production, max(production, 0.0), house, battery, house - production - battery
        )

    def _island(self, production: float, house: float) -> PowerSample:
        """Off grid nothing is imported or exported: the battery balances PV and load.

        What the battery cannot carry is shed from the load; what it cannot take is
        curtailed from the PV; with no sun and an empty battery the island goes dark.
        """
        demand = house - production
        battery = self.battery.limit(demand) if self.battery is not None else 0.0
        if battery < demand:
            house = production + battery
        elif battery > demand:
            production = house - battery
        if house <= 0.0:
            return PowerSample(0.0, 0.0, 0.0, 0.0, 0.0)
        return PowerSample(production, max(production, 0.0), house, battery, 0.0)

    def _clouds(self, now: float) -> float:
        """Clouds as events in time, so the weather does not depend on how often we look."""
        if self._cloud[0] == math.inf:
            self._cloud = self._next_cloud(now)
        while now >= self._cloud[1]:
            self._cloud = self._next_cloud(self._cloud[1])
        start, _, depth = self._cloud
        return depth if now >= start else 1.0

    def _next_cloud(self, after: float) -> tuple[float, float, float]:
        start = after + self._rng.expovariate(1.0 / CLOUD_GAP_S)
        return start, start + self._rng.uniform(*CLOUD_S), self._rng.uniform(*CLOUD_DEPTH)
