"""The lanes' pace: one adaptive back-off stretching every interval, and the quiet window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time as clock_time


@dataclass(slots=True)
class Pace:
    """Adaptive back-off: slow or failing answers stretch every interval, recovery shrinks it.

    The factor doubles on a failure, grows by half on a slow answer, and steps back by a
    third per good answer, never below 1 or above ``max_factor``.
    """

    slow_after: float = 2.0
    max_factor: float = 16.0
    factor: float = 1.0

    def observe(self, duration: float, *, ok: bool) -> None:
        """Record one answer (how long the gateway took to answer one request) or one failure."""
        if not ok:
            self.factor = min(self.factor * 2, self.max_factor)
        elif duration > self.slow_after:
            self.factor = min(self.factor * 1.5, self.max_factor)
        else:
            self.factor = max(1.0, self.factor / 1.5) if self.factor > 1 else 1.0

    def interval(self, base: float) -> float:
        """The interval to wait now for a lane whose normal interval is `base`."""
        return base * self.factor


def in_window(now: clock_time, start: clock_time | None, end: clock_time | None) -> bool:
    """True when `now` lies in [start, end), windows crossing midnight included."""
    if start is None or end is None:
        return False
    if start <= end:
        return start <= now < end
    return now >= start or now < end
