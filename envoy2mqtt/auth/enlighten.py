"""Enphase's cloud: Enlighten login and the Entrez token service, each failure a TokenError."""

from __future__ import annotations

import asyncio
import json
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp

from envoy2mqtt.auth.claims import describe
from envoy2mqtt.auth.errors import (
    TOKEN_PAGE,
    CloudUnreachable,
    LoginRejected,
    MfaRequired,
    SessionRefused,
    TokenError,
    UnknownSerial,
)


class TokenService(Protocol):
    """Where new tokens come from (Enphase's cloud, or a stand-in in tests)."""

    async def obtain(self, serial: str) -> str:
        """A new token for the gateway with this serial."""
        ...


MFA_MESSAGE: Final = (
    "Enlighten accepted the login but gave no session: the account uses multi-factor "
    "authentication, which envoy2mqtt cannot answer. Create a token at "
    f"{TOKEN_PAGE} (owner tokens last a year) and set ENVOY_TOKEN (or ENVOY_TOKEN_FILE) "
    "instead of ENVOY_USERNAME/ENVOY_PASSWORD"
)


class Enlighten:
    """Enphase's login and token services: one attempt per call, bounded in time."""

    def __init__(
        self, username: str, password: str, *, login_url: str, token_url: str, timeout: float
    ) -> None:
        """Describe the account and services; nothing is sent until `obtain()`."""
        self._username = username
        self._password = password
        self.login_url = login_url
        self.token_url = token_url
        self.timeout = timeout

    async def obtain(self, serial: str) -> str:
        """Log in and get a token for the gateway with this serial."""
        try:
            async with (
                asyncio.timeout(self.timeout),
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
            ):
                session_id = await self._login(http)
                return await self._token(http, session_id, serial)
        except TimeoutError as err:
            raise CloudUnreachable(
                f"Enphase's cloud did not answer within {self.timeout:.0f} s"
            ) from err
        except aiohttp.ClientError as err:
            host = urlsplit(self.login_url).hostname
            raise CloudUnreachable(
                f"cannot reach Enphase's cloud ({host}: {type(err).__name__})"
            ) from err

    async def _login(self, http: aiohttp.ClientSession) -> str:
        form = {"user[email]": self._username, "user[password]": self._password}
        async with http.post(self.login_url, data=form) as response:
            status, body = response.status, await response.read()
        if status in (401, 403):
            raise LoginRejected(
                "Enlighten rejected the login: check ENVOY_USERNAME and ENVOY_PASSWORD (the "
                "e-mail address and password of your Enlighten account)"
            )
        _raise_unavailable(status, "login service")
        if status != 200:
            raise TokenError(f"Enphase's login service answered HTTP {status}")
        try:
            reply = json.loads(body)
        except ValueError as err:
            raise TokenError("Enphase's login service answered something that is not JSON") from err
        session_id = reply.get("session_id") if isinstance(reply, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise MfaRequired(MFA_MESSAGE)
        return session_id

    async def _token(self, http: aiohttp.ClientSession, session_id: str, serial: str) -> str:
        body = {"session_id": session_id, "serial_num": serial, "username": self._username}
        async with http.post(self.token_url, json=body) as response:
            status, text = response.status, await response.text()
        if status == 401:
            raise SessionRefused(
                "Enphase's token service refused the fresh Enlighten session (\"You need to "
                "sign in first\"), a known passing fault on Enphase's side; retrying later"
            )
        if status == 500 and "invalid serial" in text.lower():
            raise UnknownSerial(
                f"Enphase's token service does not know gateway serial {serial} for this "
                "account: check ENVOY_SERIAL, and that the gateway is registered to your "
                "Enlighten account"
            )
        _raise_unavailable(status, "token service")
        if status != 200:
            raise TokenError(f"Enphase's token service answered HTTP {status}")
        token = text.strip()
        try:
            describe(token)
        except TokenError:
            raise TokenError(
                "Enphase's token service answered something that is not a token"
            ) from None
        return token


def _raise_unavailable(status: int, what: str) -> None:
    if status == 429 or status >= 500:
        raise CloudUnreachable(f"Enphase's {what} is unavailable (HTTP {status})")
