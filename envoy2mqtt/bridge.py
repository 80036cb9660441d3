"""One gateway's bridge: polling lanes feed one snapshot, the publisher sends what changed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog import derived
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.gateway.client import (
    CertificateChanged,
    GatewayAuthError,
    GatewayClient,
    GatewayError,
    TokenSource,
    merge_inverters,
)
from envoy2mqtt.gateway.gate import Lane, Pace, current_lane, in_window
from envoy2mqtt.gateway.overlay import LaneReadings
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.mqtt.publisher import GatewayPublisher, Link, PublishOptions
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.settings import GatewaySettings

log = logging.getLogger(__name__)

# offline after two failed reads in a row: two fast-lane cycles for a gateway that answers
# errors or refuses connections, at most 2 x REQUEST_TIMEOUT + two cycles for one that hangs
OFFLINE_AFTER_FAILURES = 2
BATTERY_SAVE_EVERY = 300.0
RECONNECT_MIN = 2.0
RECONNECT_MAX = 300.0


class Bridge:
    """Reads one gateway politely and keeps its MQTT topics current."""

    def __init__(
        self,
        gateway: GatewaySettings,
        link: Link,
        topics: Topics,
        options: PublishOptions,
        *,
        tokens: TokenSource | None = None,
        request_timeout: float = 10.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        state_dir: Path | None = None,
        pins: CertificatePins | None = None,
    ) -> None:
        """Prepare; `run()` connects and polls until cancelled."""
        self.settings = gateway
        self.pins = pins
        self.link = link
        self.topics = topics
        self.options = options
        self.tokens = tokens
        self.request_timeout = request_timeout
        self.wall_clock = wall_clock
        self.pace = Pace()
        self.publisher: GatewayPublisher | None = None
        self.client: GatewayClient | None = None
        self._data = EnvoyData()
        self._inverters: EnvoyData | None = None
        self._failures = 0
        self._reauthed = False
        # the fast and battery lanes' newest readings (time.monotonic() when read), laid over
        # every merge so an older reading from another lane never replaces them
        self._lanes = LaneReadings()
        self._grid_read = False  # a new grid reading since the last publish (for the debounce)
        self.processing: list[float] = []
        self.on_processed: Callable[[float], None] | None = None
        self.on_connected: Callable[[GatewayInfo], None] | None = None
        self.state_dir = state_dir
        self._energy: derived.BatteryIntegrator | None = None
        self._battery_saved = 0.0

    @property
    def serial(self) -> str | None:
        """The gateway's serial once known."""
        return self.publisher.info.serial if self.publisher else self.settings.serial

    async def run(self) -> None:
        """Connect and poll; on failure, back off (capped, jittered) and start again."""
        backoff = Backoff(first=RECONNECT_MIN, cap=RECONNECT_MAX)
        while True:
            try:
                async with GatewayClient(
                    self.settings.host,
                    username=self.settings.username,
                    password=self.settings.password.get_secret_value()
                    if self.settings.password
                    else None,
                    tokens=self.tokens,
                    timeout=self.request_timeout,
                    pins=self.pins,
                ) as client:
                    self.client = client
                    client.gate.on_answer = lambda took: self.pace.observe(took, ok=True)
                    info = await client.connect()
                    log.info(
                        "gateway %s (%s, firmware %s) connected",
                        info.serial,
                        self.settings.host,
                        info.firmware,
                    )
                    backoff.reset()
                    await self._poll(client, info)
            except GatewayError as err:
                self._mark(ok=False, err=err, force=True)
                refused = isinstance(err, GatewayAuthError | CertificateChanged)
                level = logging.ERROR if refused else logging.WARNING
                wait = backoff.failed()
                log.log(level, "gateway %s: %s; retrying in %.0f s", self.settings.host, err, wait)
                await asyncio.sleep(wait)
                continue
            await asyncio.sleep(backoff.failed())

    async def _poll(self, client: GatewayClient, info: GatewayInfo) -> None:
        if self.publisher is None or self.publisher.info.serial != info.serial:
            self.publisher = GatewayPublisher(
                self.link, self.topics, info, self.options, name=self.settings.name
            )
        if self.on_connected is not None:
            self.on_connected(info)
        if self.state_dir is not None and self._energy is None:
            self._energy = derived.load(derived.state_path(self.state_dir, info.serial))
        current_lane.set(Lane.NORMAL)
        self._inverters = None
        await self._read_normal()
        await self._read_inverters()
        self._publish(info)
        self._mark(ok=True)
        cadence = self.settings.cadence
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._lane(Lane.NORMAL, cadence.normal, self._read_normal, info))
            lanes.create_task(self._lane(Lane.SLOW, cadence.inverters, self._read_inverters, info))
            if self._data.enpower is not None or self._data.collar is not None or self._has_cts():
                lanes.create_task(self._lane(Lane.FAST, cadence.fast, self._read_fast, info))
            if self._data.encharge_aggregate is not None:
                lanes.create_task(
                    self._lane(Lane.BATTERY, cadence.battery, self._read_battery, info)
                )
            if self.tokens is not None:
                lanes.create_task(self._keep_token(client, self.tokens))

    def _has_cts(self) -> bool:
        return any(meter is not None for meter in self._data.ctmeters.values())

    async def _lane(
        self, lane: Lane, base: float, read: Callable[[], Awaitable[None]], info: GatewayInfo
    ) -> None:
        current_lane.set(lane)
        await self._wait(lane, base)
        while True:
            read_ok = await self._cycle(read, info)
            if lane == Lane.FAST and read_ok:
                await self._confirm_grid(info)
            await self._wait(lane, base)

    async def _cycle(self, read: Callable[[], Awaitable[None]], info: GatewayInfo) -> bool:
        """One read and, when it worked, one publish; whether it worked."""
        try:
            await read()
        except GatewayAuthError as err:
            self.pace.observe(0.0, ok=False)
            await self._reauthenticate(err)
        except GatewayError as err:
            self.pace.observe(0.0, ok=False)
            self._mark(ok=False, err=err)
        else:
            self._mark(ok=True)
            self._publish(info)
            return True
        return False

    async def _confirm_grid(self, info: GatewayInfo) -> None:
        """A changed grid status: read it again soon, until believed or contradicted.

        The debounce wants GRID_DEBOUNCE consecutive reads of the new state; waiting a whole
        fast interval for each would add a second per read to an outage's news. A read
        `grid_confirm` later still filters one-read glitches, at one extra relay request.
        """
        for _ in range(self.options.grid_debounce - 1):
            if self.publisher is None or not self.publisher.grid_unconfirmed:
                return
            await asyncio.sleep(self.pace.interval(self.settings.cadence.grid_confirm))
            if not await self._cycle(self._read_grid, info):
                return

    async def _wait(self, lane: Lane, base: float) -> None:
        """Sleep one interval; every lane but the fast one also sits out the quiet window."""
        await asyncio.sleep(self._interval(lane, base))
        while lane != Lane.FAST and self._quiet():  # noqa: ASYNC110 - polls the wall clock
            await asyncio.sleep(self.settings.cadence.quiet_fast)

    def _quiet(self) -> bool:
        cadence = self.settings.cadence
        return in_window(self.wall_clock().time(), cadence.quiet_start, cadence.quiet_end)

    def _interval(self, lane: Lane, base: float) -> float:
        if lane == Lane.FAST and self._quiet():
            # the gateway's nightly maintenance: only the grid watch runs, and slowly
            return self.pace.interval(self.settings.cadence.quiet_fast)
        return self.pace.interval(base)

    async def _read_normal(self) -> None:
        assert self.client is not None
        started = time.monotonic()
        data = await self.client.read_normal()
        if self._inverters is not None:
            data = merge_inverters(data, self._inverters)
        self._lanes.forget_before(started)
        if self._lanes.grid is None:
            self._grid_read = True  # the relay state in this reading is the newest there is
        self._data = self._lanes.over(data)

    async def _read_inverters(self) -> None:
        assert self.client is not None
        self._inverters = await self.client.read_inverters()
        self._data = merge_inverters(self._data, self._inverters)

    async def _read_fast(self) -> None:
        assert self.client is not None
        if self._has_cts():
            meters = await self.client.read_meters()
            if meters[0]:
                self._lanes.meters = (time.monotonic(), meters)
        await self._read_grid()  # read last: an outage is published the moment it is read

    async def _read_grid(self) -> None:
        assert self.client is not None
        state: str | None = None
        if self._data.enpower is not None:
            state = await self.client.read_grid()
        elif self._data.collar is not None:
            state = await self.client.read_collar()
        if state is not None:
            self._lanes.grid = (time.monotonic(), state)
            self._grid_read = True
        self._data = self._lanes.over(self._data)

    async def _read_battery(self) -> None:
        assert self.client is not None
        combined = self._data.battery_aggregate is not None  # AC Batteries too
        self._lanes.battery = (time.monotonic(), await self.client.read_battery(combined=combined))
        self._data = self._lanes.over(self._data)

    async def _reauthenticate(self, err: GatewayAuthError) -> None:
        """On 401/403: re-check the token, renewing it once if refused; then the pace backs off."""
        assert self.client is not None
        self._mark(ok=False, err=err)
        if self._reauthed:
            return
        self._reauthed = True
        log.warning("gateway %s refused our credentials; authenticating again", self.settings.host)
        try:
            await self.client.authenticate()
        except GatewayError as again:
            log.error("gateway %s: %s", self.settings.host, again)

    async def _keep_token(self, client: GatewayClient, tokens: TokenSource) -> None:
        """Renew the token ahead of its expiry; the token source sets the pace and backs off."""
        current_lane.set(Lane.SLOW)
        while True:
            await asyncio.sleep(tokens.next_check())
            if await tokens.maintain(client.envoy.serial_number or ""):
                try:
                    await client.authenticate()  # presents the new token to the gateway
                except GatewayAuthError as err:
                    await self._reauthenticate(err)
                except GatewayError as err:
                    log.warning("gateway %s: %s", self.settings.host, err)

    def _publish(self, info: GatewayInfo) -> None:
        if self.publisher is None:
            return
        auth = self.tokens.status() if self.tokens is not None else None
        now = datetime.now(UTC)
        extra = derived.observe(self._energy, self._data, now) if self._energy else {}
        snapshot = Snapshot(info, self._data, now, auth, extra)
        if time.monotonic() - self._battery_saved > BATTERY_SAVE_EVERY:
            self.save_state()
        started = time.perf_counter()
        self.publisher.publish_snapshot(snapshot, grid_read=self._grid_read)
        self._grid_read = False
        if self.on_processed is not None:
            self.on_processed(time.perf_counter() - started)

    def save_state(self) -> None:
        """Persist the battery energy counters (every few minutes and on the way out)."""
        self._battery_saved = time.monotonic()
        if self._energy is not None and self.state_dir is not None and self.publisher:
            try:
                derived.save(
                    derived.state_path(self.state_dir, self.publisher.info.serial), self._energy
                )
            except OSError as err:
                log.warning("cannot save battery energy counters in %s: %s", self.state_dir, err)

    def _mark(self, *, ok: bool, err: Exception | None = None, force: bool = False) -> None:
        if ok:
            self._failures = 0
            self._reauthed = False
            if self.publisher is not None and self.publisher.available is not True:
                log.info("gateway %s is online", self.serial)
                self.publisher.set_available(True)
            return
        self._failures += 1
        if (
            self.publisher is not None
            and self.publisher.available is not False
            and (force or self._failures >= OFFLINE_AFTER_FAILURES)
        ):
            log.warning("gateway %s is offline: %s", self.serial, err)
            self.publisher.set_available(False)
