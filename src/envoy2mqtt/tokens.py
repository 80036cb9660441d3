"""Tokens for firmware 7+: a fixed ENVOY_TOKEN, or Enlighten login with a cache."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt

from envoy2mqtt.snapshot import AuthStatus


class TokenError(Exception):
    """No usable token; the message tells the user what to do."""


def token_claims(token: str) -> dict[str, object]:
    """The JWT's claims, read without checking the signature (only the gateway can)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as err:
        raise TokenError("ENVOY_TOKEN is not a JWT (expected three dot-separated parts)") from err
    return dict(claims)


class FixedToken:
    """The user's own ENVOY_TOKEN: used as it is, the cloud is never contacted."""

    def __init__(self, token: str) -> None:
        """Keep the token (never logged or published)."""
        self._token = token
        claims = token_claims(token)
        exp = claims.get("exp")
        self._expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
        kind = claims.get("enphaseUser")
        self._type = str(kind) if kind else None
        self._last_success: datetime | None = None
        self._failures = 0

    async def token(self, serial: str) -> str:
        """The fixed token."""
        return self._token

    async def renew(self, serial: str) -> str:
        """A fixed token cannot be renewed: say so plainly."""
        self._failures += 1
        raise TokenError(
            "the gateway rejected ENVOY_TOKEN (expired or for another gateway); create a new "
            "token at entrez.enphaseenergy.com, or set ENVOY_USERNAME and ENVOY_PASSWORD"
        )

    def status(self) -> AuthStatus:
        """Expiry and type of the token."""
        return AuthStatus(
            method="token",
            token_expires_at=self._expires,
            token_type=self._type,
            last_success=self._last_success,
            failures=self._failures,
        )


def cloud_tokens(settings: object, gateway: object) -> FixedToken:
    """Tokens from Enlighten with a cache in STATE_DIR (being built)."""
    raise TokenError("Enlighten login is not available yet: set ENVOY_TOKEN")
