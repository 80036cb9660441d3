"""Enlighten's battery-settings service: how battery settings reach a gateway on firmware D8.3,
which ignores them written locally.

The Enphase app's battery screen talks to `/service/batteryConfig/api/v1/batterySettings/{site}`
on the Enlighten host: a GET answers the settings and sets the `BP-XSRF-Token` cookie, a PUT of
the same path takes a partial body with that token echoed in `X-XSRF-Token`, and charge from
grid wants `acceptDisclaimer` first. The session is the login's cookie (the login code is
`enlighten`'s); the site is found by the gateway's serial. Enlighten answers 406 to some
User-Agents, so the client says it is a browser. One attempt per write, no retries here; after
a failure the next write waits out a back-off (60 s, doubling to 15 min), so a broken cloud is
not hammered. Credentials and cookies are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from envoy2mqtt.auth.enlighten import Enlighten
from envoy2mqtt.auth.errors import MfaRequired, TokenError

log = logging.getLogger(__name__)

API: Final = "/service/batteryConfig/api/v1"
XSRF_COOKIE: Final = "BP-XSRF-Token"
XSRF_HEADER: Final = "X-XSRF-Token"
# Enlighten turns some agents away with 406 (Home Assistant's own among them)
USER_AGENT: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
BACKOFF_FIRST: Final = 60.0
BACKOFF_MAX: Final = 900.0
PROFILES: Final[Mapping[str, str]] = {  # the gateway's storage mode -> the cloud's profile
    "self-consumption": "self-consumption",
    "economy": "cost_savings",
    "backup": "backup_only",
}


class BatteryCloudError(Exception):
    """A battery-settings write that did not reach Enlighten, in words for the user."""


class _Expired(Exception):
    """The session is no longer valid (Enlighten redirects to its login page)."""


class EnlightenBattery(Enlighten):
    """Writes battery settings through Enlighten for gateways of one account."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        login_url: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Describe the account; nothing is sent until `write()`."""
        super().__init__(username, password, login_url=login_url, token_url="", timeout=timeout)
        parts = urlsplit(login_url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._signed_in = False
        self._sites: dict[str, int] = {}
        self.failures = 0
        self._retry_at = 0.0
        self._last_error = ""

    async def close(self) -> None:
        """Close the HTTP session (the next write opens a new one)."""
        if self._http is not None:
            await self._http.close()
        self._http, self._signed_in = None, False

    async def write(self, serial: str, fields: Mapping[str, object]) -> dict[str, Any]:
        """Send `fields` (a partial batterySettings body) for the site of gateway `serial`;
        the service's answer. One attempt; raises `BatteryCloudError` saying why not."""
        wait = self._retry_at - self._clock()
        if self.failures and wait > 0:
            raise BatteryCloudError(
                f"{self._last_error} (Enlighten failed {self.failures} time(s) in a row; the "
                f"next attempt is allowed in {wait:.0f} s)"
            )
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._write(serial, fields)
        except BatteryCloudError as err:
            self._failed(str(err))
            raise
        except TimeoutError as err:
            why = f"Enlighten did not answer within {self.timeout:.0f} s"
            self._failed(why)
            raise BatteryCloudError(why) from err
        except aiohttp.ClientError as err:
            why = f"cannot reach Enlighten ({urlsplit(self.base).hostname}: {type(err).__name__})"
            self._failed(why)
            raise BatteryCloudError(why) from err
        self.failures, self._retry_at = 0, 0.0
        return answer

    def _failed(self, why: str) -> None:
        self.failures += 1
        self._last_error = why
        backoff = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)
        self._retry_at = self._clock() + backoff
        log.warning("Enlighten battery settings: %s; next attempt after %.0f s", why, backoff)

    async def _write(self, serial: str, fields: Mapping[str, object]) -> dict[str, Any]:
        http = self._session()
        try:
            return await self._put(http, serial, fields)
        except _Expired:
            self._signed_in = False  # the session ran out: sign in once more, then give up
        try:
            return await self._put(http, serial, fields)
        except _Expired:
            raise BatteryCloudError("Enlighten keeps asking to sign in again") from None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # a cloud on an address in tests
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
            self._signed_in = False
        return self._http

    async def _put(
        self, http: aiohttp.ClientSession, serial: str, fields: Mapping[str, object]
    ) -> dict[str, Any]:
        if not self._signed_in:
            await self._sign_in(http)
        site = await self._site(http, serial)
        url = f"{self.base}{API}/batterySettings/{site}"
        await self._call(http, "GET", url, "reading the battery settings")  # sets the token
        if fields.get("chargeFromGrid") is True:
            disclaimer = f"{self.base}{API}/batterySettings/acceptDisclaimer/{site}"
            body = {"disclaimer-type": "itc"}
            await self._call(http, "POST", disclaimer, "accepting the disclaimer", body)
        answer = await self._call(http, "PUT", url, "writing the battery settings", dict(fields))
        log.info("Enlighten took battery settings %s for site %s", dict(fields), site)
        return answer if isinstance(answer, dict) else {}

    async def _sign_in(self, http: aiohttp.ClientSession) -> None:
        try:
            await self._login(http)
        except MfaRequired:
            raise BatteryCloudError(
                "the Enlighten account uses multi-factor authentication: envoy2mqtt cannot sign "
                "in by password, so battery settings cannot be written through Enlighten"
            ) from None
        except TokenError as err:
            raise BatteryCloudError(f"signing in to Enlighten: {err}") from None
        self._signed_in = True

    async def _site(self, http: aiohttp.ClientSession, serial: str) -> int:
        if serial in self._sites:
            return self._sites[serial]
        found = await self._call(
            http, "GET", f"{self.base}/app-api/search_sites.json", "listing the sites"
        )
        sites = found.get("sites") if isinstance(found, dict) else None
        for site in sites if isinstance(sites, list) else []:
            site_id = site.get("id") if isinstance(site, dict) else None
            if not isinstance(site_id, int):
                continue
            url = f"{self.base}/app-api/{site_id}/devices.json"
            devices = await self._call(http, "GET", url, "listing a site's devices")
            if serial in _serials(devices):
                self._sites[serial] = site_id
                return site_id
        raise BatteryCloudError(
            f"no site of this Enlighten account has gateway {serial}: check that the gateway "
            "is registered to the account of ENVOY_USERNAME"
        )

    async def _call(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: str,
        doing: str,
        body: object = None,
    ) -> object:
        headers = {}
        if method != "GET":
            token = _cookie(http, XSRF_COOKIE)
            if token is not None:
                headers[XSRF_HEADER] = token
        async with http.request(
            method, url, json=body, headers=headers, allow_redirects=False
        ) as response:
            status, text = response.status, await response.text()
        if status in (301, 302, 303) or (status == 401 and method == "GET"):
            raise _Expired
        if status == 406:
            raise BatteryCloudError(
                f"{doing}: Enlighten refused this client (HTTP 406 Not Acceptable; it turns some "
                "User-Agents away)"
            )
        if status in (401, 403):
            raise BatteryCloudError(f"{doing}: Enlighten refused it (HTTP {status}: {_said(text)})")
        if status == 429 or status >= 500:
            raise BatteryCloudError(f"{doing}: Enlighten is unavailable (HTTP {status})")
        if status != 200:
            raise BatteryCloudError(f"{doing}: Enlighten answered HTTP {status}: {_said(text)}")
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise BatteryCloudError(f"{doing}: Enlighten answered something not JSON") from None


