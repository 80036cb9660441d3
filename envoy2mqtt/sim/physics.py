"""A small solar house: sun, clouds, load noise, battery, and the energy they add up to."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

DAY: Final = 86_400.0
_MEAN_SECONDS_BETWEEN_CLOUDS: Final = 300.0


@dataclass(frozen=True, slots=True)
class PowerSample:
    """Power flows at one instant, in watts."""

    production_w: float  # metered production; a few watts negative at night
    inverters_w: float  # microinverter AC output, never negative
    consumption_w: float
    battery_w: float  # positive = discharging into the house
    net_w: float  # positive = importing from the grid


@dataclass(slots=True)
class Energy:
    """Energy accumulated since the simulation started, in Wh; only ever grows."""

    produced: float = 0.0
    night_draw: float = 0.0
    consumed: float = 0.0
    imported: float = 0.0
    exported: float = 0.0
    discharged: float = 0.0
    charged: float = 0.0
    produced_today: float = 0.0
    consumed_today: float = 0.0
    past_midnight: bool = False  # once True the capture's own "today" counters no longer count


def daylight(now: float, utc_offset_s: float) -> float:
    """0 at night, rising to 1 at local solar noon (06:00-18:00 day)."""
    hour = ((now + utc_offset_s) % DAY) / 3600.0
    if not 6.0 < hour < 18.0:
        return 0.0
    return math.sin(math.pi * (hour - 6.0) / 12.0)


class Physics:
    """Steps power and energy forward in time; all randomness comes from one seeded RNG."""

    def __init__(
        self,
        *,
        peak_w: float,
        base_load_w: float,
        battery_w: float,
        capacity_wh: float,
        soc: float | None,
        utc_offset_s: float,
        rng: random.Random,
    ) -> None:
        """Describe the house; nothing moves until the first `step`."""
        self.peak_w = peak_w
        self.base_load_w = base_load_w
        self.battery_setpoint_w = battery_w
        self.capacity_wh = capacity_wh
        self.soc = soc
        self.utc_offset_s = utc_offset_s
        self.energy = Energy()
        self._rng = rng
        self._last: tuple[float, PowerSample] | None = None
        self._cloud_depth = 1.0
        self._cloud_until = -math.inf

    def step(self, now: float, *, grid_on: bool) -> PowerSample:
        """Integrate the previous sample up to `now` and return the new one."""
        if self._last is not None:
            then, previous = self._last
            if now <= then:
                return previous
            self._integrate(previous, now - then)
            self._roll_midnight(then, now)
        dt = now - self._last[0] if self._last else 0.0
        sample = self._sample(now, dt, grid_on=grid_on)
        self._last = (now, sample)
        return sample

    def _sample(self, now: float, dt: float, *, grid_on: bool) -> PowerSample:
        sun = daylight(now, self.utc_offset_s)
        if sun > 0.0:
            jitter = 1.0 + self._rng.gauss(0.0, 0.01)
            production = self.peak_w * sun * self._clouds(now, dt) * jitter
            inverters = max(production, 0.0)
        else:
            production, inverters = -self._rng.uniform(1.0, 5.0), 0.0
        consumption = max(50.0, self.base_load_w * (1.0 + self._rng.gauss(0.0, 0.05)))
        battery = self.battery_setpoint_w
        if not grid_on:
            battery = consumption - inverters  # the battery now balances the island
        empty = self.soc is not None and self.soc <= 0.0 and battery > 0.0
        full = self.soc is not None and self.soc >= 100.0 and battery < 0.0
        if empty or full:
            battery = 0.0
        net = consumption - production - battery if grid_on else 0.0
        return PowerSample(production, inverters, consumption, battery, net)

    def _clouds(self, now: float, dt: float) -> float:
        if now >= self._cloud_until:
            self._cloud_depth = 1.0
            if self._rng.random() < min(1.0, dt / _MEAN_SECONDS_BETWEEN_CLOUDS):
                self._cloud_depth = self._rng.uniform(0.25, 0.8)
                self._cloud_until = now + self._rng.uniform(20.0, 240.0)
        return self._cloud_depth

    def _integrate(self, sample: PowerSample, dt: float) -> None:
        hours = dt / 3600.0
        energy = self.energy
        produced = max(sample.production_w, 0.0) * hours
        consumed = sample.consumption_w * hours
        energy.produced += produced
        energy.produced_today += produced
        energy.night_draw += max(-sample.production_w, 0.0) * hours
        energy.consumed += consumed
        energy.consumed_today += consumed
        energy.imported += max(sample.net_w, 0.0) * hours
        energy.exported += max(-sample.net_w, 0.0) * hours
        energy.discharged += max(sample.battery_w, 0.0) * hours
        energy.charged += max(-sample.battery_w, 0.0) * hours
        if self.soc is not None and self.capacity_wh > 0:
            delta = sample.battery_w * hours / self.capacity_wh * 100.0
            self.soc = min(100.0, max(0.0, self.soc - delta))

    def _roll_midnight(self, then: float, now: float) -> None:
        if (then + self.utc_offset_s) // DAY != (now + self.utc_offset_s) // DAY:
            self.energy.produced_today = 0.0
            self.energy.consumed_today = 0.0
            self.energy.past_midnight = True
