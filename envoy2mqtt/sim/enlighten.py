"""A simulated Enlighten cloud: the login and token endpoints pyenphase uses, and the battery API.

Besides login and tokens it serves the site directory and the batteryConfig service
(`battery_cloud`), behind what Enlighten puts in front of them: a 406 for the User-Agents it
turns away, a redirect to its login page without a session cookie, and the switches of
`CloudFault` (unavailable, refusing connections, refusing the caller, slow).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import jwt
from aiohttp import web

from .battery_cloud import (
    API,
    ApplyBatterySettings,
    BatteryCloud,
    BatteryTiming,
    CloudSite,
    SignedIn,
    refusal,
)
from .credentials import ONE_YEAR, OWNER, SIM_TOKEN_KEY, TokenType, make_token
from .listener import Listener, Served

SESSION_LIFETIME: Final = 3600.0
SIGN_IN_FIRST: Final = "You need to sign in first"
SESSION_COOKIE: Final = "_enlighten_4_session"
MANAGER_TOKEN_COOKIE: Final = "enlighten_manager_token_production"  # noqa: S105 (a name)
OTP_NONCE_COOKIE: Final = "login_otp_nonce"
LOGIN_PATH: Final = "/login/login.json"
TOKEN_PATH: Final = "/tokens"  # noqa: S105 (a path)
# Enlighten answers 406 to Home Assistant's own User-Agent ("HomeAssistant/2026.x aiohttp/...":
# ha-enphase-realtime's live check, Sept 2026; ha-enphase-energy issue #492); plain library
# agents such as aiohttp's or curl's are served.
BLOCKED_AGENTS: Final = ("HomeAssistant",)
LOGIN_PAGE_HTML: Final = (
    b"<!DOCTYPE html><html><head><title>Enlighten</title></head>"
    b"<body><form action='/login/login' method='post'>Sign in</form></body></html>"
)


class CloudFault(StrEnum):
    """How the cloud misbehaves; `NONE` is normal service."""

    NONE = "none"
    UNAVAILABLE = "unavailable"  # 503 on every request (what `down=True` also does)
    REFUSED = "refused"  # stop listening: connections are refused
    UNAUTHORIZED = "unauthorized"  # 401 on every request
    FORBIDDEN = "forbidden"  # 403 on every request
    SLOW = "slow"  # answer normally after `slow_delay` (scaled) seconds


@dataclass(frozen=True, slots=True)
class CloudRequest:
    """One request the cloud got: when (its clock), method, path without query, status.

    Bodies and queries are never kept: the login form carries the password.
    """

    at: float
    method: str
    path: str
    status: int


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SimulatedEnlighten(Served):
    """Plain-HTTP stand-in for enlighten.enphaseenergy.com and entrez.enphaseenergy.com.

    `down` answers 503 rather than refusing connections: pyenphase retries connection
    errors against the cloud forever (tenacity without a stop), so a refused connection
    would hang the caller instead of failing it. `CloudFault.REFUSED` refuses them all the
    same, for clients that do give up.

    The session cookies are set without `Secure` (this is plain HTTP), and on 127.0.0.1:
    an aiohttp client keeps them only with `aiohttp.CookieJar(unsafe=True)`.
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
        mfa_accounts: Iterable[str] = (),
        down: bool = False,
        sites: Iterable[CloudSite] = (),
        apply: ApplyBatterySettings | None = None,
        timing: BatteryTiming = BatteryTiming(),  # noqa: B008 (frozen, shared safely)
        time_scale: float = 1.0,
        slow_delay: float = 10.0,
        blocked_agents: Iterable[str] = BLOCKED_AGENTS,
        browser_only: bool = False,
    ) -> None:
        """`known_serials=None` issues tokens for any serial.

        `mfa` makes every account ask for a second factor, `mfa_accounts` only those.
        `sites` are the accounts' sites; `apply` is how a battery write reaches a gateway
        (see `battery_cloud.storage_applier`). `time_scale` multiplies every delay (the
        battery service's and `slow_delay`): 0.1 runs a 15 s apply in 1.5 s. A request whose
        User-Agent is missing or contains one of `blocked_agents` gets 406; with
        `browser_only`, so does any that does not start with "Mozilla/".
        """
        self.accounts = dict(accounts or {"owner@example.com": "secret"})
        self.token_lifetime = token_lifetime
        self.token_type: TokenType = token_type
        self.known_serials = known_serials
        self.session_lifetime = session_lifetime
        self.mfa = mfa
        self.mfa_accounts = set(mfa_accounts)
        self.down = down
        self.slow_delay = slow_delay
        self.blocked_agents = tuple(blocked_agents)
        self.browser_only = browser_only
        self.logins = 0
        self.token_requests = 0
        self.calls = 0
        self.requests: list[CloudRequest] = []
        self._fault = CloudFault.NONE
        self._key = token_key
        self._clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}
        self.battery = BatteryCloud(
            sites,
            apply=apply,
            signed_in=self._signed_in,
            timing=timing,
            time_scale=time_scale,
            clock=clock,
        )
        self._listener = Listener(port=port)

    @property
    def login_url(self) -> str:
        """Drop-in for `EnvoyTokenAuth.JSON_LOGIN_URL`, trailing "?" included like the real one."""
        return f"{self.url}{LOGIN_PATH}?"

    @property
    def token_url(self) -> str:
        """Drop-in for `EnvoyTokenAuth.TOKEN_URL`."""
        return f"{self.url}{TOKEN_PATH}"

    @property
    def battery_api_url(self) -> str:
        """Base of the batteryConfig service, `.../service/batteryConfig/api/v1`."""
        return f"{self.url}{API}"

    @property
    def time_scale(self) -> float:
        """What every delay is multiplied by."""
        return self.battery.time_scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        self.battery.time_scale = scale

    def user_id(self, email: str) -> int:
        """The account's numeric Enlighten user id (stable for an e-mail address)."""
        return 1_000_000 + zlib.crc32(email.encode()) % 9_000_000

    # -- faults -----------------------------------------------------------------------------

    @property
    def fault(self) -> CloudFault:
        """The fault switched in now."""
        return self._fault

    def set_fault(self, fault: CloudFault) -> None:
        """Switch a fault in (or `NONE` out); `REFUSED` closes the port, leaving it re-opens."""
        was, self._fault = self._fault, fault
        if not self._listener.running:
            return
        if fault is CloudFault.REFUSED and was is not CloudFault.REFUSED:
            self._listener.close()
        elif was is CloudFault.REFUSED and fault is not CloudFault.REFUSED:
            self._listener.open()

    # -- serving ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving."""
        app = web.Application(middlewares=[self._front])
        app.router.add_post(LOGIN_PATH, self._login)
        app.router.add_get("/login/login", self._login_page)
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_routes(self.battery.routes())
        await self._listener.start(app, listen=self._fault is not CloudFault.REFUSED)

    async def stop(self) -> None:
        """Stop serving; requests in flight get a moment to finish, pending applies are dropped."""
        await self.battery.settle()
        await self._listener.stop(drop_requests=False)

    @web.middleware
    async def _front(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """What stands in front of every route: counters, the log, faults, the agent check."""
        self.calls += 1
        self.logins += request.path == LOGIN_PATH
        self.token_requests += request.path == TOKEN_PATH
        status = 0  # the client went away, or the handler failed
        try:
            response = await self._screen(request, handler)
        except web.HTTPException as err:  # aiohttp's own 404 / 405
            status = err.status
            raise
        else:
            status = response.status
        finally:
            self.requests.append(CloudRequest(self._clock(), request.method, request.path, status))
        return response

    async def _screen(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.down or self._fault is CloudFault.UNAVAILABLE:
            return web.Response(status=503, text="Service Unavailable")
        if not self._agent_welcome(request.headers.get("User-Agent", "")):
            return web.Response(status=406, text="Not Acceptable")
        if self._fault is CloudFault.UNAUTHORIZED:
            return refusal(request, 401, "Unauthorized")
        if self._fault is CloudFault.FORBIDDEN:
            return refusal(request, 403, "Forbidden")
        if self._fault is CloudFault.SLOW:
            await asyncio.sleep(self.slow_delay * self.time_scale)
        return await handler(request)

    def _agent_welcome(self, agent: str) -> bool:
        if not agent.strip():
            return False
        if any(blocked.casefold() in agent.casefold() for blocked in self.blocked_agents):
            return False
        return not self.browser_only or agent.startswith("Mozilla/")

    def _signed_in(self, request: web.Request) -> SignedIn | None:
        session = request.cookies.get(SESSION_COOKIE, "")
        found = self._sessions.get(session)
        if found is None or found[1] <= self._clock():
            return None
        return SignedIn(email=found[0], user_id=self.user_id(found[0]), session=session)

    async def _login_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=LOGIN_PAGE_HTML, content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        email, password = str(form.get("user[email]", "")), str(form.get("user[password]", ""))
        if self.accounts.get(email) != password or not email:
            return web.json_response({"message": "Invalid email or password"}, status=401)
        if self.mfa or email in self.mfa_accounts:
            # the password was right; the session comes only after the one-time code
            answer = web.json_response({"success": True, "isBlocked": False, "requires_mfa": True})
            answer.set_cookie(OTP_NONCE_COOKIE, secrets.token_hex(16), path="/", httponly=True)
            return answer
        session = secrets.token_hex(16)
        self._sessions[session] = (email, self._clock() + self.session_lifetime)
        manager_token = self._manager_token(email)
        sites = [b.site.site_id for b in self.battery.batteries.values() if b.site.owner == email]
        answer = web.json_response(
            {
                "message": "success",
                "session_id": session,
                "manager_token": manager_token,
                "is_consumer": self.token_type == OWNER,
                "system_id": sites[0] if sites else None,
            }
        )
        answer.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
        answer.set_cookie(MANAGER_TOKEN_COOKIE, manager_token, path="/")
        return answer

    def _manager_token(self, email: str) -> str:
        """A JWT whose `data.user_id` names the account, as the real manager token's does."""
        now = self._clock()
        claims = {
            "iss": "Enlighten",
            "iat": int(now),
            "exp": int(now + self.session_lifetime),
            "data": {"user_id": self.user_id(email), "email": email},
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    async def _token(self, request: web.Request) -> web.Response:
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
