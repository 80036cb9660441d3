"""The gateway edge: pyenphase underneath, polite scheduling on top.

pyenphase does the protocol (firmware probe, both auth schemes, data models, quirks). This
module adds what a long-running bridge needs: one request in flight per gateway (the gate
middleware), lanes that read a few endpoints at their own cadence, and one translation of
foreign exceptions into ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson
from pyenphase import Envoy
from pyenphase.auth import EnvoyAuth, EnvoyLegacyAuth, EnvoyTokenAuth
from pyenphase.const import (
    AUTH_TOKEN_MIN_VERSION,
    URL_ENSEMBLE_INVENTORY,
    URL_GRID_RELAY,
    URL_INVENTORY,
)
from pyenphase.exceptions import (
    EnvoyAuthenticationError,
    EnvoyAuthenticationRequired,
    EnvoyError,
)
from pyenphase.models.acb import EnvoyBatteryAggregate
from pyenphase.models.encharge import EnvoyEnchargeAggregate, EnvoyEnchargePower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import EnvoyMeterData
from pyenphase.updaters.api_v1_production_inverters import EnvoyApiV1ProductionInvertersUpdater
from pyenphase.updaters.base import EnvoyUpdater
from pyenphase.updaters.device_data_inverters import EnvoyDeviceDataInvertersUpdater
from pyenphase.updaters.inventory import EnvoyInventoryUpdater

from envoy2mqtt.auth.tokens import TokenError
from envoy2mqtt.core.snapshot import AuthStatus, GatewayInfo
from envoy2mqtt.gateway.gate import Gate, Handler, polite
from envoy2mqtt.gateway.overlay import Battery
from envoy2mqtt.gateway.pinning import CertificatePins

log = logging.getLogger(__name__)

URL_METERS = "/ivp/meters"
URL_METERS_READINGS = "/ivp/meters/readings"
URL_SECCTRL = "/ivp/ensemble/secctrl"
URL_BATTERY_POWER = "/ivp/ensemble/power"

# Updaters that read inverters: they run in their own, slower lane (inverters report every
# 5 minutes and /inventory.json is the gateway's slowest endpoint).
INVERTER_UPDATERS: tuple[type[EnvoyUpdater], ...] = (
    EnvoyApiV1ProductionInvertersUpdater,
    EnvoyDeviceDataInvertersUpdater,
    EnvoyInventoryUpdater,
)


class GatewayError(Exception):
    """The gateway could not be read; the message says why in plain words."""


class GatewayUnavailable(GatewayError):
    """The gateway did not answer, or answered garbage."""


class GatewayAuthError(GatewayError):
    """The gateway refused our credentials."""


class CertificateChanged(GatewayError):
    """The gateway's certificate is not the pinned one (PIN_GATEWAY_CERTIFICATE)."""


class EndpointMissing(GatewayUnavailable):
    """The gateway answered 404: this firmware does not have the endpoint."""


class TokenSource(Protocol):
    """Where JWTs for firmware 7+ come from (a fixed token, or Enlighten with a cache)."""

    async def token(self, serial: str) -> str:
        """A token believed valid for this gateway (cached where possible)."""
        ...

    async def renew(self, serial: str) -> str:
        """A fresh token (the gateway refused the last one)."""
        ...

    def next_check(self) -> float:
        """Seconds until `maintain()` should run (daily, or sooner when renewal nears)."""
        ...

    async def maintain(self, serial: str) -> bool:
        """Renew ahead of expiry if due; True when a new token is ready to be presented."""
        ...

    def outcome(self, *, accepted: bool) -> None:
        """Note whether the gateway accepted the token (for diagnostics)."""
        ...

    def status(self) -> AuthStatus:
        """What is known about the current token, for diagnostics."""
        ...


