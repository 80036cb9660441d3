"""The polling lanes of one connected gateway: read, settle, tell the stream, publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GatewayInfo, GridStatus, Snapshot, collar_status, relay_status
from envoy2mqtt.core.stream import EventStream
from envoy2mqtt.core.zones import local_to, zone_named
from envoy2mqtt.gateway.client import GatewayClient, TokenSource
from envoy2mqtt.gateway.errors import GatewayAuthError, GatewayError
from envoy2mqtt.gateway.gate import Lane, current_lane
from envoy2mqtt.gateway.overlay import LaneReadings, merge_inverters
from envoy2mqtt.gateway.pace import Pace, in_window
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.polling.availability import Availability
from envoy2mqtt.polling.energy import BatteryEnergy
from envoy2mqtt.polling.events import SnapshotSettled
from envoy2mqtt.settings import Cadence

log = logging.getLogger(__name__)


def _local_zone() -> str:
    return datetime.now().astimezone().tzname() or "local time"


def _transitional(state: str) -> bool:
    """A relay state of the gateway's own state machine (`open synchronizing`, ...)."""
    return len(state.split()) > 1


Read = Callable[[], Awaitable[None]]
PAGE_LANES: Final = (Lane.NORMAL, Lane.SLOW)  # the lanes that read the slow pages