def _cookie(http: aiohttp.ClientSession, name: str) -> str | None:
    for cookie in http.cookie_jar:
        if cookie.key == name:
            return cookie.value
    return None


def _serials(devices: object) -> set[str]:
    groups = devices.get("result") if isinstance(devices, dict) else None
    out: set[str] = set()
    for group in groups if isinstance(groups, list) else []:
        for device in group.get("devices", []) if isinstance(group, dict) else []:
            if isinstance(device, dict) and device.get("serial_num") is not None:
                out.add(str(device["serial_num"]))
    return out


def _said(text: str) -> str:
    """The service's own message from an error body, or its first words."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:120] or "no message"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else text.strip()[:120]


def cloud_fields(setting: str, value: object, mode_now: str | None) -> dict[str, object]:
    """The batterySettings body for one storage setting: `mode` (a gateway storage mode),
    `reserve_soc` or `charge_from_grid` (`on`/`off`).

    Each profile keeps its own reserve and charge from grid, so those name the profile the
    battery runs now (`mode_now`) and land on it.
    """
    match setting:
        case "mode":
            return {"profile": PROFILES[str(value)]}
        case "charge_from_grid":
            fields: dict[str, object] = {"chargeFromGrid": value == "on"}
        case _:
            fields = {"batteryBackupPercentage": int(str(value))}
    if mode_now is not None and mode_now in PROFILES:
        fields["profile"] = PROFILES[mode_now]
    return fields
