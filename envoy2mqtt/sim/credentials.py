"""Simulated credentials: Enlighten-style JWTs and the legacy local passwords."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, Literal

import jwt
from envoy_utils.envoy_utils import EnvoyUtils

# Public by design: it signs simulated tokens for simulated gateways only.
SIM_TOKEN_KEY: Final = "envoy2mqtt-simulated-enlighten-hs256-signing-key"  # noqa: S105
ONE_YEAR: Final = 365 * 24 * 3600.0
TokenType = Literal["owner", "installer"]
OWNER: Final[TokenType] = "owner"


def make_token(
    serial: str,
    *,
    lifetime: float = ONE_YEAR,
    token_type: TokenType = OWNER,
    username: str = "owner@example.com",
    key: str = SIM_TOKEN_KEY,
    clock: Callable[[], float] = time.time,
) -> str:
    """Mint a JWT shaped like the ones Enphase's token service issues."""
    now = clock()
    claims = {
        "aud": serial,
        "iss": "Entrez",
        "enphaseUser": token_type,
        "exp": int(now + lifetime),
        "iat": int(now),
        "jti": str(uuid.uuid4()),
        "username": username,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def read_token(token: str, *, key: str, serial: str, now: float) -> dict[str, Any] | None:
    """Claims of a token this gateway accepts at time `now`, else None."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            # Time and audience are checked below against the injected clock.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "require": ["exp"],
            },
        )
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        return None
    for claim in ("aud", "serial"):
        if claim in claims and claims[claim] != serial:
            return None
    return claims


def legacy_passwords(serial: str) -> dict[str, str]:
    """Digest users of a pre-7 gateway: `envoy` and `installer`."""
    installer = str(EnvoyUtils.get_password(serial, "installer"))
    return {"envoy": serial[-6:], "installer": installer}


def needs_digest(path: str) -> bool:
    """Endpoints a pre-7 gateway guards with Digest auth; everything else is open."""
    return path == "/api/v1/production/inverters" or path.startswith("/ivp/")


class TokenGate:
    """A firmware-7 gateway's view of bearer tokens and the sessions it handed out."""

    def __init__(self, *, serial: str, key: str, clock: Callable[[], float]) -> None:
        """Accept tokens signed with `key` for `serial`, judged by `clock`."""
        self._serial = serial
        self._key = key
        self._clock = clock
        self._sessions: dict[str, str] = {}
        self._seen: set[str] = set()
        self._revoked: set[str] = set()
        self._revoked_before: int | None = None

    def accepts(self, token: str) -> bool:
        """Whether a bearer token is valid right now."""
        if token in self._revoked:
            return False
        claims = read_token(token, key=self._key, serial=self._serial, now=self._clock())
        if claims is None:
            return False
        iat = claims.get("iat")
        if self._revoked_before is not None and isinstance(iat, int) and iat < self._revoked_before:
            return False
        self._seen.add(token)
        return True

    def open_session(self, token: str) -> str:
        """A new session id bound to an accepted token."""
        session = secrets.token_hex(16)
        self._sessions[session] = token
        return session

    def session_valid(self, session: str) -> bool:
        """Whether a session cookie still stands (its token has not expired or been revoked)."""
        token = self._sessions.get(session)
        return token is not None and self.accepts(token)

    def revoke_all(self) -> None:
        """Invalidate every token seen or issued so far, and every session."""
        self._revoked |= self._seen
        self._sessions.clear()
        self._revoked_before = int(self._clock())
