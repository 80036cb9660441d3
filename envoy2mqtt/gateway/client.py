"""One gateway's client: connect, authenticate, and read it lane by lane, politely.

pyenphase does the protocol (firmware probe, both auth schemes, data models, quirks), through
`adapter`, the only module that knows its insides. This module adds what a long-running
bridge needs: one request in flight per endpoint class (the gate middleware), each request
bounded by its class's timeout from when it holds its slot, certificate pinning, a connect in
stages (`open`: /info and authentication, seconds; `probe`: what the gateway has, which
reads the slow pages), a grid read that needs no probe, and lanes that read a few endpoints
at their own cadence.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Final, Protocol

import aiohttp
from pyenphase import Envoy
from pyenphase.auth import EnvoyLegacyAuth, EnvoyTokenAuth
from pyenphase.const import AUTH_TOKEN_MIN_VERSION, URL_INVENTORY
from pyenphase.exceptions import EnvoyAuthenticationError, EnvoyAuthenticationRequired
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtMeterData

from envoy2mqtt.auth.errors import TokenError
from envoy2mqtt.core.snapshot import SCHEDULE_PATH, AuthStatus, GatewayInfo, storage_schedule
from envoy2mqtt.core.zones import zone_named
from envoy2mqtt.gateway import adapter
from envoy2mqtt.gateway.errors import (
    CertificateChanged,
    EndpointMissing,
    GatewayAuthError,
    GatewayError,
    GatewayUnavailable,
)
from envoy2mqtt.gateway.gate import Answered, Gate, Timeouts, answered_within, polite
from envoy2mqtt.gateway.legacy import GatedLegacyAuth
from envoy2mqtt.gateway.overlay import Battery, Contacts, Meters
from envoy2mqtt.gateway.pinning import CertificatePins, no_verify_ssl
from envoy2mqtt.gateway.translate import translated

log = logging.getLogger(__name__)
_FROM_TARIFF: Final = "battery mode and charge from grid from the tariff file"


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
        slow_timeout: float = 120.0,
        pins: CertificatePins | None = None,
        on_answer: Answered | None = None,
    ) -> None:
        """Describe the gateway; nothing is sent until `open()` or `connect()`.

        `timeout` bounds a fast (`/ivp/*`) request, `slow_timeout` a page (production.json,
        inventory.json, home.json). `on_answer` is told how long each good answer took, and
        its class (the lanes' pace adapts to it).
        """
        self.host = host
        self.gate = Gate(on_answer)
        self.timeouts = Timeouts(fast=timeout, slow=max(slow_timeout, timeout))
        self._pins = pins
        self._username = username
        self._password = password
        self._tokens = tokens
        self._request_timeout = timeout
        # no total: `answered_within` bounds each request from when it holds the gate
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._envoy: Envoy | None = None
        self._timezone: str | None = None
        self._meter_status: dict[object, CtMeterData] = {}
        self._relay = True
        self._schedule = True  # /ivp/sc/sched, until it answers 404 (older firmware)
        self._schedule_answer: object = None  # its newest answer that was a schedule
        self._schedule_trouble: str | None = None  # "failed" or "garbage", as last logged
        # the newest reading of each of pyenphase's lanes, handed back to it as `envoy.data`
        self._normal: EnvoyData | None = None
        self._inverters: EnvoyData | None = None

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
            middlewares=(polite(self.gate), answered_within(self.timeouts)),
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
        """Read /info, authenticate, find out what the gateway has and its time zone."""
        await self.open()
        await self.probe()
        await self.read_zone()
        return self.info()

    async def open(self) -> GatewayInfo:
        """Read /info and authenticate: seconds, even on a gateway whose pages take a minute.

        What the gateway has is not known yet (`probe`), but its grid can be read already
        (`read_grid_any`).
        """
        if self._session is None:
            raise GatewayError("use `async with GatewayClient(...)`")
        envoy = Envoy(self.host, client=self._session, timeout=self._timeout)
        envoy.set_retry_policy(max_attempts=1, max_delay=0)  # retries live in the bridge
        adapter.probe_once(envoy, self._session, self.host)
        self._envoy = envoy
        async with translated("reading /info", self.host):
            await envoy.setup()
        await self.authenticate()
        # only what /info said: pyenphase's model, meter and phase properties must not be
        # asked before its probe (they would settle on "no meters" for good)
        return GatewayInfo(
            serial=envoy.serial_number or self.host,
            firmware=str(envoy.firmware),
            part_number=envoy.part_number,
        )

    async def probe(self) -> GatewayInfo:
        """Find out what the gateway has (pyenphase's probe reads production.json, which
        takes up to a minute on current firmware)."""
        async with translated("probing features"):
            await self.envoy.probe()
        return self.info()

    async def read_zone(self) -> str | None:
        """The time zone the gateway states in /home (over a minute on current firmware)."""
        self._timezone = await self._stated_zone()
        return self._timezone

    async def _stated_zone(self) -> str | None:
        """The time zone the gateway states in /home (read once per connect), if it does."""
        try:
            async with translated("reading /home"):
                home = await self.envoy.interface_settings()
        except GatewayError:
            return None
        zone = home.timezone if home is not None else None
        return zone if zone_named(zone) is not None else None

    async def authenticate(self, *, renew: bool = False) -> None:
        """Authenticate with digest (firmware < 7) or a JWT checked on the gateway (7+).

        A token the gateway refuses is replaced by a fresh one once (if it can be).
        """
        if self.envoy.firmware < AUTH_TOKEN_MIN_VERSION:
            await self._authenticate_digest()
            return
        tokens = self._tokens
        if tokens is None:
            raise GatewayAuthError(
                "this gateway runs firmware 7 or later and needs a token: set ENVOY_TOKEN, "
                "or ENVOY_USERNAME and ENVOY_PASSWORD of your Enlighten account"
            )
        serial = self.envoy.serial_number or ""
        first = tokens.renew if renew else tokens.token
        try:
            auth = await self._checked(tokens, await first(serial))
            if auth is None and not renew:
                auth = await self._checked(tokens, await tokens.renew(serial))
        except TokenError as err:
            raise GatewayAuthError(str(err)) from err
        if auth is None:
            raise GatewayAuthError(
                "the gateway refused a fresh token from Enphase (/auth/check_jwt): check that "
                "the gateway is registered to this Enlighten account"
            )
        self.envoy.auth = auth

    async def _authenticate_digest(self) -> None:
        envoy = self.envoy
        # only envoy/installer exist locally; Enlighten credentials mean "use the default"
        local = self._username in ("envoy", "installer")
        async with translated("authenticating"):
            await envoy.authenticate(
                username=self._username if local else None,
                password=self._password if local else None,
            )
        if isinstance(envoy.auth, EnvoyLegacyAuth):
            envoy.auth = GatedLegacyAuth(envoy.auth, self.gate, self.timeouts)

    async def _checked(self, tokens: TokenSource, token: str) -> EnvoyTokenAuth | None:
        """`token` set up as the gateway's auth if the gateway accepts it (/auth/check_jwt)."""
        envoy = self.envoy
        auth = EnvoyTokenAuth(self.host, envoy_serial=envoy.serial_number or "", token=token)
        try:
            # pyenphase retries check_jwt on connection errors without end: bound it
            async with asyncio.timeout(self._request_timeout):
                await auth.setup(envoy.current_client)
        except (EnvoyAuthenticationError, EnvoyAuthenticationRequired):
            tokens.outcome(accepted=False)
            return None
        except TimeoutError as err:
            raise GatewayUnavailable("timed out checking the token on the gateway") from err
        tokens.outcome(accepted=True)
        return auth

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
            timezone=self._timezone,
        )

    # -- lanes --------------------------------------------------------------------------------

    async def read_normal(self, *, reuse_probe: bool = False) -> EnvoyData:
        """Everything pyenphase reads, except the slow inverter endpoints (`reuse_probe`:
        the answers the probe just had, where it read them), and what the battery controller
        runs (/ivp/sc/sched, in `data.raw`, where the gateway has it).

        Afterwards `envoy.data` is this reading (with the inverter lane's newest), as after
        pyenphase's own `update()`, so pyenphase's write methods can run.
        """
        data = await adapter.run_updaters(
            self.envoy, exclude=adapter.INVERTER_UPDATERS, reuse_probe=reuse_probe
        )
        if status := adapter.meter_status(data):
            self._meter_status = status
        if data.tariff is not None and data.tariff.storage_settings is not None:
            await self._add_schedule(data)
        self._normal = data
        adapter.hand_over(self.envoy, data, self._inverters)
        return data

    async def read_schedule(self) -> object:
        """/ivp/sc/sched's answer, read now: the mode and charge from grid the battery
        controller runs (on D8.3 the tariff file is a stale copy). None on firmware without
        it: asked once per connection, then never again.
        """
        if not self._schedule:
            return None
        try:
            return await adapter.fetch_json(self.envoy, SCHEDULE_PATH)
        except EndpointMissing:
            self._schedule = False
            log.info(
                "%s: no %s on this firmware: battery mode and charge from grid are the tariff "
                "file's",
                self.host,
                SCHEDULE_PATH,
            )
            return None

    async def _add_schedule(self, data: EnvoyData) -> None:
        """Lay /ivp/sc/sched's answer into a full reading, for the catalog to read.

        An answer that is not a schedule leaves it out (the catalog then reads the tariff). A
        read that failed keeps the last answer: on one timeout the mode must not flip to the
        tariff's stale copy and back.
        """
        try:
            answer = await self.read_schedule()
        except GatewayUnavailable as err:
            answer = self._schedule_answer
            kept = "its last answer kept" if answer is not None else _FROM_TARIFF
            self._schedule_failed("failed", f"{err}; {kept}")
        else:
            if answer is not None and storage_schedule(answer) is None:
                self._schedule_failed(
                    "garbage",
                    f"{SCHEDULE_PATH} answered something that is not a battery schedule "
                    f"({_sample(answer)}); {_FROM_TARIFF}",
                )
                answer = None
            elif answer is not None and self._schedule_trouble is not None:
                self._schedule_trouble = None
                log.info("%s: %s read again", self.host, SCHEDULE_PATH)
            self._schedule_answer = answer
        if answer is not None:
            data.raw[SCHEDULE_PATH] = answer

    def _schedule_failed(self, trouble: str, why: str) -> None:
        """Log a read of the schedule that failed, or garbage, once until that changes."""
        if self._schedule_trouble != trouble:
            self._schedule_trouble = trouble
            log.warning("%s: %s", self.host, why)

    async def read_inverters(self) -> EnvoyData:
        """The inverter readings (every 5 minutes is as often as they change).

        pyenphase reads /inventory.json only on AC-battery sites; the inverters' status flags
        (producing, communicating, device_status) live there on every site, so read it here.
        """
        data = await adapter.run_updaters(self.envoy, include=adapter.INVERTER_UPDATERS)
        if URL_INVENTORY not in data.raw:
            try:
                data.raw[URL_INVENTORY] = await adapter.read_inventory(self.envoy)
            except GatewayError as err:
                log.debug("no inverter inventory from %s: %s", self.host, err)
        self._inverters = data
        if self._normal is not None:
            adapter.hand_over(self.envoy, self._normal, data)
        return data

    async def read_grid(self) -> str | None:
        """The Enpower relay's `mains_oper_state` (or None where there is no relay)."""
        if self._relay:
            try:
                state = await adapter.read_relay(self.envoy)
            except EndpointMissing:
                state = None  # older firmware: fall back to the inventory
            if state is not None:
                return state
            self._relay = False
        return await adapter.read_ensemble(self.envoy, adapter.ENPOWER)

    async def read_grid_any(self) -> tuple[str, str] | None:
        """The grid as the System Controller or the IQ Meter Collar reports it, before the
        probe: ("relay", `mains_oper_state`) or ("collar", `grid_state`); None without either.

        Fast endpoints only (/ivp/ensemble/relay, /ivp/ensemble/inventory), so a gateway
        whose pages take a minute still says at once whether the grid is there.
        """
        if self._relay:
            try:
                state = await adapter.read_relay(self.envoy)
            except EndpointMissing:
                state = None
            if state is not None:
                return "relay", state
            self._relay = False
        try:  # one inventory read for both devices
            enpower, collar = await adapter.read_grid_devices(self.envoy)
        except EndpointMissing:
            return None
        if enpower is not None:
            return "relay", enpower
        return ("collar", collar) if collar is not None else None

    async def read_collar(self) -> str | None:
        """The IQ Meter Collar's `grid_state`, where there is one."""
        return await adapter.read_ensemble(self.envoy, adapter.COLLAR)

    async def read_meters(self) -> Meters:
        """Fresh CT readings, typed by pyenphase's own model; phases where reported."""
        return await adapter.read_meters(self.envoy, self._meter_status)

    async def read_contacts(self) -> Contacts:
        """The dry contacts' status and settings, read now (two small /ivp/* answers)."""
        status = await adapter.read_dry_contact_status(self.envoy)
        return Contacts(status, await adapter.read_dry_contact_settings(self.envoy))

    async def read_battery(self, *, combined: bool = False) -> Battery:
        """Battery state of charge and power of each Encharge unit.

        `combined`: the site also has AC Batteries, so /ivp/ensemble/secctrl's totals over
        both kinds (pyenphase's `battery_aggregate`) are read from the same answer.
        """
        return await adapter.read_battery(self.envoy, combined=combined)


def _sample(answer: object) -> str:
    """The start of an answer, for a log line."""
    text = repr(answer)
    return text if len(text) <= 80 else f"{text[:77]}..."
