"""Politeness towards the gateway: one request per endpoint class in flight, urgent lanes
first, the grid watch's next read kept clear, each request bounded by its class's timeout.

Two classes: the small `/ivp/*` API (fast: about 0.4 s on current firmware, 1.6 s at worst)
and the legacy pages (`production.json`, `inventory.json`, `home.json`: 30-55 s, ~20 s and
over a minute on firmware D8.3.6086). One request of each class may be in flight, never two
of one class, so the grid watch never waits behind a slow page, and the gateway never sees
more than two requests at once. The strict one-request gate came from a 2016 report of an
Envoy-S queueing requests behind a slow `/inventory.json`; current firmware answers the
relay at 1 Hz while `production.json` is being read (ha-enphase-realtime docs/FINDINGS.md).

The one fast slot is busy most of the time on current firmware (relay, CTs, battery, the full
read's `/ivp/*` pages: ~2.3 requests a second at ~0.36 s each), so a priority queue alone still
lets a CT or battery read that began a moment before the relay's turn hold it back by one answer
(up to 1.6 s). The grid watch therefore reserves its next read: another request of the class
starts only if the answers of late say it will be done by then; otherwise it waits until the
relay read has gone out, and runs in the gap after it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

import aiohttp


class Lane(IntEnum):
    """Polling lanes, most urgent first (the value is the priority)."""

    FAST = 0  # the grid watch: the relay (or collar), the one lane that reserves its turn
    COMMAND = 1  # a command's write and its read-back: someone is waiting for the answer
    METERS = 2  # the CTs
    BATTERY = 3
    NORMAL = 4
    SLOW = 5


FAST_LANES: Final = frozenset({Lane.FAST, Lane.METERS, Lane.BATTERY})  # read /ivp/* only


class EndpointClass(StrEnum):
    """How long the gateway takes to answer an endpoint."""

    FAST = "fast"  # /ivp/*, /info, /auth/*, /admin/lib/tariff: small answers, at once
    SLOW = "slow"  # production.json, inventory.json, home.json, /api/v1/*: pages it builds


FAST_PREFIXES: Final = ("/ivp/", "/info", "/auth/", "/admin/")


def endpoint_class(path: str) -> EndpointClass:
    """The class of a request path (query strings ignored)."""
    path = path.split("?", 1)[0]
    return EndpointClass.FAST if path.startswith(FAST_PREFIXES) else EndpointClass.SLOW


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long one request of each class may take once it holds its slot."""

    fast: float = 10.0  # a fast read that takes this long is a failure
    slow: float = 120.0  # production.json taking 55 s is normal; Home Assistant uses 120 s

    def of(self, kind: EndpointClass) -> float:
        """The timeout of `kind`."""
        return self.fast if kind is EndpointClass.FAST else self.slow


current_lane: ContextVar[Lane] = ContextVar("current_lane", default=Lane.NORMAL)

Answered = Callable[[float, EndpointClass], None]


class _PriorityLock:
    """A lock whose waiters go by priority, then in arrival order."""

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def held(self, priority: int) -> AsyncIterator[None]:
        if self._busy or self._waiters:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (priority, next(self._order), future)
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
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes on; _busy stays True
                return
        self._busy = False


class _AnswerTimes:
    """How long a class's answers took of late: what another request may expect to take."""

    def __init__(self, keep: int = 20, first_guess: float = 0.5) -> None:
        self._recent: deque[float] = deque(maxlen=keep)
        self._first_guess = first_guess

    def add(self, seconds: float) -> None:
        self._recent.append(seconds)

    def budget(self) -> float:
        """The time nine answers in ten took of late (the slowest of the first few; a guess
        before there are any)."""
        if not self._recent:
            return self._first_guess
        if len(self._recent) < 10:
            return max(self._recent)
        return statistics.quantiles(self._recent, n=10)[-1]


