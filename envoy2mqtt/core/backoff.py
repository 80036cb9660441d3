"""The one back-off policy: capped, jittered, exponential (gateway reconnects, broker, cloud)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


def _jitter() -> float:
    return random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries, not cryptography


@dataclass(slots=True)
class Backoff:
    """Capped exponential back-off with +-20 % jitter; `failed()` says how long to wait."""

    first: float = 60.0
    cap: float = 3600.0
    delay: float = 0.0
    jitter: Callable[[], float] = field(default=_jitter, repr=False)

    def failed(self, *, permanent: bool = False) -> float:
        """Grow the delay (straight to the cap when retrying cannot help); seconds to wait."""
        self.delay = self.cap if permanent else min(self.cap, max(self.first, self.delay * 2))
        return self.delay * self.jitter()

    def reset(self) -> None:
        """Start from the first delay again."""
        self.delay = 0.0
