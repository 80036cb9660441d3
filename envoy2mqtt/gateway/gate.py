"""Politeness towards the gateway: one request in flight, urgent lanes first, adaptive pace."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import time as clock_time
from enum import IntEnum

import aiohttp


class Lane(IntEnum):
    """Polling lanes, most urgent first (the value is the priority)."""

    FAST = 0
    BATTERY = 1
    NORMAL = 2
    SLOW = 3


current_lane: ContextVar[Lane] = ContextVar("current_lane", default=Lane.NORMAL)


@dataclass(slots=True)
class GateStats:
    """What the gate has seen."""

    requests: int = 0
    max_in_flight: int = 0
    waited: float = 0.0


class Gate:
    """A lock with priorities: at most one request in flight; waiting fast requests go first."""

    def __init__(self) -> None:
        """Start open."""
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._in_flight = 0
        self.stats = GateStats()
        # told how long the gateway took for each good answer (failures are the caller's)
        self.on_answer: Callable[[float], None] | None = None

    @asynccontextmanager
    async def slot(self, lane: Lane) -> AsyncIterator[None]:
        """Hold the only request slot for the duration of the block."""
        started = time.monotonic()
        if self._busy or self._waiters:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (int(lane), next(self._order), future)
            heapq.heappush(self._waiters, entry)
            try:
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._release()  # it was handed to us just as we were cancelled
                elif entry in self._waiters:
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)
                raise
        else:
            self._busy = True
        self.stats.waited += time.monotonic() - started
        self.stats.requests += 1
        self._in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes on; _busy stays True
                return
        self._busy = False


Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]


def polite(
    gate: Gate,
) -> Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]:
    """An aiohttp client middleware that sends every request through the gate.

    The body is read inside the slot, so the gateway has finished answering before the
    next request goes out. Good answers report their response time to `gate.on_answer`.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        async with gate.slot(current_lane.get()):
            started = time.monotonic()
            response = await handler(request)
            await response.read()
        if gate.on_answer is not None and response.ok:
            gate.on_answer(time.monotonic() - started)
        return response

    return middleware


@dataclass(slots=True)
class Pace:
    """Adaptive back-off: slow or failing answers stretch every interval, recovery shrinks it.

    The factor doubles on a failure, grows by half on a slow answer, and steps back by a
    third per good answer, never below 1 or above ``max_factor``.
    """

    slow_after: float = 2.0
    max_factor: float = 16.0
    factor: float = 1.0
    failures: int = 0
    _changes: list[float] = field(default_factory=list)

    def observe(self, duration: float, *, ok: bool) -> None:
        """Record one answer (how long the gateway took to answer one request) or one failure."""
        if not ok:
            self.failures += 1
            self.factor = min(self.factor * 2, self.max_factor)
        elif duration > self.slow_after:
            self.failures = 0
            self.factor = min(self.factor * 1.5, self.max_factor)
        else:
            self.failures = 0
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