class Gate:
    """One request in flight per endpoint class; waiting fast-lane requests go first, and the
    grid watch's reserved turn is kept clear."""

    GRACE: Final = 0.2  # a reservation lapses this long after its time (the watch is late)
    MARGIN: Final = 0.05  # added to the budget: an answer is not the only step of a request

    def __init__(self, on_answer: Answered | None = None) -> None:
        """Start open; `on_answer` is told how long each good answer took, and its class."""
        self._locks = {kind: _PriorityLock() for kind in EndpointClass}
        self._times = {kind: _AnswerTimes() for kind in EndpointClass}
        self._reserved: dict[EndpointClass, float] = {}
        self._moved = {kind: asyncio.Event() for kind in EndpointClass}
        self._gap_taken = dict.fromkeys(EndpointClass, False)  # a request went since `reserve`
        self._held: dict[EndpointClass, list[tuple[int, int]]] = {k: [] for k in EndpointClass}
        self._order = itertools.count()
        self.on_answer = on_answer

    def reserve(self, after: float, kind: EndpointClass = EndpointClass.FAST) -> None:
        """The grid watch wants `kind`'s slot `after` seconds from now (the newest call wins)."""
        self._reserved[kind] = time.monotonic() + max(after, 0.0)
        self._gap_taken[kind] = False
        self._moved[kind].set()
        self._moved[kind] = asyncio.Event()

    def answered(self, seconds: float, kind: EndpointClass) -> None:
        """A good answer of `kind` took `seconds` (the middleware tells)."""
        self._times[kind].add(seconds)
        if self.on_answer is not None:
            self.on_answer(seconds, kind)

    def held_back(self, kind: EndpointClass) -> float:
        """How long a request other than the grid watch's must wait before it may start: 0 if
        it will be done before the reserved turn (or there is none, or it has lapsed)."""
        reserved = self._reserved.get(kind)
        if reserved is None:
            return 0.0
        now = time.monotonic()
        if now + self._times[kind].budget() + self.MARGIN <= reserved:
            return 0.0
        return max(reserved + self.GRACE - now, 0.0)

    async def _clear_of_reservation(self, kind: EndpointClass, lane: Lane) -> None:
        """Wait while the request would stand in the way of the reserved turn.

        Held back, it may go first in a gap after the watch's read even if it does not fit:
        one such request per gap, the most urgent lane's, then the longest waiting; however
        slow the answers, every lane gets its turn.
        """
        held = self._held[kind]
        entry: tuple[int, int] | None = None
        try:
            while (wait := self.held_back(kind)) > 0:
                if entry is not None and not self._gap_taken[kind] and min(held) == entry:
                    break
                if entry is None:
                    entry = (int(lane), next(self._order))
                    held.append(entry)
                moved = self._moved[kind]
                try:
                    async with asyncio.timeout(wait):
                        await moved.wait()  # the watch has read and reserved its next turn
                except TimeoutError:
                    break  # the reservation lapsed: the watch is late or gone
        finally:
            if entry is not None:
                held.remove(entry)
        self._gap_taken[kind] = True

    @asynccontextmanager
    async def slot(
        self, lane: Lane, kind: EndpointClass = EndpointClass.FAST
    ) -> AsyncIterator[None]:
        """Hold the one slot of `kind` for the duration of the block (any lane but the grid
        watch first waits until it would not stand in the way of the watch's next read)."""
        if lane is not Lane.FAST:
            await self._clear_of_reservation(kind, lane)
        async with self._locks[kind].held(int(lane)):
            yield


Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
Middleware = Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]


def polite(gate: Gate) -> Middleware:
    """An aiohttp client middleware that sends every request through the gate.

    The body is read inside the slot, so the gateway has finished answering before the
    next request of that class goes out. Good answers report their time to the gate.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        kind = endpoint_class(request.url.path)
        async with gate.slot(current_lane.get(), kind):
            started = time.monotonic()
            response = await handler(request)
            await response.read()
        if response.ok:
            gate.answered(time.monotonic() - started, kind)
        return response

    return middleware


def answered_within(timeouts: Timeouts) -> Middleware:
    """An aiohttp middleware bounding one request by its class, counted from when it holds
    its slot.

    aiohttp's own total timeout also counts the wait for the slot, so a read queued behind
    another of its class would time out without the gateway ever being asked, and the
    gateway would be marked offline for one slow endpoint.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        async with asyncio.timeout(timeouts.of(endpoint_class(request.url.path))):
            response = await handler(request)
            await response.read()
            return response

    return middleware
