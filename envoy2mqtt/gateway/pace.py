"""The lanes' pace: adaptive back-off per endpoint class, stretching the intervals of the
lanes that read that class, and the quiet window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time as clock_time

from envoy2mqtt.gateway.gate import FAST_LANES, EndpointClass, Lane


def _step(factor: float, duration: float, *, ok: bool, slow_after: float, cap: float) -> float:
    if not ok:
        return min(factor * 2, cap)
    if duration > slow_after:
        return min(factor * 1.5, cap)
    return max(1.0, factor / 1.5) if factor > 1 else 1.0


@dataclass(slots=True)
class Pace:
    """Adaptive back-off: slow or failing answers stretch intervals, recovery shrinks them.

    A factor doubles on a failure, grows by half on a slow answer, and steps back by a third
    per good answer, never below 1 or above ``max_factor``. The fast class (`factor`: the
    `/ivp/*` API) stretches every lane: a gateway whose small answers slow down is
    struggling. The page class (`page_factor`: production.json and the like, which take
    30-55 s on current firmware as a matter of course) stretches only the lanes that read
    pages, and only when a page takes longer than ``page_slow_after``.
    """

    slow_after: float = 2.0
    max_factor: float = 16.0
    factor: float = 1.0
    page_slow_after: float = 75.0
    page_factor: float = 1.0

    def observe(self, duration: float, *, ok: bool) -> None:
        """Record one fast-class answer (how long it took) or one failure."""
        self.factor = _step(
            self.factor, duration, ok=ok, slow_after=self.slow_after, cap=self.max_factor
        )

    def observe_page(self, duration: float, *, ok: bool) -> None:
        """Record one page-class answer or one failure."""
        self.page_factor = _step(
            self.page_factor,
            duration,
            ok=ok,
            slow_after=self.page_slow_after,
            cap=self.max_factor,
        )

    def answered(self, duration: float, kind: EndpointClass) -> None:
        """A good answer of `kind` took `duration` seconds (the gate tells)."""
        if kind is EndpointClass.FAST:
            self.observe(duration, ok=True)
        else:
            self.observe_page(duration, ok=True)

    def failed(self, lane: Lane) -> None:
        """A read of `lane` failed: the fast lanes count against the fast class."""
        if lane in FAST_LANES:
            self.observe(0.0, ok=False)
        else:
            self.observe_page(0.0, ok=False)

    def interval(self, base: float, lane: Lane = Lane.FAST) -> float:
        """The interval to wait now for `lane`, whose normal interval is `base`."""
        if lane in FAST_LANES:
            return base * self.factor
        return base * max(self.factor, self.page_factor)


def in_window(now: clock_time, start: clock_time | None, end: clock_time | None) -> bool:
    """True when `now` lies in [start, end), windows crossing midnight included."""
    if start is None or end is None:
        return False
    if start <= end:
        return start <= now < end
    return now >= start or now < end
