"""Gateway faults against the real broker and the simulated gateway.

For each way a gateway misbehaves the bridge must keep running, mark the gateway `offline`
within the documented time, leave the last good values alone, recover by itself, and never
have more than one request in flight.

Documented offline time: two consecutive failed reads. A gateway that answers garbage or
refuses connections is offline after two fast-lane cycles; one that hangs after at most
2 x REQUEST_TIMEOUT plus two fast-lane cycles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from envoy2mqtt.app import App
from envoy2mqtt.settings import Cadence, GatewaySettings
from envoy2mqtt.sim import Fault, SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder, collect
from tests.harness import bridge_settings, running
from tests.harness import in_flight as in_flight_of

BATTERY_SITE = "8.2.4286_with_3cts_and_battery_split"  # Enpower relay and CTs: a fast lane
REQUEST_TIMEOUT = 1.0
FAST_LANE = 0.2
OFFLINE_WITHIN = 2 * REQUEST_TIMEOUT + 2 * FAST_LANE + 1.0  # + slack for a busy test machine
BACK_WITHIN = 16 * FAST_LANE + 3.0  # the pace backs off at most 16 x, then one good read
FAULT_HELD = 3.0
CORE = ("production_power", "net_power", "grid_status", "battery_soc", "consumption_power")


@dataclass(slots=True)
class Stack:
    """A bridge running against one simulated gateway, watched from the broker."""

    app: App
    gateway: SimulatedGateway
    recorder: Recorder
    base: str  # <prefix>/<serial>
    discovery: str  # the discovery prefix

    @property
    def availability(self) -> str:
        """The gateway's availability topic."""
        return f"{self.base}/availability"

    async def wait_availability(self, payload: bytes, since: int, timeout: float) -> float:
        """Seconds until the gateway's availability is `payload` in a record after `since`."""
        started = time.monotonic()
        await self.recorder.wait_for(arrived(self.availability, payload, since), timeout=timeout)
        return time.monotonic() - started

    async def retained(self) -> dict[str, bytes]:
        """The retained core states, as a new subscriber sees them."""
        port = self.app.settings.mqtt_port
        topics = {f"{self.base}/{key}" for key in CORE}
        return await collect(
            "127.0.0.1", port, f"{self.base}/#", until=lambda s: topics <= s.keys(), timeout=5
        )


@asynccontextmanager
async def stack(
    broker: Mosquitto, prefix: str, state_dir: Path, **overrides: object
) -> AsyncIterator[Stack]:
    """The bridge on a battery site, online, its core values published."""
    async with SimulatedGateway(capture=BATTERY_SITE) as gateway:
        settings = bridge_settings(
            gateway,
            broker.port,
            prefix,
            state_dir,
            fast_interval=FAST_LANE,
            battery_interval=1,
            poll_interval=5,
            inverter_interval=30,
            request_timeout=REQUEST_TIMEOUT,
            ha_discovery_prefix=f"{prefix}/ha",  # inside the recorder's filter
            ha_status_topic=f"{prefix}/ha/status",
            **overrides,
        )
        base = f"{prefix}/{gateway.serial}"
        async with (
            Recorder("127.0.0.1", broker.port, f"{prefix}/#") as recorder,
            running(settings) as app,
        ):
            here = Stack(app, gateway, recorder, base, f"{prefix}/ha")
            await recorder.wait_for(
                lambda r: {f"{base}/{k}" for k in CORE} <= {x.topic for x in r}, timeout=20
            )
            await here.wait_availability(b"online", 0, timeout=5)
            # urgent states arrive first, the rest of the first publish after them
            await settled(recorder)
            yield here


async def settled(recorder: Recorder, quiet: float = 0.5, timeout: float = 20.0) -> None:
    """Wait until nothing has arrived for `quiet` seconds (the simulated values do not drift)."""
    async with asyncio.timeout(timeout):
        while True:
            seen = len(recorder.records)
            await asyncio.sleep(quiet)
            if len(recorder.records) == seen:
                return


def arrived(topic: str, payload: bytes, since: int) -> Callable[[list[Record]], bool]:
    """A predicate: `payload` arrived on `topic` in a record after `since`."""
    return lambda records: any(r.topic == topic and r.payload == payload for r in records[since:])


def garbage_in(records: list[Record], stack: Stack) -> list[Record]:
    """Records that a fault must not cause: states other than availability, config removals."""
    return [
        r
        for r in records
        if (r.topic.startswith(f"{stack.base}/") and r.topic != stack.availability)
        or (r.topic.startswith(f"{stack.discovery}/") and not r.payload)
    ]


