"""Events end to end: simulated gateway (real HTTPS) -> bridge -> real mosquitto -> subscriber."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envoy2mqtt.sim import RequestRecord, SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder, collect
from tests.harness import assert_polite, bridge_settings, running

BATTERY_CAPTURE = "8.2.4286_with_3cts_and_battery_split"  # Enpower, Encharge, storage CT
RELAY = "/ivp/ensemble/relay"
BATTERY_POWER = "/ivp/ensemble/power"


async def answered(
    gateway: SimulatedGateway, path: str, *, after: float, count: int = 1, timeout: float = 5.0
) -> list[RequestRecord]:
    """Wait until the gateway has answered `count` requests for `path` begun after `after`."""
    async with asyncio.timeout(timeout):
        while True:
            done = [r for r in gateway.stats.log if r.path == path and r.start > after]
            if len(done) >= count:
                return done
            await asyncio.sleep(0.002)


def events(records: list[Record], topic: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The event payloads on `topic`, oldest first (of one type if `kind` is given)."""
    bodies = [json.loads(r.payload) for r in records if r.topic == topic]
    return [b for b in bodies if kind is None or b["type"] == kind]


def has_event(topic: str, kind: str, count: int = 1) -> Callable[[list[Record]], bool]:
    """A Recorder predicate: at least `count` events of this type have arrived."""
    return lambda records: len(events(records, topic, kind)) >= count


