"""Politeness towards the gateway: one request in flight, urgent lanes first, each bounded."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from enum import IntEnum

import aiohttp


class Lane(IntEnum):
    """Polling lanes, most urgent first (the value is the priority)."""

    FAST = 0
    BATTERY = 1
    NORMAL = 2
    SLOW = 3


current_lane: ContextVar[Lane] = ContextVar("current_lane", default=Lane.NORMAL)


class Gate:
    """A lock with priorities: at most one request in flight; waiting fast requests go first."""

    def __init__(self, on_answer: Callable[[float], None] | None = None) -> None:
        """Start open; `on_answer` is told how long each good answer took (the pace)."""
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.on_answer = on_answer

    @asynccontextmanager
    async def slot(self, lane: Lane) -> AsyncIterator[None]:
        """Hold the only request slot for the duration of the block."""
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


Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
Middleware = Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]


def polite(gate: Gate) -> Middleware:
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


def answered_within(seconds: float) -> Middleware:
    """An aiohttp middleware bounding one request, counted from when it holds the gate.

    aiohttp's own total timeout also counts the wait for the gate, so a fast read queued
    behind a slow /inventory.json would time out without the gateway ever being asked, and
    the gateway would be marked offline for one slow endpoint.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        async with asyncio.timeout(seconds):
            response = await handler(request)
            await response.read()
            return response

    return middleware
