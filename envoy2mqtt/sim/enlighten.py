"""A simulated Enlighten cloud: the login and token endpoints pyenphase uses."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from .credentials import ONE_YEAR, OWNER, SIM_TOKEN_KEY, TokenType, make_token
from .listener import Listener, Served

SESSION_LIFETIME: Final = 3600.0
SIGN_IN_FIRST: Final = "You need to sign in first"


class SimulatedEnlighten(Served):
    """Plain-HTTP stand-in for enlighten.enphaseenergy.com and entrez.enphaseenergy.com.

    `down` answers 503 rather than refusing connections: pyenphase retries connection
    errors against the cloud forever (tenacity without a stop), so a refused connection
    would hang the caller instead of failing it.
    """

    def __init__(
        self,
        *,
        accounts: dict[str, str] | None = None,
        port: int = 0,
        token_key: str = SIM_TOKEN_KEY,
        clock: Callable[[], float] = time.time,
        token_lifetime: float = ONE_YEAR,
        token_type: TokenType = OWNER,
        known_serials: set[str] | None = None,
        session_lifetime: float = SESSION_LIFETIME,
        mfa: bool = False,
        down: bool = False,
    ) -> None:
        """`known_serials=None` issues tokens for any serial."""
        self.accounts = dict(accounts or {"owner@example.com": "secret"})
        self.token_lifetime = token_lifetime
        self.token_type: TokenType = token_type
        self.known_serials = known_serials
        self.session_lifetime = session_lifetime
        self.mfa = mfa
        self.down = down
        self.logins = 0
        self.token_requests = 0
        self.calls = 0
        self._key = token_key
        self._clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}
        self._listener = Listener(port=port)

    @property
    def login_url(self) -> str:
        """Drop-in for `EnvoyTokenAuth.JSON_LOGIN_URL`, trailing "?" included like the real one."""
        return f"{self.url}/login/login.json?"

    @property
    def token_url(self) -> str:
        """Drop-in for `EnvoyTokenAuth.TOKEN_URL`."""
        return f"{self.url}/tokens"

    async def start(self) -> None:
        """Start serving."""
        app = web.Application()
        app.router.add_post("/login/login.json", self._login)
        app.router.add_post("/tokens", self._token)
        await self._listener.start(app)

    async def stop(self) -> None:
        """Stop serving; requests in flight get a moment to finish."""
        await self._listener.stop(drop_requests=False)

    async def _login(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.logins += 1
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        form = await request.post()
        email, password = str(form.get("user[email]", "")), str(form.get("user[password]", ""))
        if self.accounts.get(email) != password or not email:
            return web.json_response({"message": "Invalid email or password"}, status=401)
        if self.mfa:
            return web.json_response({"success": True, "isBlocked": False, "requires_mfa": True})
        session = secrets.token_hex(16)
        self._sessions[session] = (email, self._clock() + self.session_lifetime)
        return web.json_response(
            {
                "message": "success",
                "session_id": session,
                "manager_token": secrets.token_hex(24),
                "is_consumer": self.token_type == OWNER,
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.token_requests += 1
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="Bad Request")
        if not isinstance(body, dict):
            return web.Response(status=400, text="Bad Request")
        session = self._sessions.get(str(body.get("session_id", "")))
        if session is None or session[1] <= self._clock() or session[0] != body.get("username"):
            return web.Response(status=401, text=SIGN_IN_FIRST)
        serial = str(body.get("serial_num", ""))
        if not serial or (self.known_serials is not None and serial not in self.known_serials):
            return web.Response(status=500, text="Invalid serial number")
        token = make_token(
            serial,
            lifetime=self.token_lifetime,
            token_type=self.token_type,
            username=session[0],
            key=self._key,
            clock=self._clock,
        )
        return web.Response(text=token)