class Lanes:
    """Reads one gateway at tiered cadences and publishes after every good read.

    fast (the grid watch: relay or collar), meters (CTs), battery, normal (everything pyenphase
    reads but inverters) and slow (inverters): each lane its own task, all sharing the
    gateway's gate (one request per endpoint class, the grid watch's next read kept clear).
    """

    def __init__(
        self,
        client: GatewayClient,
        publisher: GatewayPublisher,
        health: Availability,
        *,
        cadence: Cadence,
        pace: Pace,
        clock: Clock,
        energy: BatteryEnergy,
        events: EventStream,
        tokens: TokenSource | None = None,
    ) -> None:
        """Lanes for a connected client; `run()` polls until cancelled."""
        self.client, self.publisher, self.health = client, publisher, health
        self.cadence, self.pace, self.clock = cadence, pace, clock
        self.energy, self.tokens, self.events = energy, tokens, events
        self.data = EnvoyData()
        self.info = publisher.info  # what the gateway said of itself so far
        self.zone = zone_named(publisher.info.timezone)
        self._inverters: EnvoyData | None = None
        # the fast and battery lanes' newest readings (monotonic time when read), laid over
        # every merge so an older reading from another lane never replaces them
        self._lanes = LaneReadings()
        self._grid_read = False  # a new grid reading since the last publish (for the debounce)
        self.normal_started = float("-inf")  # when the full read behind `data` began (monotonic)
        self.early_grid: GridStatus | None = None  # read before the probe (see `run`)
        self._relay_state: str | None = None  # the relay's last state as read
        self._grid_vouched = False  # the new grid reading needs no confirming read
        self._no_grid = False  # neither relay nor collar answered: no early grid watch

    async def run(self, info: GatewayInfo) -> None:
        """Online in seconds, complete later, then every lane in its own task.

        `info` is what /info said (`GatewayClient.open`). The grid is watched at once, from
        the fast endpoints, while the probe and the first full read go through the slow pages
        (a minute on current firmware); their entities appear when their data first arrives.
        """
        self.info = info
        async with asyncio.TaskGroup() as early:
            watch = early.create_task(self._watch_early(), name="early grid watch")
            try:
                await self._complete()
            finally:
                watch.cancel()
        self.early_grid = None  # the full reading knows the System Controller now
        cadence = self.cadence
        async with asyncio.TaskGroup() as lanes:
            lanes.create_task(self._lane(Lane.NORMAL, cadence.normal, self.read_normal))
            lanes.create_task(
                self._lane(Lane.SLOW, cadence.inverters, self.read_inverters, first=0.0)
            )
            if self.data.enpower is not None or self.data.collar is not None:
                lanes.create_task(self._fast_lane())
            if self._has_cts():
                lanes.create_task(self._meters_lane())
            if self.data.encharge_aggregate is not None:
                lanes.create_task(self._lane(Lane.BATTERY, cadence.battery, self.read_battery))
            if self.tokens is not None:
                lanes.create_task(self._keep_token(self.tokens))
            lanes.create_task(self._learn_zone())

    async def _complete(self) -> None:
        """Probe and read everything once (the slow pages), retrying until it works.

        A page that times out costs that page, not the gateway's availability: the early grid
        watch goes on meanwhile and is what says whether the gateway is there.
        """
        current_lane.set(Lane.NORMAL)
        attempt = 0
        while True:
            try:
                self.info = await self.client.probe()
                log.info("gateway %s: probed (%s)", self.info.serial, self.info.model)
                await self.read_normal(reuse_probe=True)
            except GatewayAuthError:
                raise
            except GatewayError as err:
                attempt += 1
                self.pace.failed(Lane.NORMAL)
                if not self._watched:  # no grid to watch: the pages say whether it is there
                    self.health.mark(ok=False, err=err)
                wait = min(10.0 * attempt, 120.0)
                log.warning(
                    "gateway %s: %s; the grid is watched meanwhile, the rest retried in %.0f s",
                    self.info.serial,
                    err,
                    wait,
                )
                await self.clock.sleep(wait)
                continue
            break
        self.health.mark(ok=True)
        self.publish()

    async def _learn_zone(self) -> None:
        """The zone the gateway's day runs on, from /home (a slow page: read once, after the
        first values are out); until then, and without one, the bridge's own."""
        current_lane.set(Lane.SLOW)
        try:
            zone = await self.client.read_zone()
        except GatewayError:
            zone = None
        if zone is not None:
            self.info = replace(self.info, timezone=zone)
            self.zone = zone_named(zone)
        log.info(
            "gateway %s: its day runs on %s",
            self.info.serial,
            f"{zone} (from /home)"
            if zone
            else f"the bridge's own zone, {_local_zone()} (it states none: set TZ)",
        )

    async def _watch_early(self) -> None:
        """The grid from the fast endpoints, at the fast cadence, until the probe is done."""
        current_lane.set(Lane.FAST)
        while True:
            began = self.clock.monotonic()
            read_ok = await self._cycle(self.read_early_grid)
            if self._no_grid:
                self.health.mark(ok=True)  # /info and authentication answered: it is there
                return
            if read_ok:
                await self._confirm_grid(self.read_early_grid)
            await self._wait(Lane.FAST, self.cadence.fast, since=began, reserve=True)

    async def _fast_lane(self) -> None:
        """The grid watch: the relay (or collar) at a fixed rate, published the moment it is
        read and confirmed at once when it changed. Its next read is reserved at the gate, so
        no CT, battery or page read stands between an outage and its event."""
        current_lane.set(Lane.FAST)
        await self._wait(Lane.FAST, self.cadence.fast, reserve=True)
        while True:
            began = self.clock.monotonic()
            if await self._cycle(self.read_grid):
                await self._confirm_grid()
            await self._wait(Lane.FAST, self.cadence.fast, since=began, reserve=True)

    async def _meters_lane(self) -> None:
        """The CTs at the fast cadence, in the gaps the grid watch leaves."""
        current_lane.set(Lane.METERS)
        await self._wait(Lane.METERS, self.cadence.fast)
        while True:
            began = self.clock.monotonic()
            await self._cycle(self.read_meters)
            await self._wait(Lane.METERS, self.cadence.fast, since=began)

    def _has_cts(self) -> bool:
        return any(meter is not None for meter in self.data.ctmeters.values())

    async def _lane(self, lane: Lane, base: float, read: Read, first: float | None = None) -> None:
        current_lane.set(lane)
        if first is None:
            await self._wait(lane, base)
        else:
            await self.clock.sleep(first)
        while True:
            await self._cycle(read)
            await self._wait(lane, base)

    async def _cycle(self, read: Read) -> bool:
        """One read and, when it worked, one publish; whether it worked.

        Only the gateway's own failures count against it: a bug of ours is logged with its
        traceback and the lane goes on, the gateway neither marked offline nor backed off.
        """
        lane = current_lane.get()
        try:
            await read()
        except GatewayAuthError as err:
            self.pace.failed(lane)
            await self.health.reauthenticate(self.client, err)
        except GatewayError as err:
            self.pace.failed(lane)
            # a slow page while a fast lane watches, or any read in the gateway's nightly
            # housekeeping (requests hang 1-2 min there): not a reason to call it offline
            tolerated = (lane in PAGE_LANES and self._watched) or self._quiet()
            self.health.mark(ok=False, err=err, tolerated=tolerated)
        except Exception:
            log.exception(
                "gateway %s: unexpected error in envoy2mqtt (please report)", self.info.serial
            )
        else:
            self.health.mark(ok=True)
            self.publish()
            return True
        return False

    async def _confirm_grid(self, read: Read | None = None) -> None:
        """A changed grid status: read it again soon, until believed or contradicted.

        The debounce wants GRID_DEBOUNCE consecutive reads of the new state; waiting a whole
        fast interval for each would add a second per read to an outage's news. A read
        `grid_confirm` later still filters one-read glitches, at one extra relay request.
        """
        for _ in range(self.publisher.options.grid_debounce - 1):
            if not self.publisher.grid_unconfirmed:
                return
            pause = self.pace.interval(self.cadence.grid_confirm)
            self.client.gate.reserve(pause)
            await self.clock.sleep(pause)
            if not await self._cycle(read or self.read_grid):
                return

    async def _wait(
        self, lane: Lane, base: float, since: float | None = None, *, reserve: bool = False
    ) -> None:
        """Sleep one interval; every lane but the fast one also sits out the quiet window.

        `since`: when the cycle began (monotonic): the interval runs from there, so the grid is
        read every interval however long its reads took (never less than a fifth of it: a
        slow gateway gets a pause between cycles all the same). `reserve`: the grid watch
        reserves its next read at the gate.
        """
        interval = self._interval(lane, base)
        if since is not None:
            interval = max(interval - (self.clock.monotonic() - since), interval / 5)
        if reserve:
            self.client.gate.reserve(interval)
        await self.clock.sleep(interval)
        while lane != Lane.FAST and self._quiet():
            await self.clock.sleep(self.cadence.quiet_fast)

    def _quiet(self) -> bool:
        """Whether it is the gateway's nightly maintenance window, on the gateway's clock."""
        cadence = self.cadence
        now = local_to(self.zone, self.clock.wall()).time()
        return in_window(now, cadence.quiet_start, cadence.quiet_end)

    def _interval(self, lane: Lane, base: float) -> float:
        if lane == Lane.FAST and self._quiet():
            # the gateway's nightly maintenance: only the grid watch runs, and slowly
            return self.pace.interval(self.cadence.quiet_fast, lane)
        return self.pace.interval(base, lane)

    @property
    def _watched(self) -> bool:
        """Whether a fast lane judges the gateway's availability (pages then cannot)."""
        return not self._no_grid and (
            self.early_grid is not None
            or self.data.enpower is not None
            or self.data.collar is not None
            or self._has_cts()
        )

    # -- reads ------------------------------------------------------------------------------

    async def read_normal(self, *, reuse_probe: bool = False) -> None:
        """Everything but inverters; the fast lanes' newer readings stay on top.

        `reuse_probe`: right after the probe, take the pages it just read (production.json
        took up to a minute) rather than asking for them again.
        """
        started = self.clock.monotonic()
        data = await self.client.read_normal(reuse_probe=reuse_probe)
        if started < self.normal_started:
            return  # a full read that began later (a command's read-back) is in already
        self.normal_started = started
        if self._inverters is not None:
            data = merge_inverters(data, self._inverters)
        self._lanes.forget_before(started)
        if self._lanes.grid is None:
            self._grid_read = True  # the relay state in this reading is the newest there is
        self.data = self._lanes.over(data)

    async def refresh(self) -> EnvoyData:
        """A full read now, published: a command's read-back."""
        await self.read_normal()
        self.publish()
        return self.data

    @property
    def contacts_started(self) -> float:
        """When the reading behind the dry contacts' values began (monotonic)."""
        contacts = self._lanes.contacts
        return contacts[0] if contacts is not None else self.normal_started

    async def read_contacts(self) -> EnvoyData:
        """The dry contacts read now, on their own, published: a command's read-back (a full
        read takes a minute on current firmware; the contacts move within ~3 s)."""
        started = self.clock.monotonic()
        contacts = await self.client.read_contacts()
        self._lanes.contacts = (started, contacts)
        self.data = self._lanes.over(self.data)
        self.publish()
        return self.data

    async def read_early_grid(self) -> None:
        """The grid before the probe: the relay or the collar, read straight."""
        found = await self.client.read_grid_any()
        if found is None:
            self._no_grid = True
            return
        source, state = found
        if source == "relay":
            self._relay_read(state)
            self.early_grid = relay_status(state)
        else:
            self.early_grid = collar_status(state)
        self._grid_read = True

    async def read_inverters(self) -> None:
        """The inverters (every 5 minutes is as often as they report)."""
        self._inverters = await self.client.read_inverters()
        self.data = merge_inverters(self.data, self._inverters)

    async def read_meters(self) -> None:
        """Fresh CT readings."""
        meters = await self.client.read_meters()
        if meters[0]:
            self._lanes.meters = (self.clock.monotonic(), meters)
        self.data = self._lanes.over(self.data)

    async def read_grid(self) -> None:
        """The grid status from the Enpower relay or the IQ Meter Collar."""
        state: str | None = None
        if self.data.enpower is not None:
            state = await self.client.read_grid()
            if state is not None:
                self._relay_read(state)
        elif self.data.collar is not None:
            state = await self.client.read_collar()
        if state is not None:
            self._lanes.grid = (self.clock.monotonic(), state)
            self._grid_read = True
        self.data = self._lanes.over(self.data)

    def _relay_read(self, state: str) -> None:
        """Note a relay state; a move into, or out of, the gateway's own transitional states
        (`open synchronizing`, `open synchronized`: more than one word) needs no confirming
        read: the gateway's relay controller stands behind it, no one-read glitch does."""
        before, self._relay_state = self._relay_state, state
        self._grid_vouched = _transitional(state) or (
            before is not None and _transitional(before) and before != state
        )

    async def read_battery(self) -> None:
        """Battery state of charge and power."""
        combined = self.data.battery_aggregate is not None  # AC Batteries too
        battery = await self.client.read_battery(combined=combined)
        self._lanes.battery = (self.clock.monotonic(), battery)
        self.data = self._lanes.over(self.data)

    async def _keep_token(self, tokens: TokenSource) -> None:
        """Renew the token ahead of its expiry; the token source sets the pace and backs off."""
        current_lane.set(Lane.SLOW)
        while True:
            await self.clock.sleep(tokens.next_check())
            if await tokens.maintain(self.client.envoy.serial_number or ""):
                try:
                    await self.client.authenticate()  # presents the new token to the gateway
                except GatewayAuthError as err:
                    await self.health.reauthenticate(self.client, err)
                except GatewayError as err:
                    log.warning("gateway %s: %s", self.client.host, err)

    def publish(self) -> None:
        """Settle a snapshot of everything read so far, tell the stream, then publish it.

        The stream hears first: what a feature sends urgently on a settled snapshot (load
        shedding's commands) is queued ahead of the snapshot's own events.
        """
        auth = self.tokens.status() if self.tokens is not None else None
        now = datetime.now(UTC)
        extra = self.energy.observe(self.data, now, self.clock.monotonic())
        snapshot = Snapshot(self.info, self.data, now, auth, extra, self.early_grid)
        settled = self.publisher.settle(
            snapshot, grid_read=self._grid_read, grid_vouched=self._grid_vouched
        )
        self._grid_read = self._grid_vouched = False
        self.events.emit(SnapshotSettled(self, settled.values, settled.events, now))
        self.publisher.send(settled)