async def test_outage_published_once_glitches_ignored_restore_detected(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        gateway.set_battery(soc=55, power_w=2500)
        base = f"{unique_prefix}/{gateway.serial}"
        event_topic, grid_topic = f"{base}/event", f"{base}/grid_status"
        # equal fast and battery intervals: every glitch read is followed by a battery-lane
        # publish before the next grid read, the case where counting publishes would confirm it
        settings = bridge_settings(
            gateway, port, unique_prefix, tmp_path, fast_interval=1.0, battery_interval=1.0
        )
        async with (
            Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: (
                    any(x.topic == grid_topic for x in r)
                    and any(x.topic == f"{base}/battery_state" for x in r)
                ),
                timeout=20,
            )

            interleaved = 0
            last = (await answered(gateway, RELAY, after=time.monotonic()))[0]
            for _ in range(3):  # a glitch: exactly one grid read says off-grid
                gateway.set_grid(False)
                glitch = (await answered(gateway, RELAY, after=last.start))[0]
                gateway.set_grid(True)
                last = (await answered(gateway, RELAY, after=glitch.start))[0]
                interleaved += any(
                    glitch.end < r.end < last.start
                    for r in gateway.stats.log
                    if r.path == BATTERY_POWER
                )
            assert interleaved, "no battery-lane publish fell between a glitch and the next read"

            flip = time.monotonic()
            gateway.set_grid(False)
            records = await recorder.wait_for(has_event(event_topic, "grid"), timeout=5)
            arrived = next(r.t for r in records if r.topic == event_topic)
            reads = [r for r in gateway.stats.log if r.path == RELAY and flip < r.start < arrived]
            assert len(reads) == 2  # debounce 2: published on the second read, not later
            # the confirming read follows GRID_CONFIRM_DELAY (0.15 s) after the first, not a
            # whole fast interval (1 s)
            assert reads[1].start - reads[0].end < 0.5
            await answered(gateway, RELAY, after=arrived, count=2)  # time to flap, if it would
            retained = await collect("127.0.0.1", port, grid_topic, until=bool, timeout=5)
            fresh = await collect("127.0.0.1", port, event_topic, timeout=0.5)

            gateway.set_grid(True)
            records = await recorder.wait_for(has_event(event_topic, "grid", 2), timeout=5)
            await answered(gateway, RELAY, after=time.monotonic(), count=2)
        assert_polite(gateway)

    outage, restore = events(recorder.records, event_topic, "grid")
    assert (outage["from"], outage["to"]) == ("on-grid", "off-grid")
    assert (restore["from"], restore["to"]) == ("off-grid", "on-grid")
    assert outage["id"] != restore["id"]
    assert outage["gateway"] == gateway.serial
    at = datetime.fromisoformat(outage["at"])
    assert at.tzinfo is not None
    assert abs((datetime.now(UTC) - at).total_seconds()) < 30
    latest = recorder.latest()
    assert outage["context"] == {
        "grid_status": "off-grid",
        "battery_soc": 55,
        "battery_power": 2500,
        "battery_state": "discharging",
        "production_power": int(latest[f"{base}/production_power"]),
        "consumption_power": int(latest[f"{base}/consumption_power"]),
        "net_power": int(latest[f"{base}/net_power"]),
        "backup_runway": int(latest[f"{base}/backup_runway"]),
    }
    on_events = [r for r in recorder.records if r.topic == event_topic]
    assert all(r.qos == 1 and not r.retain for r in on_events)
    assert fresh == {}  # events are not retained: a new subscriber gets none
    assert retained == {grid_topic: b"off-grid"}  # the state is retained
    grid_states = recorder.on(grid_topic)
    # the first state may come twice (queued, then re-published when the link connects)
    changes = [
        r for i, r in enumerate(grid_states) if i == 0 or r.payload != grid_states[i - 1].payload
    ]
    assert [r.payload for r in changes] == [b"on-grid", b"off-grid", b"on-grid"]  # no flap
    assert [r.payload for r in grid_states].count(b"off-grid") == 1
    assert all(r.qos == 1 for r in changes[1:])


async def test_battery_events_and_no_overlap_with_every_lane_fast(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        gateway.set_battery(soc=30, power_w=-2000)
        base = f"{unique_prefix}/{gateway.serial}"
        topic = f"{base}/event"
        settings = bridge_settings(
            gateway,
            port,
            unique_prefix,
            tmp_path,
            fast_interval=0.2,
            battery_interval=1.0,
            poll_interval=5.0,
            inverter_interval=30.0,
            battery_state_dwell=1.0,  # the 30 s default is tested in test_events_battery
        )
        async with Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder:
            started = time.monotonic()
            async with running(settings):
                await recorder.wait_for(
                    lambda r: any(x.topic == f"{base}/battery_mode" for x in r), timeout=20
                )
                # the battery controller's mode (/ivp/sc/sched), and the tariff file's with it
                gateway.set_storage(mode="backup")
                steps: list[tuple[dict[str, float], str, int]] = [
                    ({"power_w": 2000}, "battery", 1),  # charging -> discharging
                    ({"power_w": 0}, "battery", 2),  # -> idle
                    ({"power_w": -1500}, "battery", 3),  # -> charging
                    ({"soc": 15}, "battery_soc", 1),  # below 20
                    ({"soc": 8}, "battery_soc", 2),  # below 10
                    ({"soc": 25}, "battery_soc", 4),  # above 10, then above 20
                ]
                for change, kind, count in steps:
                    gateway.set_battery(**change)
                    await recorder.wait_for(has_event(topic, kind, count), timeout=5)
                await recorder.wait_for(has_event(topic, "mode"), timeout=10)
                normal = [r for r in gateway.stats.log if r.path == "/production.json"]
                assert any(r.start > started + 4 for r in normal), "the normal lane ran again"
        assert_polite(gateway)

    battery = [(e["from"], e["to"]) for e in events(recorder.records, topic, "battery")]
    assert battery == [
        ("charging", "discharging"),
        ("discharging", "idle"),
        ("idle", "charging"),
    ]
    soc = [
        (e["from"], e["to"], e["threshold"], e["direction"])
        for e in events(recorder.records, topic, "battery_soc")
    ]
    assert soc == [
        (30, 15, 20, "below"),
        (15, 8, 10, "below"),
        (8, 25, 10, "above"),
        (8, 25, 20, "above"),
    ]
    (mode,) = events(recorder.records, topic, "mode")
    assert (mode["from"], mode["to"]) == ("self-consumption", "backup")
    assert events(recorder.records, topic, "grid") == []
    idle = events(recorder.records, topic, "battery")[1]
    assert idle["context"]["battery_power"] == 0
    assert idle["context"]["battery_state"] == "idle"


async def test_debounce_three_confirms_quickly_and_a_contradiction_stops_it(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    """GRID_DEBOUNCE=3: two confirming reads GRID_CONFIRM_DELAY apart, not two fast intervals."""
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        base = f"{unique_prefix}/{gateway.serial}"
        event_topic = f"{base}/event"
        settings = bridge_settings(
            gateway,
            port,
            unique_prefix,
            tmp_path,
            fast_interval=2.0,
            grid_debounce=3,
            grid_confirm_delay=0.1,
        )
        async with (
            Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(lambda r: any(x.topic == f"{base}/grid_status" for x in r), 20)
            # a glitch two reads long: read off-grid, confirmed once, then on-grid again
            last = (await answered(gateway, RELAY, after=time.monotonic()))[0]
            gateway.set_grid(False)
            first = (await answered(gateway, RELAY, after=last.start))[0]
            second = (await answered(gateway, RELAY, after=first.start))[0]
            gateway.set_grid(True)
            third = (await answered(gateway, RELAY, after=second.start))[0]
            after = (await answered(gateway, RELAY, after=third.start, timeout=5))[0]
            assert second.start - first.end < 1.0  # confirming, not the next fast read
            assert third.start - second.end < 1.0
            assert after.start - third.end > 1.0  # contradicted: back to the fast cadence

            flip = time.monotonic()
            gateway.set_grid(False)
            records = await recorder.wait_for(has_event(event_topic, "grid"), timeout=8)
            arrived = next(r.t for r in records if r.topic == event_topic)
        reads = [r for r in gateway.stats.log if r.path == RELAY and flip < r.start < arrived]
        assert len(reads) == 3
        assert reads[2].start - reads[0].end < 1.0  # two confirming reads, ~0.1 s apart each
    (outage,) = events(recorder.records, event_topic, "grid")
    assert (outage["from"], outage["to"]) == ("on-grid", "off-grid")
