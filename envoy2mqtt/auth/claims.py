"""What a token says: its JWT claims (expiry, issue time, type, gateway), read unverified."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import jwt

from envoy2mqtt.auth.errors import TokenError

EXPIRY_MARGIN: Final = timedelta(minutes=1)  # a token this close to expiry is not worth using
TYPICAL_LIFETIME: Final = {"installer": timedelta(hours=12), "owner": timedelta(days=365)}


def _time(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token's claims say: expiry, issue time, type (owner/installer), gateway."""

    expires_at: datetime | None
    issued_at: datetime | None
    kind: str | None
    serial: str | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, object]) -> TokenInfo:
        """Read the claims Enphase puts in its tokens."""
        kind, aud = claims.get("enphaseUser"), claims.get("aud")
        return cls(
            expires_at=_time(claims.get("exp")),
            issued_at=_time(claims.get("iat")),
            kind=str(kind) if kind else None,
            serial=aud if isinstance(aud, str) and aud else None,
        )

    @property
    def lifetime(self) -> timedelta:
        """How long the token was issued for (from its claims, else typical for its type)."""
        if self.expires_at is not None and self.issued_at is not None:
            return max(self.expires_at - self.issued_at, timedelta(0))
        return TYPICAL_LIFETIME.get(self.kind or "", TYPICAL_LIFETIME["owner"])

    def usable(self, now: datetime) -> bool:
        """Whether the token is still worth presenting (not about to expire mid-request)."""
        if self.expires_at is None:
            return True
        return self.expires_at - min(EXPIRY_MARGIN, self.lifetime / 20) > now


def token_claims(token: str) -> dict[str, object]:
    """The JWT's claims, read without checking the signature (only the gateway can)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as err:
        raise TokenError("the token is not a JWT (expected three dot-separated parts)") from err
    return dict(claims)


def describe(token: str) -> TokenInfo:
    """What a token's claims say (raises TokenError if it is not a JWT)."""
    return TokenInfo.from_claims(token_claims(token))
