"""The bridge against a gateway that behaves as the field reports (firmware D8.3.6086).

The simulator's field profile (`envoy2mqtt.sim.Field`) makes the slow pages slow
(production.json 30-55 s, inventory.json ~20 s, home.json over a minute), answers requests
concurrently, reports the relay's transitional states (`open synchronizing`, `open
synchronized`), hangs every request in the 23:00 housekeeping window and reads inventory
numbers as "unknown" after a reboot. Durations are scaled down (`time_scale`) so the tests
run in seconds; the benchmark (`benchmarks/event_latency.py --field`) runs them at full scale.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time, timedelta
from pathlib import Path

from pydantic import SecretStr

from envoy2mqtt.settings import Cadence, GatewaySettings
from envoy2mqtt.sim import Field, SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder
from tests.harness import assert_polite, bridge_settings, running

CAPTURE = "8.2.4286_with_3cts_and_battery_split"  # System Controller, batteries, CTs
SCALE = 0.1  # production.json 3-5.5 s, inventory.json ~2 s, home.json 6-7.5 s


def first(records: list[Record], topic: str, payload: bytes | None = None) -> Record | None:
    """The first record on `topic` (with `payload`, if given)."""
    return next(
        (r for r in records if r.topic == topic and (payload is None or r.payload == payload)),
        None,
    )


def grid_events(records: list[Record], topic: str) -> list[str]:
    """The `to` of every grid event published on `topic`, in order."""
    bodies = [json.loads(r.payload) for r in records if r.topic == topic]
    return [b["to"] for b in bodies if b["type"] == "grid"]


async def test_online_and_watching_the_grid_long_before_the_slow_pages_answer(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    field = Field.current_firmware(time_scale=SCALE, seed=7)
    async with SimulatedGateway(capture=CAPTURE, field=field) as gateway:
        settings = bridge_settings(gateway, mosquitto_session.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: first(r, f"{base}/production_power") is not None, timeout=60
            )
            log = list(gateway.stats.log)
            records = list(recorder.records)
    grid = first(records, f"{base}/grid_status")
    online = first(records, f"{base}/availability", b"online")
    production = first(records, f"{base}/production_power")
    pages = sorted(r.end for r in log if r.path.startswith("/production.json"))
    assert grid is not None
    assert online is not None
    assert production is not None
    assert pages, "production.json was read"
    # the grid and the gateway's availability were out before the first production page came
    # back (both clocks are time.monotonic in this process)
    assert grid.t < pages[0]
    assert online.t < pages[0]
    assert grid.t < production.t
    assert_polite(gateway)


async def test_each_outage_and_return_is_one_grid_event_through_the_relays_real_states(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    # the relay reads `open synchronizing` for 1.6 s, then `open synchronized`; it recloses
    # 0.8-1.5 s after the grid returns (field figures x 0.1)
    field = Field(relay_transitions=True, time_scale=SCALE, seed=3)
    async with SimulatedGateway(capture=CAPTURE, field=field) as gateway:
        settings = bridge_settings(
            gateway, mosquitto_session.port, unique_prefix, tmp_path, fast_interval=0.3
        )
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: first(r, f"{base}/grid_status", b"on-grid") is not None, timeout=30
            )
            for _ in range(4):
                gateway.fail_grid()
                await asyncio.sleep(2.5)  # through `open synchronizing` to `open synchronized`
                assert gateway.relay_state[1] == "open synchronized"
                gateway.restore_grid()
                await asyncio.sleep(2.5)
                assert gateway.relay_state[1] == "closed"
            await asyncio.sleep(1.0)
            records = list(recorder.records)
    assert grid_events(records, f"{base}/event") == ["off-grid", "on-grid"] * 4
    # the retained state, as it changed (a broker connect re-publishes the current one)
    said = [r.payload for r in records if r.topic == f"{base}/grid_status"]
    statuses = [b for a, b in zip([None, *said], said, strict=False) if a != b]
    assert statuses == [b"on-grid"] + [b"off-grid", b"on-grid"] * 4
    relay = {r.payload for r in records if r.topic.endswith("/grid_relay")}  # on its device
    assert {b"open synchronizing", b"open synchronized", b"closed"} <= relay


def quiet_now() -> str:
    """A quiet window (QUIET_WINDOW) around the bridge's own now: the capture states no zone."""
    now = datetime.now().astimezone()
    start, end = now - timedelta(minutes=2), now + timedelta(minutes=3)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_the_nightly_housekeeping_costs_no_availability_and_no_event(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=CAPTURE) as gateway:
        window = quiet_now()
        start, end = window.split("-")
        cadence = Cadence.model_construct(
            fast=0.3,
            battery=1.0,
            normal=5.0,
            inverters=60.0,
            grid_confirm=0.15,
            quiet_start=time.fromisoformat(start),
            quiet_end=time.fromisoformat(end),
            quiet_fast=0.5,
        )
        one = GatewaySettings(
            host=gateway.host, token=SecretStr(gateway.make_token()), cadence=cadence
        )
        settings = bridge_settings(
            gateway,
            mosquitto_session.port,
            unique_prefix,
            tmp_path,
            gateways=[one],
            request_timeout=1.0,
        )
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: first(r, f"{base}/availability", b"online") is not None, timeout=30
            )
            gateway.housekeeping_now(6.0)  # every request hangs 6 s: many fast reads time out
            await asyncio.sleep(4.0)
            gateway.fail_grid()  # during the window: read once it ends
            await recorder.wait_for(
                lambda r: "off-grid" in grid_events(r, f"{base}/event"), timeout=20
            )
            records = list(recorder.records)
    availability = [r.payload for r in records if r.topic == f"{base}/availability"]
    assert b"offline" not in availability
    assert grid_events(records, f"{base}/event") == ["off-grid"]


async def test_unknown_inventory_numbers_after_a_reboot_are_neither_a_crash_nor_a_zero(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    field = Field(unknown_after_reboot=True, time_scale=SCALE)
    async with SimulatedGateway(capture=CAPTURE, field=field) as gateway:
        gateway.reboot()
        settings = bridge_settings(
            gateway, mosquitto_session.port, unique_prefix, tmp_path, poll_interval=5.0
        )
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: first(r, f"{base}/battery_soc") is not None, timeout=30
            )
            await asyncio.sleep(2.0)
            records = list(recorder.records)
    temperatures = [
        r for r in records if r.topic.startswith(f"{base}/") and r.topic.endswith("temperature")
    ]
    assert all(r.payload not in (b"0", b"0.0", b"unknown") for r in temperatures), temperatures
    assert first(records, f"{base}/availability", b"online") is not None
    assert b"offline" not in [r.payload for r in records if r.topic == f"{base}/availability"]