FAULTS = [
    Fault.TIMEOUT,
    Fault.HTTP_500,
    Fault.HTML,
    Fault.TRUNCATED_JSON,
    Fault.EMPTY,
    Fault.UNAUTHORIZED,
    Fault.DOWN,
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.value for f in FAULTS])
async def test_fault_marks_offline_keeps_values_and_recovers(
    fault: Fault, mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with stack(mosquitto_session, unique_prefix, tmp_path) as s:
        before = await s.retained()
        s.gateway.stats.reset()
        mark = len(s.recorder.records)
        s.gateway.set_fault(fault)
        took = await s.wait_availability(b"offline", mark, timeout=OFFLINE_WITHIN + 5)
        await asyncio.sleep(FAULT_HELD)
        during = s.recorder.records[mark:]
        requests = s.gateway.stats.total

        back = len(s.recorder.records)
        s.gateway.set_fault(Fault.NONE)
        recovered = await s.wait_availability(b"online", back, timeout=BACK_WITHIN + 5)
        after = await s.retained()
        # the lanes are alive: a grid outage still arrives
        flip = len(s.recorder.records)
        s.gateway.set_grid(False)
        grid = f"{s.base}/grid_status"
        await s.recorder.wait_for(arrived(grid, b"off-grid", flip), timeout=5)
        in_flight = in_flight_of(s.gateway.stats.log)
        connected = s.app.link.connected.is_set()
    assert took <= OFFLINE_WITHIN, f"offline after {took:.1f} s"
    assert garbage_in(during, s) == [], "the fault changed retained values"
    assert {k: after.get(f"{s.base}/{k}") for k in CORE} == {
        k: before.get(f"{s.base}/{k}") for k in CORE
    }
    assert recovered <= BACK_WITHIN, f"online again after {recovered:.1f} s"
    assert max(in_flight["fast"], in_flight["slow"]) <= 1, f"requests piled up: {in_flight}"
    # backed off: far fewer requests than the lanes' normal pace (about 15 per second)
    assert requests <= 10 * (took + FAULT_HELD), requests
    assert connected


def short_inverter_cadence(gateway: SimulatedGateway) -> GatewaySettings:
    """The gateway with the inverter lane every 3 s (real settings allow no less than 30 s:
    built without validation so the slow endpoint comes round often in a short test)."""
    cadence = Cadence.model_construct(
        fast=FAST_LANE, battery=1.0, normal=5.0, inverters=3.0, quiet_start=None, quiet_end=None
    )
    return GatewaySettings(
        host=gateway.host, token=SecretStr(gateway.make_token()), cadence=cadence
    )


async def test_a_slow_inventory_never_delays_grid_reads(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    slow_timeout = 5.0
    async with SimulatedGateway(capture=BATTERY_SITE) as gateway:
        # /inventory.json answers after 30 s: each read of it holds the slow pages' slot until
        # it times out; the grid reads go through the fast endpoints' slot beside it
        gateway.set_fault(Fault.SLOW, paths={"/inventory.json"}, delay=30)
        settings = bridge_settings(
            gateway,
            mosquitto_session.port,
            unique_prefix,
            tmp_path,
            gateways=[short_inverter_cadence(gateway)],
            request_timeout=2.0,
            slow_request_timeout=slow_timeout,
        )
        base = f"{unique_prefix}/{gateway.serial}"
        grid = f"{base}/grid_status"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(lambda r: any(x.topic == grid for x in r), timeout=20)
            delays = []
            for _ in range(12):
                mark = len(recorder.records)
                on = not gateway.grid_on
                flipped = time.monotonic()
                gateway.set_grid(on)
                want = b"on-grid" if on else b"off-grid"
                await recorder.wait_for(arrived(grid, want, mark), timeout=slow_timeout + 5)
                delays.append(time.monotonic() - flipped)
                await asyncio.sleep(0.3)
            availability = [
                r.payload for r in recorder.records if r.topic == f"{base}/availability"
            ]
            asked = gateway.stats.requests["/inventory.json"]
            in_flight = in_flight_of(gateway.stats.log)
    assert asked, "the slow endpoint was read during the test"
    # the grid reads never waited for a slow page: not one of its timeouts (5 s) passed
    assert max(delays) < slow_timeout, delays
    assert b"offline" not in availability, "one slow endpoint is not an offline gateway"
    assert in_flight["fast"] <= 1
    assert in_flight["slow"] <= 1
