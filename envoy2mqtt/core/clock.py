"""Time as the bridge sees it: one object, so tests can bring their own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime


def local_now() -> datetime:
    """The wall clock, aware, in the local zone (the gateway's nightly window is local)."""
    return datetime.now().astimezone()


@dataclass(frozen=True, slots=True)
class Clock:
    """Monotonic time, sleeping, and the wall clock."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall: Callable[[], datetime] = local_now
