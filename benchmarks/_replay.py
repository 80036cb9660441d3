"""Read a simulated gateway lane by lane in virtual time, as the bridge does in real time.

The requests are real (pyenphase over HTTP(S) to the simulated gateway on 127.0.0.1); only
the clock is virtual, so a day of polling at the default cadences takes minutes. The lane
reads mirror `Bridge._read_*` in src/envoy2mqtt/bridge.py: keep them in step.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.envoy import GatewayClient, merge_inverters
from envoy2mqtt.gate import Lane, in_window
from envoy2mqtt.settings import Cadence
from envoy2mqtt.sim import Capture, GatewayStats, SimulatedGateway
from envoy2mqtt.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.tokens import FixedToken

QUIET_OTHER_LANES = 60.0  # what Bridge._interval gives the other lanes in the quiet window


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
                self._data = await client.read_normal()
                self._inverters = await client.read_inverters()
                self._data = merge_inverters(self._data, self._inverters)
                on_tick(Tick(Lane.NORMAL, start, self._snapshot()))
                gateway.stats.reset()
                lanes = self._lanes()
                order = itertools.count()
                due = [(start + self._interval(lane, start), next(order), lane) for lane in lanes]
                heapq.heapify(due)
                while due[0][0] < start + duration:
                    at, _, lane = heapq.heappop(due)
                    while actions and start + actions[0][0] <= at:
                        offset, action = actions.pop(0)
                        self.clock.now = start + offset
                        action(gateway)
                    self.clock.now = at
                    await self._read(client, lane)
                    on_tick(Tick(lane, at, self._snapshot()))
                    heapq.heappush(due, (at + self._interval(lane, at), next(order), lane))

    def _snapshot(self) -> Snapshot:
        assert self.info is not None
        return Snapshot(self.info, self._data, datetime.fromtimestamp(self.clock.now, UTC))

    def _lanes(self) -> list[Lane]:
        """The lanes `Bridge._poll` starts for this gateway."""
        data = self._data
        lanes = [Lane.NORMAL, Lane.SLOW]
        has_cts = any(meter is not None for meter in data.ctmeters.values())
        if data.enpower is not None or data.collar is not None or has_cts:
            lanes.append(Lane.FAST)
        if data.encharge_aggregate is not None:
            lanes.append(Lane.BATTERY)
        return lanes

    def _interval(self, lane: Lane, now: float) -> float:
        """`Bridge._interval` with a healthy gateway (pace factor 1)."""
        cadence = self.cadence
        local = datetime.fromtimestamp(now, UTC).time()
        if in_window(local, cadence.quiet_start, cadence.quiet_end):
            return cadence.quiet_fast if lane == Lane.FAST else QUIET_OTHER_LANES
        return {
            Lane.FAST: cadence.fast,
            Lane.BATTERY: cadence.battery,
            Lane.NORMAL: cadence.normal,
            Lane.SLOW: cadence.inverters,
        }[lane]

    async def _read(self, client: GatewayClient, lane: Lane) -> None:
        """One lane's read, merged into the current data as `Bridge._read_*` does."""
        if lane == Lane.NORMAL:
            data = await client.read_normal()
            self._data = merge_inverters(data, self._inverters) if self._inverters else data
        elif lane == Lane.SLOW:
            self._inverters = await client.read_inverters()
            self._data = merge_inverters(self._data, self._inverters)
        elif lane == Lane.BATTERY:
            aggregate, units = await client.read_battery()
            self._data = replace(
                self._data,
                encharge_aggregate=aggregate,
                encharge_power={**(self._data.encharge_power or {}), **units},
            )
        else:
            self._data = await _read_fast(client, self._data)


async def _read_fast(client: GatewayClient, data: EnvoyData) -> EnvoyData:
    """`Bridge._read_fast`: the grid relay (or collar) and fresh CT readings."""
    if data.enpower is not None:
        state = await client.read_grid()
        if state is not None and state != data.enpower.mains_oper_state:
            data = replace(data, enpower=replace(data.enpower, mains_oper_state=state))
    elif data.collar is not None:
        state = await client.read_collar()
        if state is not None and state != data.collar.grid_state:
            data = replace(data, collar=replace(data.collar, grid_state=state))
    if any(meter is not None for meter in data.ctmeters.values()):
        meters, phases = await client.read_meters()
        if meters:
            data = replace(
                data,
                ctmeters={**data.ctmeters, **meters},
                ctmeters_phases={**data.ctmeters_phases, **phases},
            )
    return data


def midnight_utc(now: float) -> float:
    """The UTC midnight that began the day `now` is in."""
    return now - now % 86_400
