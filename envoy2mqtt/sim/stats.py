"""What a simulated gateway has been asked, and how politely."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final

from .field import EndpointClass, endpoint_class

LOG_SIZE: Final = 10_000
NO_RESPONSE: Final = 0  # status recorded when the client went away before an answer


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request: monotonic start and end, path, status (0 = never answered)."""

    start: float
    end: float
    path: str
    status: int

    @property
    def endpoint_class(self) -> EndpointClass:
        """Fast /ivp/* or one of the slow pages."""
        return endpoint_class(self.path)

    @property
    def duration(self) -> float:
        """Seconds from arrival to answer (or abandonment)."""
        return self.end - self.start


class GatewayStats:
    """Request counters, concurrency and a bounded per-request log."""

    def __init__(self) -> None:
        """Start with everything at zero."""
        self.requests: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.overlaps = 0
        self.in_flight_by_class: Counter[EndpointClass] = Counter()
        self.max_in_flight_by_class: Counter[EndpointClass] = Counter()
        self.in_flight_slow = 0
        self.max_in_flight_slow = 0  # production, inventory and home together
        self.log: deque[RequestRecord] = deque(maxlen=LOG_SIZE)

    @property
    def max_in_flight_fast(self) -> int:
        """Most fast (/ivp/* and the rest) requests in flight at once."""
        return self.max_in_flight_by_class[EndpointClass.FAST]

    @property
    def total(self) -> int:
        """All requests received."""
        return self.requests.total()

    def begin(self, path: str) -> float:
        """Count a request arriving; returns its monotonic start time."""
        self.requests[path] += 1
        if self.in_flight:
            self.overlaps += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        kind = endpoint_class(path)
        self.in_flight_by_class[kind] += 1
        self.max_in_flight_by_class[kind] = max(
            self.max_in_flight_by_class[kind], self.in_flight_by_class[kind]
        )
        if kind.slow:
            self.in_flight_slow += 1
            self.max_in_flight_slow = max(self.max_in_flight_slow, self.in_flight_slow)
        return time.monotonic()

    def end(self, start: float, path: str, status: int) -> None:
        """Count a request finishing (answered or abandoned)."""
        self.in_flight -= 1
        kind = endpoint_class(path)
        self.in_flight_by_class[kind] -= 1
        self.in_flight_slow -= kind.slow
        self.log.append(RequestRecord(start, time.monotonic(), path, status))

    def reset(self) -> None:
        """Forget history; requests still in flight keep counting as in flight."""
        self.requests.clear()
        self.max_in_flight = self.in_flight
        self.max_in_flight_by_class = Counter(+self.in_flight_by_class)
        self.max_in_flight_slow = self.in_flight_slow
        self.overlaps = 0
        self.log.clear()