def answered_within(
    seconds: float,
) -> Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]:
    """An aiohttp middleware bounding one request, counted from when it holds the gate.

    aiohttp's own total timeout also counts the wait for the gate, so a fast read queued
    behind a slow /inventory.json would time out without the gateway ever being asked, and
    the gateway would be marked offline for one slow endpoint.
    """

    async def middleware(
        request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        async with asyncio.timeout(seconds):
            response = await handler(request)
            await response.read()
            return response

    return middleware


@functools.cache
def no_verify_ssl() -> ssl.SSLContext:
    """Gateways use self-signed certificates; like every peer, do not verify them.

    One context for all gateways: each context holds the CA store (~0.8 MB), which matters
    with hundreds of gateways in one process.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _GatedLegacyAuth(EnvoyAuth):
    """pyenphase's digest auth, with the gate wrapped around its middleware.

    pyenphase passes the digest middleware per request, which replaces the session's own
    middlewares, so the gate must travel with it.
    """

    def __init__(self, inner: EnvoyLegacyAuth, gate: Gate, timeout: float) -> None:
        self._inner = inner
        self._gate = polite(gate)
        self._timed = answered_within(timeout)

    async def setup(self, client: aiohttp.ClientSession) -> None:
        await self._inner.setup(client)

    @property
    def cookies(self) -> dict[str, str]:
        return self._inner.cookies

    @property
    def auth(self) -> Any:
        digest = self._inner.auth
        if digest is None:
            return None
        gate, timed = self._gate, self._timed

        async def gated(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
            async def inner(req: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
                return await digest(req, handler)

            async def bounded(req: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
                return await timed(req, inner)

            return await gate(request, bounded)

        return gated

    @property
    def headers(self) -> dict[str, str]:
        return self._inner.headers

    def get_endpoint_url(self, endpoint: str) -> str:
        return self._inner.get_endpoint_url(endpoint)


class GatewayClient:
    """One gateway, read through pyenphase with one request in flight."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tokens: TokenSource | None = None,
        timeout: float = 10.0,
        pins: CertificatePins | None = None,
    ) -> None:
        """Describe the gateway; nothing is sent until `connect()`."""
        self.host = host
        self.gate = Gate()
        self._pins = pins
        self._username = username
        self._password = password
        self._tokens = tokens
        self._request_timeout = timeout
        # no total: `answered_within` bounds each request from when it holds the gate
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._envoy: Envoy | None = None
        self._meter_status: dict[str, Any] = {}
        self._relay = True
        self.auth_failures = 0

    async def __aenter__(self) -> GatewayClient:
        """Open the HTTP session (learning the certificate's pin first, if pinning is on)."""
        checked: ssl.SSLContext | aiohttp.Fingerprint = no_verify_ssl()
        if self._pins is not None:
            try:
                checked = await self._pins.fingerprint(self.host, self._request_timeout) or checked
            except ValueError as err:  # a damaged pin file: the message says which
                raise CertificateChanged(str(err)) from err
            except (OSError, TimeoutError) as err:
                raise GatewayUnavailable(
                    f"reading the gateway's certificate: {err or type(err).__name__}"
                ) from err
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=checked, limit=2),
            middlewares=(polite(self.gate), answered_within(self._request_timeout)),
            timeout=self._timeout,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def envoy(self) -> Envoy:
        """The pyenphase object (after `connect()`)."""
        if self._envoy is None:
            raise GatewayError("not connected")
        return self._envoy

    # -- set-up -------------------------------------------------------------------------------

    async def connect(self) -> GatewayInfo:
        """Read /info, authenticate, and find out what the gateway has."""
        if self._session is None:
            raise GatewayError("use `async with GatewayClient(...)`")
        envoy = Envoy(self.host, client=self._session, timeout=self._timeout)
        envoy.set_retry_policy(max_attempts=1, max_delay=0)  # retries live in the bridge
        self._envoy = envoy
        async with translated("reading /info"):
            await envoy.setup()
        await self.authenticate()
        async with translated("probing features"):
            await envoy.probe()
        return self.info()

    async def authenticate(self, *, renew: bool = False) -> None:
        """Authenticate with digest (firmware < 7) or a JWT checked on the gateway (7+).

        A token the gateway refuses is replaced by a fresh one once (if it can be).
        """
        envoy = self.envoy
        if envoy.firmware < AUTH_TOKEN_MIN_VERSION:
            # only envoy/installer exist locally; Enlighten credentials mean "use the default"
            local = self._username in ("envoy", "installer")
            async with translated("authenticating"):
                await envoy.authenticate(
                    username=self._username if local else None,
                    password=self._password if local else None,
                )
            if isinstance(envoy.auth, EnvoyLegacyAuth):
                envoy.auth = _GatedLegacyAuth(envoy.auth, self.gate, self._request_timeout)
            return
        tokens = self._tokens
        if tokens is None:
            raise GatewayAuthError(
                "this gateway runs firmware 7 or later and needs a token: set ENVOY_TOKEN, "
                "or ENVOY_USERNAME and ENVOY_PASSWORD of your Enlighten account"
            )
        serial = envoy.serial_number or ""

        async def checked(token: str) -> EnvoyTokenAuth | None:
            auth = EnvoyTokenAuth(self.host, envoy_serial=serial, token=token)
            try:
                # pyenphase retries check_jwt on connection errors without end: bound it
                async with asyncio.timeout(self._request_timeout):
                    await auth.setup(envoy.current_client)
            except (EnvoyAuthenticationError, EnvoyAuthenticationRequired):
                self.auth_failures += 1
                tokens.outcome(accepted=False)
                return None
            except TimeoutError as err:
                raise GatewayUnavailable("timed out checking the token on the gateway") from err
            tokens.outcome(accepted=True)
            return auth

        try:
            auth = await checked(await (tokens.renew(serial) if renew else tokens.token(serial)))
            if auth is None and not renew:
                auth = await checked(await tokens.renew(serial))
        except TokenError as err:
            self.auth_failures += 1
            raise GatewayAuthError(str(err)) from err
        if auth is None:
            raise GatewayAuthError(
                "the gateway refused a fresh token from Enphase (/auth/check_jwt): check that "
                "the gateway is registered to this Enlighten account"
            )
        envoy.auth = auth

    def info(self) -> GatewayInfo:
        """What the gateway says about itself."""
        envoy = self.envoy
        return GatewayInfo(
            serial=envoy.serial_number or self.host,
            firmware=str(envoy.firmware),
            part_number=envoy.part_number,
            model=envoy.envoy_model,
            metered=envoy.is_metered,
            phase_count=envoy.phase_count,
            phase_mode=str(envoy.phase_mode) if envoy.phase_mode else None,
            ct_meters=tuple(str(ct) for ct in envoy.ct_meter_list),
        )

    # -- lanes --------------------------------------------------------------------------------

    async def read_normal(self) -> EnvoyData:
        """Everything pyenphase reads, except the slow inverter endpoints."""
        data = await self._run_updaters(exclude=INVERTER_UPDATERS)
        if raw := data.raw.get(URL_METERS):
            self._meter_status = {ct["eid"]: ct for ct in raw}
        return data

    async def read_inverters(self) -> EnvoyData:
        """The inverter readings (every 5 minutes is as often as they change).

        pyenphase reads /inventory.json only on AC-battery sites; the inverters' status flags
        (producing, communicating, device_status) live there on every site, so read it here.
        """
        data = await self._run_updaters(include=INVERTER_UPDATERS)
        if URL_INVENTORY not in data.raw:
            try:
                data.raw[URL_INVENTORY] = await self.get_json(URL_INVENTORY)
            except GatewayError as err:
                log.debug("no inverter inventory from %s: %s", self.host, err)
        return data

    async def read_grid(self) -> str | None:
        """The Enpower relay's `mains_oper_state` (or None where there is no relay)."""
        if self._relay:
            try:
                relay = await self.get_json(URL_GRID_RELAY)
            except EndpointMissing:
                self._relay = False  # older firmware: fall back to the inventory
            else:
                if isinstance(relay, dict) and "mains_oper_state" in relay:
                    return str(relay["mains_oper_state"])
                self._relay = False
        inventory = await self.get_json(URL_ENSEMBLE_INVENTORY)
        async with translated(f"reading {URL_ENSEMBLE_INVENTORY}"):
            for group in inventory if isinstance(inventory, list) else []:
                if group.get("type") == "ENPOWER":
                    for device in group.get("devices", []):
                        return str(device["mains_oper_state"])
        return None

    async def read_collar(self) -> str | None:
        """The IQ Meter Collar's `grid_state`, where there is one."""
        inventory = await self.get_json(URL_ENSEMBLE_INVENTORY)
        async with translated(f"reading {URL_ENSEMBLE_INVENTORY}"):
            for group in inventory if isinstance(inventory, list) else []:
                if group.get("type") == "COLLAR":
                    for device in group.get("devices", []):
                        return str(device["grid_state"])
        return None

    async def read_meters(
        self,
    ) -> tuple[dict[str, EnvoyMeterData | None], dict[str, dict[str, EnvoyMeterData | None]]]:
        """Fresh CT readings, typed by pyenphase's own model; phases where reported."""
        readings = await self.get_json(URL_METERS_READINGS)
        meters: dict[str, EnvoyMeterData | None] = {}
        phases: dict[str, dict[str, EnvoyMeterData | None]] = {}
        async with translated(f"reading {URL_METERS_READINGS}"):
            for reading in readings if isinstance(readings, list) else []:
                status = self._meter_status.get(reading.get("eid"))
                if status is None or status.get("state") != "enabled":
                    continue
                kind = str(status["measurementType"])
                meters[kind] = EnvoyMeterData.from_api(reading, status)
                channels = reading.get("channels") or []
                if len(channels) > 1 and self.envoy.phase_count > 1:  # as pyenphase: no phases on 1
                    phases[kind] = {
                        f"L{i + 1}": EnvoyMeterData.from_api(channel, status)
                        for i, channel in enumerate(channels[: self.envoy.phase_count])
                    }
        return meters, phases

    async def read_battery(self, *, combined: bool = False) -> Battery:
        """Battery state of charge and power of each Encharge unit.

        `combined`: the site also has AC Batteries, so /ivp/ensemble/secctrl's totals over
        both kinds (pyenphase's `battery_aggregate`) are read from the same answer.
        """
        secctrl = await self.get_json(URL_SECCTRL)
        power = await self.get_json(URL_BATTERY_POWER)
        async with translated("reading the battery"):
            aggregate = EnvoyEnchargeAggregate.from_api(secctrl)
            units = {
                str(unit["serial_num"]): EnvoyEnchargePower.from_api(unit)
                for unit in (power.get("devices:") or power.get("devices") or [])
            }
            both = EnvoyBatteryAggregate.from_api(secctrl) if combined else None
        return Battery(aggregate, units, both)

    # -- plumbing -----------------------------------------------------------------------------

    async def get_json(self, path: str) -> Any:
        """GET one endpoint through pyenphase's session and auth; parse its JSON."""
        async with translated(f"reading {path}"):
            response = await self.envoy.request(path)
            body = await response.read()
            if response.status == 404:
                raise EndpointMissing(f"{path} answered HTTP 404")
            if response.status != 200:
                raise GatewayUnavailable(f"{path} answered HTTP {response.status}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise GatewayUnavailable(f"{path} answered something that is not JSON") from err

    async def _run_updaters(
        self,
        include: Iterable[type[EnvoyUpdater]] | None = None,
        exclude: Iterable[type[EnvoyUpdater]] = (),
    ) -> EnvoyData:
        envoy = self.envoy
        wanted = tuple(include) if include is not None else None
        skip = tuple(exclude)
        # pyenphase's update() runs every updater; the lanes need a subset of them, so
        # this mirrors update() over the probed updaters (kept private by pyenphase).
        updaters: list[EnvoyUpdater] = envoy._updaters
        envoy._endpoint_cache.clear()
        data = EnvoyData()
        async with translated("updating"):
            for updater in updaters:
                if (wanted is not None and not isinstance(updater, wanted)) or isinstance(
                    updater, skip
                ):
                    continue
                await updater.update(data)
            if wanted is None:
                envoy._validate_update(data)
        return data


class translated:  # noqa: N801 - used like a function: `async with translated("...")`
    """Translate pyenphase/aiohttp exceptions into GatewayError, once, at the edge."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, _tb: object
    ) -> None:
        if err is None or isinstance(err, GatewayError | asyncio.CancelledError):
            return
        if (changed := _fingerprint_mismatch(err)) is not None:
            raise CertificateChanged(f"{self.doing}: {changed}") from err
        if isinstance(err, EnvoyAuthenticationRequired | EnvoyAuthenticationError):
            raise GatewayAuthError(f"{self.doing}: the gateway refused our credentials") from err
        if isinstance(err, TimeoutError):
            raise GatewayUnavailable(f"{self.doing}: the gateway did not answer in time") from err
        if isinstance(err, aiohttp.ClientError):
            raise GatewayUnavailable(f"{self.doing}: {type(err).__name__}") from err
        if isinstance(err, EnvoyError):
            raise GatewayUnavailable(f"{self.doing}: {err}") from err
        if isinstance(err, orjson.JSONDecodeError):
            raise GatewayUnavailable(
                f"{self.doing}: the gateway answered something that is not JSON"
            ) from err
        # SyntaxError: an /info that is not XML (lxml's XMLSyntaxError, ElementTree's ParseError)
        if isinstance(
            err, KeyError | TypeError | ValueError | AttributeError | IndexError | SyntaxError
        ):
            raise GatewayUnavailable(
                f"{self.doing}: unexpected data from the gateway ({type(err).__name__}: {err})"
            ) from err


def _fingerprint_mismatch(err: BaseException) -> aiohttp.ServerFingerprintMismatch | None:
    """A changed pinned certificate, however deep pyenphase wrapped it."""
    cause: BaseException | None = err
    for _ in range(8):  # chains are short; never follow a cycle
        if cause is None or isinstance(cause, aiohttp.ServerFingerprintMismatch):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def merge(base: EnvoyData, **changes: Any) -> EnvoyData:
    """A copy of pyenphase data with some fields replaced (the lanes overlay fresh readings)."""
    return dataclasses.replace(base, **changes)


def merge_inverters(base: EnvoyData, inverters: EnvoyData) -> EnvoyData:
    """Carry the inverter lane's readings into a newer normal-lane reading."""
    raw = dict(base.raw)
    raw.update({k: v for k, v in inverters.raw.items() if k not in raw or k == URL_INVENTORY})
    return dataclasses.replace(
        base,
        inverters=inverters.inverters or base.inverters,
        acb_inventory=inverters.acb_inventory or base.acb_inventory,
        raw=raw,
    )


def as_mapping(value: object) -> Mapping[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
