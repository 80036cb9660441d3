"""Values worth acting on: a battery state that holds, and a runway that moves when it means it."""

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
    """A backup runway (minutes) smoothed over minutes and rounded to two significant figures.

    The rate the battery drains at (1 / runway) is averaged, not the runway: it is proportional
    to the house load, so a kettle's minute moves it by its share, and a load of about nothing
    (the capped runway) is a rate of about zero rather than a week-long outlier. An
    exponential average with time constant `tau`, weighted by the time between readings;
    0 (nothing left above the reserve) is passed through at once.
    """

    tau: float = RUNWAY_TAU_S
    cap: float = math.inf
    _rate: float | None = None  # per minute
    _at: float = 0.0
    _shown: int | None = None

    def feed(self, minutes: float, now: float) -> int:
        """The runway to publish after a reading of `minutes` taken at `now` (s)."""
        if minutes <= 0:
            self._rate, self._shown = None, 0
            return 0
        rate = 0.0 if minutes >= self.cap else 1.0 / minutes
        if self._rate is None or self.tau <= 0:
            self._rate = rate
        else:
            weight = 1.0 - math.exp(-max(now - self._at, 0.0) / self.tau)
            self._rate += (rate - self._rate) * weight
        self._at = max(now, self._at)
        if self._rate <= 1.0 / self.cap:
            self._shown = int(self.cap)
            return self._shown
        smooth = min(1.0 / self._rate, self.cap)
        shown = self._shown
        # a value sitting on a rounding boundary would flip between two steps: hold the one
        # shown until the runway is most of a step away from it
        if shown is None or abs(smooth - shown) >= 0.75 * step(max(shown, 1)):
            shown = self._shown = significant(smooth)
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
