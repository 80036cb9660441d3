"""Polite polling against the simulated gateway: adaptive back-off and the quiet window."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from envoy2mqtt.app import App
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.gateway.pace import Pace
from envoy2mqtt.sim import Fault, SimulatedGateway
from tests.broker import Mosquitto
from tests.harness import assert_polite, bridge_settings, running

BATTERY_CAPTURE = "8.2.4286_with_3cts_and_battery_split"
READINGS = "/ivp/meters/readings"  # read by the fast lane only (the normal lane runs rarely here)
BATTERY_PATHS = {"/ivp/ensemble/secctrl", "/ivp/ensemble/power"}
RELAY = "/ivp/ensemble/relay"
MAX_FACTOR = 8.0


@dataclass(slots=True)
class RecordingPace(Pace):
    """The bridge's pace, remembering its factor after every observation."""

    history: list[float] = field(default_factory=list)

    def observe(self, duration: float, *, ok: bool) -> None:
        """Observe as usual, then note the factor."""
        Pace.observe(self, duration, ok=ok)
        self.history.append(self.factor)


class WallClock:
    """An injectable wall clock that stands still until told otherwise."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait (polling every few ms) until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the gateway's log has no event to await
            await asyncio.sleep(0.005)


def starts(gateway: SimulatedGateway, paths: set[str], after: float) -> list[float]:
    """Start times of the requests for `paths` begun after `after` (answered so far)."""
    return sorted(r.start for r in gateway.stats.log if r.path in paths and r.start > after)


async def next_starts(
    gateway: SimulatedGateway,
    paths: set[str],
    count: int,
    timeout: float = 5.0,
    after: float | None = None,
) -> list[float]:
    """Wait for `count` requests for `paths` begun after `after` (default now); their starts."""
    since = time.monotonic() if after is None else after
    await until(lambda: len(starts(gateway, paths, since)) >= count, timeout)
    return starts(gateway, paths, since)[:count]


def median_gap(times: list[float]) -> float:
    """The median time between consecutive starts."""
    return statistics.median(b - a for a, b in itertools.pairwise(times))


TROUBLES: dict[str, Callable[[SimulatedGateway], None]] = {
    "slow": lambda gateway: gateway.set_fault(Fault.SLOW, delay=0.15),
    "failing": lambda gateway: gateway.set_fault(Fault.HTTP_500),
}


@pytest.mark.parametrize("trouble", TROUBLES.values(), ids=TROUBLES.keys())
async def test_back_off_engages_and_releases_step_by_step(
    trouble: Callable[[SimulatedGateway], None],
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        settings = bridge_settings(
            gateway,
            mosquitto_session.port,
            unique_prefix,
            tmp_path,
            fast_interval=0.2,
            battery_interval=1.0,
        )
        async with running(settings) as app:
            bridge = app.bridges[0]
            # answers over 100 ms count as slow, so a 150 ms gateway is a struggling one
            pace = bridge.pace = RecordingPace(slow_after=0.1, max_factor=MAX_FACTOR)
            assert median_gap(await next_starts(gateway, {READINGS}, 5)) < 0.3

            trouble(gateway)
            await until(lambda: pace.factor == MAX_FACTOR, timeout=8)
            engaged = time.monotonic()
            await asyncio.sleep(2.0)
            during = [r for r in gateway.stats.log if r.start > engaged]
            # at full pace: 2 s hold 10 fast and 2 battery cycles (~24 requests)
            assert len(during) <= 6, during

            recovery = len(pace.history)
            gateway.set_fault(Fault.NONE)
            await until(lambda: pace.factor == 1.0, timeout=8)
            steps = pace.history[recovery:]
            assert all(b <= a for a, b in itertools.pairwise(steps)), steps
            assert all(b >= a / 1.5 - 1e-9 for a, b in itertools.pairwise(steps))
            assert len({f for f in steps if 1.0 < f < MAX_FACTOR}) >= 3, steps  # no jump
            assert median_gap(await next_starts(gateway, {READINGS}, 5)) < 0.3
        assert_polite(gateway)


async def test_quiet_window_runs_only_the_fast_lane_slowed(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    local = datetime.now().astimezone()
    clock = WallClock(local.replace(hour=12, minute=0))
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        settings = bridge_settings(
            gateway,
            mosquitto_session.port,
            unique_prefix,
            tmp_path,
            fast_interval=0.2,
            battery_interval=1.0,
            poll_interval=5.0,
            quiet_window="22:58-23:06",
        )
        app = App(settings)
        bridge = app.bridges[0]
        bridge.clock = Clock(wall=clock)
        cadence = bridge.settings.cadence.model_copy(update={"quiet_fast": 1.0})
        bridge.settings = bridge.settings.model_copy(update={"cadence": cadence})
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(app.run(stop))
            await next_starts(gateway, BATTERY_PATHS, 1, timeout=20)

            clock.now = local.replace(hour=23, minute=0)
            entered = time.monotonic()
            await asyncio.sleep(5.0)  # real time: covers the normal lane's 5 s turn
            clock.now = local.replace(hour=23, minute=6) + timedelta(seconds=1)
            left = time.monotonic()
            battery_back = await next_starts(gateway, BATTERY_PATHS, 1, timeout=3, after=left)
            normal_back = await next_starts(gateway, {"/production.json"}, 1, after=left)
            fast_back = await next_starts(gateway, {READINGS}, 5)
            stop.set()

    # a lane that was already asleep when the window began may finish its sleep first
    settled = entered + 1.1
    quiet = [r for r in gateway.stats.log if settled < r.start < left]
    # only the grid watch: a CT read hanging in the gateway's housekeeping would hold the
    # relay's one fast slot for as long
    assert {r.path for r in quiet} <= {RELAY, "/ivp/ensemble/inventory"}, {r.path for r in quiet}
    fast = starts(gateway, {RELAY}, settled)
    fast = [t for t in fast if t < left]
    assert 2 <= len(fast) <= 5, fast  # about one a second, not five
    assert min(b - a for a, b in itertools.pairwise(fast)) >= 0.9
    # the battery lane did not start a cycle in the window (one in progress may finish)
    assert not [
        r for r in gateway.stats.log if entered + 0.1 < r.start < left and r.path in BATTERY_PATHS
    ]
    assert battery_back[0] - left < 1.5
    assert normal_back[0] - left < 1.5  # it was due in the window: it runs right after
    assert median_gap(fast_back) < 0.3
    assert_polite(gateway)
