"""Values worth acting on: a battery state that holds, a runway that moves when it means it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

IDLE: Final = "idle"
CHARGING: Final = "charging"
DISCHARGING: Final = "discharging"
BATTERY_DWELL_S: Final = 30.0
BATTERY_BAND_W: Final = 350.0  # a battery hovering around zero in self-consumption: ±50-300 W
RUNWAY_TAU_S: Final = 300.0


def power_state(watts: float, band: float) -> str:
    """What a battery power says on its own: beyond ±`band` it charges or discharges."""
    if watts <= -band:
        return CHARGING
    if watts >= band:
        return DISCHARGING
    return IDLE


@dataclass(slots=True)
class BatteryState:
    """The batteries' state, believed once it has held `dwell` seconds clear of the band.

    A power within ±`band` of zero reads idle; a new state replaces the believed one only
    after every reading for `dwell` seconds has said so, so a battery hovering around zero
    does not flip charging / idle / discharging every second. The first reading is believed
    at once (there is nothing to hold against).
    """

    dwell: float = BATTERY_DWELL_S
    band: float = BATTERY_BAND_W
    state: str | None = None
    _candidate: str | None = None
    _since: float = 0.0

    def feed(self, watts: float, now: float) -> str:
        """The state to publish after a battery power reading (W, + discharging) at `now` (s)."""
        seen = power_state(watts, self.band)
        if self.state is None:
            self.state = seen
        elif seen == self.state:
            self._candidate = None
        elif seen != self._candidate:
            self._candidate, self._since = seen, now
        elif now - self._since >= self.dwell:
            self.state, self._candidate = seen, None
        return self.state


@dataclass(slots=True)
class Runway:
    """A backup runway (minutes) over the house load of the last minutes, in two figures.

    The house load is what jumps (a kettle, a compressor starting): it is averaged
    exponentially with time constant `tau`, weighted by the time between readings, and the
    energy above the reserve (runway x load, read at once) is divided by that average. So a
    change of charge moves the runway at once and a minute's load moves it by its share.
    0 (nothing left above the reserve) is passed through at once; a load of about nothing
    reads `cap`.
    """

    tau: float = RUNWAY_TAU_S
    cap: int = 10_080
    _load: float | None = None  # the averaged house load (W)
    _at: float = 0.0
    _above: float | None = None  # energy above the reserve, as W x min
    _shown: int | None = None

    def feed(self, minutes: float, load: float | None, now: float) -> int:
        """The runway to publish after a reading of `minutes` at house `load` (W), at `now` (s)."""
        if minutes <= 0:
            self._shown = 0
            return 0
        if load is None:
            return self._show(minutes)
        if self._load is None or self.tau <= 0:
            self._load = load
        else:
            weight = 1.0 - math.exp(-max(now - self._at, 0.0) / self.tau)
            self._load += (load - self._load) * weight
        self._at = max(now, self._at)
        if minutes < self.cap and load > 0:
            self._above = minutes * load
        if self._above is None or self._load * self.cap <= self._above:
            return self._show(self.cap)
        return self._show(self._above / self._load)

    def _show(self, minutes: float) -> int:
        if minutes >= self.cap:
            self._shown = self.cap
            return self.cap
        shown = self._shown
        # a value sitting on a rounding boundary would flip between two steps: hold the one
        # shown until the runway is most of a step away from it
        if shown is None or abs(minutes - shown) >= 0.75 * step(max(shown, 1)):
            shown = self._shown = significant(minutes)
        return shown


def step(minutes: float, figures: int = 2) -> int:
    """The rounding step at `minutes` for `figures` significant figures (1 below 100 for 2)."""
    if minutes < 1:
        return 1
    return int(10 ** max(math.floor(math.log10(minutes)) + 1 - figures, 0))


def significant(minutes: float, figures: int = 2) -> int:
    """`minutes` rounded to `figures` significant figures: 187 -> 190, 2437 -> 2400, 7 -> 7."""
    size = step(minutes, figures)
    return int(round(minutes / size) * size)
