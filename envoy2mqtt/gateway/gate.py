"""Politeness towards the gateway: one request per endpoint class in flight, urgent lanes
first, each request bounded by its class's timeout.

Two classes: the small `/ivp/*` API (fast: about 0.4 s on current firmware, 1.6 s at worst)
and the legacy pages (`production.json`, `inventory.json`, `home.json`: 30-55 s, ~20 s and
over a minute on firmware D8.3.6086). One request of each class may be in flight, never two
of one class, so the grid watch never waits behind a slow page, and the gateway never sees
more than two requests at once. The strict one-request gate came from a 2016 report of an
Envoy-S queueing requests behind a slow `/inventory.json`; current firmware answers the
relay at 1 Hz while `production.json` is being read (ha-enphase-realtime docs/FINDINGS.md).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

import aiohttp


class Lane(IntEnum):
    """Polling lanes, most urgent first (the value is the priority)."""

    FAST = 0
    BATTERY = 1
    NORMAL = 2
    SLOW = 3


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


class Gate:
    """One request in flight per endpoint class; waiting fast-lane requests go first."""

    def __init__(self, on_answer: Answered | None = None) -> None:
        """Start open; `on_answer` is told how long each good answer took, and its class."""
        self._locks = {kind: _PriorityLock() for kind in EndpointClass}
        self.on_answer = on_answer

    @asynccontextmanager
    async def slot(
        self, lane: Lane, kind: EndpointClass = EndpointClass.FAST
    ) -> AsyncIterator[None]:
        """Hold the one slot of `kind` for the duration of the block."""
        async with self._locks[kind].held(int(lane)):
            yield


Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
Middleware = Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]


def polite(gate: Gate) -> Middleware:
    """An aiohttp client middleware that sends every request through the gate.

    The body is read inside the slot, so the gateway has finished answering before the
    next request of that class goes out. Good answers report their time to `gate.on_answer`.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        kind = endpoint_class(request.url.path)
        async with gate.slot(current_lane.get(), kind):
            started = time.monotonic()
            response = await handler(request)
            await response.read()
        if gate.on_answer is not None and response.ok:
            gate.on_answer(time.monotonic() - started, kind)
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
