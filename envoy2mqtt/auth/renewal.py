"""When to renew a token, and when to look at it again.

A token is renewed once less than `min(TOKEN_RENEW_DAYS, lifetime / 4)` is left. An owner
token (a year) renews 30 days ahead, an installer token (12 hours) 3 hours ahead; a flat 30
days would renew a 12-hour token on every check, and a daily check alone would let it lapse,
so the next check is due at the earlier of one day and the renewal time. Pure: the sources
pass the time in (from their `core.clock.Clock`, which a test moves by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from envoy2mqtt.auth.claims import TokenInfo

DAY: Final = 86400.0
MIN_WAIT: Final = 1.0  # never spin: a check that is due now still waits this long


@dataclass(frozen=True, slots=True)
class Renewal:
    """The renewal policy: renew `min(days, lifetime / 4)` before expiry, check at least daily."""

    days: float = 30.0
    check_every: float = DAY

    def renew_at(self, info: TokenInfo) -> datetime | None:
        """When renewal becomes due: `min(days, lifetime / 4)` before expiry (None: never)."""
        if info.expires_at is None:
            return None
        return info.expires_at - min(timedelta(days=self.days), info.lifetime / 4)

    def due(self, info: TokenInfo, now: datetime) -> bool:
        """Whether renewal is due."""
        renew_at = self.renew_at(info)
        return renew_at is not None and now >= renew_at

    def next_check(
        self, info: TokenInfo | None, now: datetime, *, retry_at: datetime | None = None
    ) -> float:
        """Seconds until the token is looked at again: daily, at renewal, or at `retry_at`."""
        renew_at = self.renew_at(info) if info is not None else None
        if renew_at is None:
            return self.check_every
        if now >= renew_at:  # due: as soon as the back-off allows
            wait = (retry_at - now).total_seconds() if retry_at else 0.0
        else:
            wait = (renew_at - now).total_seconds()
        return max(MIN_WAIT, min(self.check_every, wait))
