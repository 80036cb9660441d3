"""End to end: simulated gateway (real HTTP/S) -> bridge -> real mosquitto -> subscriber."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder, collect
from tests.harness import bridge_settings, oracle, running

CAPTURES = {
    "legacy": "3.9.36",
    "metered_cts": "7.6.175_with_cts",
    "batteries": "8.2.4286_with_3cts_and_battery_split",
}


def expected_core(data: EnvoyData) -> dict[str, str]:
    """The core metrics as pyenphase reads them, in the bridge's plain wire form."""
    out: dict[str, str] = {}
    if (p := data.system_production) is not None:
        out["production_power"] = str(max(p.watts_now, 0))  # night clamp is the default
        out["production_energy_today"] = str(p.watt_hours_today)
        out["production_energy_lifetime"] = str(p.watt_hours_lifetime)
    if (c := data.system_consumption) is not None:
        out["consumption_power"] = str(c.watts_now)
        out["consumption_energy_today"] = str(c.watt_hours_today)
        out["consumption_energy_lifetime"] = str(c.watt_hours_lifetime)
    # grid power comes from the net-consumption CT where there is one (the 1 s fast lane),
    # else from /production.json
    net: int | None = None
    if (ct := data.ctmeters.get("net-consumption")) is not None:
        net = ct.active_power
    elif (n := data.system_net_consumption) is not None:
        net = n.watts_now
    if net is not None:
        out["net_power"] = str(net)
        out["grid_import_power"] = str(max(net, 0))
        out["grid_export_power"] = str(max(-net, 0))
    for serial, inverter in data.inverters.items():
        out[f"inverter/{serial}/power"] = str(inverter.last_report_watts)
    return out


@pytest.mark.parametrize("capture", CAPTURES.values(), ids=CAPTURES.keys())
async def test_retained_values_equal_the_capture(
    capture: str, mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=capture) as gateway:
        expected = expected_core(await oracle(gateway))
        settings = bridge_settings(gateway, mosquitto_session.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with running(settings):
            seen = await collect(
                "127.0.0.1",
                mosquitto_session.port,
                f"{unique_prefix}/#",
                until=lambda s: (
                    all(f"{base}/{k}" in s for k in expected) and f"{base}/availability" in s
                ),
                timeout=20,
            )
    got = {k: seen.get(f"{base}/{k}", b"").decode() for k in expected}
    assert got == expected
    assert seen[f"{base}/availability"] == b"online"
    assert seen[f"{unique_prefix}/bridge/state"] == b"online"
    # the Energy dashboard needs these on every gateway
    assert {"production_power", "production_energy_lifetime"} <= expected.keys()
    if capture == CAPTURES["legacy"]:
        assert f"{base}/consumption_power" not in seen  # no CT: absent, never a made-up 0
    else:
        assert {"net_power", "grid_import_power", "grid_export_power"} <= expected.keys()
    info = json.loads(seen[f"{unique_prefix}/bridge/info"])
    assert info["gateways"][0]["serial"] == gateway.serial


async def test_discovery_payloads(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=CAPTURES["batteries"]) as gateway:
        settings = bridge_settings(gateway, mosquitto_session.port, unique_prefix, tmp_path)
        prefix = f"{unique_prefix}-ha"
        energy_topic = f"{prefix}/sensor/{gateway.serial}/production_energy_lifetime/config"
        grid_topic = f"{prefix}/binary_sensor/{gateway.serial}/grid_status/config"
        async with running(settings):
            seen = await collect(
                "127.0.0.1",
                mosquitto_session.port,
                f"{prefix}/#",
                until=lambda s: energy_topic in s and grid_topic in s,
                timeout=20,
            )
    energy = json.loads(seen[energy_topic])
    assert energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "Wh"
    assert energy["device"]["manufacturer"] == "Enphase"
    # serial_number needs HA 2024.2: left out at the default HA_COMPAT (2024.1)
    assert "serial_number" not in energy["device"]
    assert energy["device"]["identifiers"] == [f"envoy2mqtt_{gateway.serial}"]
    assert energy["state_topic"] == f"{unique_prefix}/{gateway.serial}/production_energy_lifetime"
    grid = json.loads(seen[grid_topic])
    assert grid["payload_on"] == "on-grid"
    assert grid["payload_off"] == "off-grid"
    assert grid["device_class"] == "power"
    unique_ids = [json.loads(p)["unique_id"] for p in seen.values() if p]
    assert len(unique_ids) == len(set(unique_ids))


async def test_home_assistant_birth_republishes_discovery_then_states(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=CAPTURES["metered_cts"]) as gateway:
        # discovery and birth inside the prefix: the session broker holds every other
        # test's retained messages, a "#" subscriber would wade through all of them
        ha = f"{unique_prefix}/ha"
        settings = bridge_settings(
            gateway,
            port,
            unique_prefix,
            tmp_path,
            ha_discovery_prefix=ha,
            ha_status_topic=f"{ha}/status",
        )
        state = f"{unique_prefix}/{gateway.serial}/production_power"
        async with running(settings):
            await collect("127.0.0.1", port, state, until=lambda s: state in s, timeout=20)
            # QoS 0 like Home Assistant's own subscriptions: a QoS 1 subscriber's in-flight
            # window lets the broker reorder QoS 0 states ahead of queued QoS 1 configs
            async with Recorder("127.0.0.1", port, f"{unique_prefix}/#", qos=0) as recorder:
                await recorder.wait_for(lambda r: any(x.topic == state for x in r), timeout=5)
                recorder.records.clear()
                async with aiomqtt.Client("127.0.0.1", port) as client:
                    await client.publish(f"{ha}/status", "online")
                records = await recorder.wait_for(
                    lambda r: _after(r, f"{ha}/status", state), timeout=10
                )
    birth = next(i for i, r in enumerate(records) if r.topic == f"{ha}/status")
    fresh = [r for r in records[birth + 1 :] if not r.retain]
    # a state already on its way when the birth arrived may come first; what HA needs is its
    # configs before the states re-published for it (production_power is not drifting here)
    discovery = next(i for i, r in enumerate(fresh) if r.topic.startswith(f"{ha}/"))
    republished = next(i for i, r in enumerate(fresh) if r.topic == state)
    assert discovery < republished, "discovery must be re-published before the states"


def _after(records: list[Record], first: str, then: str) -> bool:
    """True once `then` was recorded after `first`."""
    seen_first = False
    for record in records:
        seen_first = seen_first or record.topic == first
        if seen_first and record.topic == then:
            return True
    return False


def _spawn_bridge(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "envoy2mqtt.cli", "run"],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # a pipe nobody reads would be left open (ResourceWarning)
    )


