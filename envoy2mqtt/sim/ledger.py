"""Energy through every metered flow, integrated from the powers served, rolled at midnight."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

DAY: Final = 86_400.0
PAST_DAYS: Final = 6  # the gateway's "last seven days" is today and the six before it

Key = tuple[str, int | None]  # (flow, phase index), phase None for the whole meter


def _past_days() -> deque[float]:
    return deque(maxlen=PAST_DAYS)


@dataclass(slots=True)
class Counter:
    """One flow's energy in Wh: both ways since the start, and its recent days."""

    delivered: float = 0.0  # while the power was positive
    received: float = 0.0  # while it was negative
    today: float = 0.0  # delivered since local midnight
    past_days: deque[float] = field(default_factory=_past_days)

    @property
    def seven_days(self) -> float:
        """Delivered today and on the six days before."""
        return sum(self.past_days) + self.today


class Ledger:
    """Counters for each flow, fed the powers served at each step.

    The power served at one step is held until the next (the gateway's meters sample
    faster than anyone polls, so what was served is the best account of what flowed).
    Steps must not straddle local midnight: the caller ends a step there.
    """

    def __init__(self, utc_offset_s: float) -> None:
        """Start empty; `seed` gives counters the days before the simulation."""
        self.utc_offset_s = utc_offset_s
        self._counters: dict[Key, Counter] = {}
        self._last: tuple[float, dict[Key, float]] | None = None

    @property
    def started(self) -> bool:
        """Whether any step was taken."""
        return self._last is not None

    def seed(self, key: Key, *, today: float, days: Iterable[float]) -> None:
        """Energy delivered before the simulation: earlier today, and on the days before."""
        counter = self.counter(key)
        counter.today = today
        counter.past_days.extend(days)

    def counter(self, key: Key) -> Counter:
        """The counter of one flow (created empty on first use)."""
        return self._counters.setdefault(key, Counter())

    def power(self, key: Key) -> float:
        """The power last served for a flow (0 if none)."""
        return self._last[1].get(key, 0.0) if self._last is not None else 0.0

    def step(self, now: float, powers: Mapping[Key, float]) -> None:
        """Book the previous powers up to `now`, then hold these (at the same instant: replace)."""
        if self._last is not None:
            then, previous = self._last
            if now < then:
                return
            hours = (now - then) / 3600.0
            for key, watts in previous.items():
                counter = self.counter(key)
                counter.delivered += max(watts, 0.0) * hours
                counter.received += max(-watts, 0.0) * hours
                counter.today += max(watts, 0.0) * hours
            days = int(self.day(now) - self.day(then))
            for _ in range(min(days, PAST_DAYS + 1)):
                self._roll()
        self._last = (now, dict(powers))

    def day(self, t: float) -> float:
        """The local day number of an instant."""
        return (t + self.utc_offset_s) // DAY

    def next_midnight(self, t: float) -> float:
        """The first local midnight after `t`."""
        return (self.day(t) + 1) * DAY - self.utc_offset_s

    def _roll(self) -> None:
        for counter in self._counters.values():
            counter.past_days.append(counter.today)
            counter.today = 0.0
