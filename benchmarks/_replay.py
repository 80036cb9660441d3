"""Read a simulated gateway lane by lane in virtual time, as the bridge does in real time.

The requests are real (pyenphase over HTTP(S) to the simulated gateway on 127.0.0.1); only
the clock is virtual, so a day of polling at the default cadences takes minutes. The lane
reads, overlays and waits mirror `Bridge` in envoy2mqtt/bridge.py: keep them in step.
Times that the bridge takes from time.monotonic() are virtual here. Not modelled: the bridge's
confirming grid read after a changed status (`Bridge._confirm_grid`), one relay request per grid
change, a handful a day.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.catalog import derived
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.gate import Lane
from envoy2mqtt.gateway.overlay import LaneReadings, merge_inverters
from envoy2mqtt.gateway.pace import in_window
from envoy2mqtt.settings import Cadence
from envoy2mqtt.sim import Capture, GatewayStats, SimulatedGateway


class VirtualClock:
    """A clock that moves only when told to: `clock()` is the current virtual epoch time."""

    def __init__(self, start: float) -> None:
        """Start at `start` (seconds since the epoch)."""
        self.now = start

    def __call__(self) -> float:
        """The current virtual time."""
        return self.now


@dataclass(frozen=True, slots=True)
class Tick:
    """One lane read and the snapshot the bridge would publish after it."""

    lane: Lane
    at: float
    snapshot: Snapshot
    grid_read: bool  # a new reading of the grid status (what the publisher's debounce counts)


Action = Callable[[SimulatedGateway], object]


class Replay:
    """One simulated gateway read at the bridge's cadences over a stretch of virtual time."""

    def __init__(
        self,
        capture: Capture,
        *,
        start: float,
        cadence: Cadence | None = None,
        seed: int = 1,
    ) -> None:
        """The simulated house keeps UTC as its local time, so `start` sets the time of day."""
        self.clock = VirtualClock(start)
        self.cadence = cadence or Cadence()
        self.gateway = SimulatedGateway(
            capture=capture, drift=True, clock=self.clock, seed=seed, utc_offset_s=0.0
        )
        self.info: GatewayInfo | None = None
        self._data = EnvoyData()
        self._inverters: EnvoyData | None = None
        # as in Bridge: the fast and battery lanes' newest readings, with when they were read
        self._latest = LaneReadings()
        self._grid_read = False
        self._energy = derived.BatteryIntegrator()

    @property
    def stats(self) -> GatewayStats:
        """What the simulated gateway was asked."""
        return self.gateway.stats

    async def run(
        self,
        duration: float,
        on_tick: Callable[[Tick], None],
        script: list[tuple[float, Action]] | None = None,
    ) -> None:
        """Connect, then poll every lane until `duration` virtual seconds have passed.

        `script` holds (offset from start, action) pairs applied to the gateway on time, such
        as a grid outage. The simulated gateway's request counters start after the connect
        and the first full read, so they show steady-state polling only.
        """
        start = self.clock.now
        actions = sorted(script or [], key=lambda item: item[0])
        async with self.gateway as gateway:
            tokens = FixedToken(gateway.make_token()) if gateway.uses_tls else None
            async with GatewayClient(gateway.host, tokens=tokens) as client:
                self.info = await client.connect()
                await self._read(client, Lane.NORMAL)
                await self._read(client, Lane.SLOW)
                on_tick(self._tick(Lane.NORMAL))
                gateway.stats.reset()
                order = itertools.count()
                due = [(self._next(lane, start), next(order), lane) for lane in self._lanes()]
                heapq.heapify(due)
                while due[0][0] < start + duration:
                    at, _, lane = heapq.heappop(due)
                    while actions and start + actions[0][0] <= at:
                        offset, action = actions.pop(0)
                        self.clock.now = start + offset
                        action(gateway)
                    self.clock.now = at
                    await self._read(client, lane)
                    on_tick(self._tick(lane))
                    heapq.heappush(due, (self._next(lane, at), next(order), lane))

    def _tick(self, lane: Lane) -> Tick:
        """`Bridge._publish`: the snapshot with the derived battery energy, and the grid flag."""
        assert self.info is not None
        now = datetime.fromtimestamp(self.clock.now, UTC)
        extra = derived.observe(self._energy, self._data, now)
        tick = Tick(
            lane, self.clock.now, Snapshot(self.info, self._data, now, None, extra), self._grid_read
        )
        self._grid_read = False
        return tick

    def _lanes(self) -> list[Lane]:
        """The lanes `Bridge._poll` starts for this gateway."""
        data = self._data
        lanes = [Lane.NORMAL, Lane.SLOW]
        if data.enpower is not None or data.collar is not None or self._has_cts():
            lanes.append(Lane.FAST)
        if data.encharge_aggregate is not None:
            lanes.append(Lane.BATTERY)
        return lanes

    def _has_cts(self) -> bool:
        return any(meter is not None for meter in self._data.ctmeters.values())

    def _quiet(self, at: float) -> bool:
        cadence = self.cadence
        local = datetime.fromtimestamp(at, UTC).time()
        return in_window(local, cadence.quiet_start, cadence.quiet_end)

    def _next(self, lane: Lane, now: float) -> float:
        """`Bridge._wait` with a healthy gateway (pace factor 1): when the lane reads next."""
        cadence = self.cadence
        if lane == Lane.FAST:
            return now + (cadence.quiet_fast if self._quiet(now) else cadence.fast)
        base = {Lane.BATTERY: cadence.battery, Lane.NORMAL: cadence.normal}
        at = now + base.get(lane, cadence.inverters)
        while self._quiet(at):  # every lane but the fast one sits out the quiet window
            at += cadence.quiet_fast
        return at

    async def _read(self, client: GatewayClient, lane: Lane) -> None:
        """One lane's read, merged into the current data as `Bridge._read_*` does."""
        now = self.clock.now
        if lane == Lane.NORMAL:
            data = await client.read_normal()
            if self._inverters is not None:
                data = merge_inverters(data, self._inverters)
            self._latest.forget_before(now)
            if self._latest.grid is None:
                self._grid_read = True
            self._data = self._latest.over(data)
        elif lane == Lane.SLOW:
            self._inverters = await client.read_inverters()
            self._data = merge_inverters(self._data, self._inverters)
        elif lane == Lane.BATTERY:
            combined = self._data.battery_aggregate is not None
            self._latest.battery = (now, await client.read_battery(combined=combined))
            self._data = self._latest.over(self._data)
        else:
            if self._has_cts():
                meters = await client.read_meters()
                if meters[0]:
                    self._latest.meters = (now, meters)
            state: str | None = None
            if self._data.enpower is not None:
                state = await client.read_grid()
            elif self._data.collar is not None:
                state = await client.read_collar()
            if state is not None:
                self._latest.grid = (now, state)
                self._grid_read = True
            self._data = self._latest.over(self._data)


def midnight_utc(now: float) -> float:
    """The UTC midnight that began the day `now` is in."""
    return now - now % 86_400