async def test_killed_bridge_leaves_offline_as_last_will(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    topic = f"{unique_prefix}/bridge/state"
    async with SimulatedGateway(capture=CAPTURES["legacy"]) as gateway:
        env = {
            "ENVOY_HOST": gateway.host,
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(port),
            "MQTT_BASE_TOPIC": unique_prefix,
            "STATE_DIR": str(tmp_path / "state"),
            "MQTT_KEEPALIVE": "5",
        }
        process = _spawn_bridge(env, tmp_path)
        try:
            seen = await collect(
                "127.0.0.1", port, topic, until=lambda s: s.get(topic) == b"online", timeout=20
            )
            assert seen.get(topic) == b"online"
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)
            seen = await collect(
                "127.0.0.1", port, topic, until=lambda s: s.get(topic) == b"offline", timeout=20
            )
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)
    assert seen.get(topic) == b"offline"


async def test_sigterm_says_offline_and_exits_quickly(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=CAPTURES["metered_cts"]) as gateway:
        env = {
            "ENVOY_HOST": gateway.host,
            "ENVOY_TOKEN": gateway.make_token(),
            "MQTT_HOST": "127.0.0.1",
            "MQTT_PORT": str(port),
            "MQTT_BASE_TOPIC": unique_prefix,
            "STATE_DIR": str(tmp_path / "state"),
        }
        process = _spawn_bridge(env, tmp_path)
        availability = f"{unique_prefix}/{gateway.serial}/availability"
        try:
            await collect(
                "127.0.0.1", port, availability, until=lambda s: availability in s, timeout=20
            )
            loop = asyncio.get_running_loop()
            started = loop.time()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 10)
            elapsed = loop.time() - started
        finally:
            if process.poll() is None:
                process.kill()
        seen = await collect("127.0.0.1", port, f"{unique_prefix}/#", timeout=2)
    assert code == 0
    assert elapsed < 5
    assert seen[f"{unique_prefix}/bridge/state"] == b"offline"
    assert seen[availability] == b"offline"
