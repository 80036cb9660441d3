"""What became of a source's tokens at the gateway, for the diagnostic metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from envoy2mqtt.auth.claims import TokenInfo
from envoy2mqtt.core.snapshot import AuthStatus


@dataclass(slots=True)
class Outcomes:
    """What became of our tokens: when the gateway last accepted one, and how many failed."""

    last_success: datetime | None = None
    failures: int = 0  # refused by the gateway, or not obtained from the cloud

    def note(self, *, accepted: bool, now: datetime) -> None:
        """One answer of the gateway to a token."""
        if accepted:
            self.last_success = now
        else:
            self.failures += 1

    def status(self, info: TokenInfo | None) -> AuthStatus:
        """Expiry and type of the token `info` describes, last success, failures."""
        return AuthStatus(
            method="token",
            token_expires_at=info.expires_at if info else None,
            token_type=info.kind if info else None,
            last_success=self.last_success,
            failures=self.failures,
        )
