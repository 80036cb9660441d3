"""Controls are safe: off by default, retained commands never run, every value is checked,
floods are dropped, writes never overlap reads, and refusals and silences are reported.

Real mosquitto, the real App, the simulated gateway over real HTTPS (tests/test_control_e2e.py
has the site these tests share).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiomqtt
import pytest

from envoy2mqtt.sim import Fault, SimulatedGateway, WriteFault
from tests.broker import Mosquitto, Recorder, collect
from tests.harness import assert_polite, bridge_settings, running
from tests.test_control_e2e import BATTERY, GENERATOR, HOST, RELAY, TARIFF, answer, controlled

pytestmark = pytest.mark.timeout(90)


def subscribed(broker: Mosquitto, prefix: str) -> set[str]:
    """Every topic filter below `prefix/` any client subscribed to (the broker's log), but the
    ghost sweep's own marker (`bridge/sync`, how it knows the retained configs are in)."""
    found = re.findall(r"\t(\S+) \(QoS \d\)", broker.log())
    marker = f"{prefix}/bridge/sync"
    return {f for f in found if f.startswith(f"{prefix}/") and not f.endswith("#")} - {marker}


async def test_invalid_values_are_answered_with_errors_and_nothing_is_sent(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(BATTERY, mosquitto_session, unique_prefix, tmp_path) as site:
        await site.send("set/battery_mode", "turbo")
        await site.send("set/battery_reserve_soc", "150")
        await site.send("set/battery_reserve_soc", "abc")
        await site.send("set/charge_from_grid", "maybe")
        await site.send("set/battery_turbo", "on")
        await site.send("set", "not json")
        await site.send("dry_contact/NC1/set", json.dumps({"soc_low": 90, "transaction": "x"}))
        await site.send("set", json.dumps({"battery_mode": "backup", "battery_reserve_soc": 101}))
        responses = await site.answered(9)
        assert all(r["status"] == "error" for r in responses)
        messages = [r["message"] for r in responses]
        assert messages[:6] == [
            'battery_mode: "turbo" is not one of backup, self-consumption, economy',
            "battery_reserve_soc: 150 is out of range 0-100",
            'battery_reserve_soc: expected a number, got "abc"',
            'charge_from_grid: expected on or off, got "maybe"',
            "unknown control 'battery_turbo' (controls here: battery_mode, reserve_soc, "
            "charge_from_grid, grid_enabled, generator_mode)",
            'expected a JSON object, e.g. {"battery_mode": "backup"}',
        ]
        assert answer(responses[6])[:3] == ("error", "dry_contact/NC1/soc_low", 90)
        assert "must stay below soc_high (70)" in messages[6]
        assert responses[6]["transaction"] == "x"
        # one bad value in a message: nothing of it is sent, and both parts say so
        assert [r["control"] for r in responses[7:]] == ["battery_mode", "battery_reserve_soc"]
        assert messages[7:] == [
            "not sent: another value in the message is not valid; nothing in this message was sent",
            "battery_reserve_soc: 101 is out of range 0-100; nothing in this message was sent",
        ]
        assert site.writes() == []


async def test_a_retained_command_is_ignored_and_cleared(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway:
        topic = f"{unique_prefix}/{gateway.serial}/set/grid_enabled"
        async with aiomqtt.Client(HOST, mosquitto_session.port) as client:
            await client.publish(topic, "off", qos=1, retain=True)  # left there by mistake
        settings = bridge_settings(
            gateway, mosquitto_session.port, unique_prefix, tmp_path, controls="all"
        )
        async with (
            Recorder(HOST, mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            root = f"{unique_prefix}/{gateway.serial}"
            await recorder.wait_for(lambda r: any(x.topic == f"{root}/grid_status" for x in r), 30)
            await asyncio.sleep(1.0)
            assert gateway.write_log == []
            assert gateway.grid_on
            left = await collect(HOST, mosquitto_session.port, topic, timeout=1.0)
            assert left.get(topic, b"") == b""  # cleared from the broker
            assert not recorder.on(f"{root}/response")
            async with aiomqtt.Client(HOST, mosquitto_session.port) as client:  # a live one runs
                await client.publish(topic, "off", qos=1)
            await recorder.wait_for(lambda r: any(x.topic == f"{root}/response" for x in r), 20)
            assert not gateway.grid_on


async def test_a_flood_is_rate_limited_per_control(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(BATTERY, mosquitto_session, unique_prefix, tmp_path) as site:
        for soc in range(30, 36):
            await site.send("set/battery_reserve_soc", str(soc))
        await site.send("dry_contact/NC1/set/status", "open")  # another control: not limited
        responses = await site.answered(7)
        by_status = sorted((r["status"], r["control"], r["requested"]) for r in responses)
        assert by_status == [
            *[("error", "battery_reserve_soc", soc) for soc in range(31, 36)],
            ("ok", "battery_reserve_soc", 30),
            ("ok", "dry_contact/NC1/status", "open"),
        ]
        limited = [r["message"] for r in responses if r["status"] == "error"]
        assert all(
            m.startswith("rate limited: one write of battery_reserve_soc per 10 s") for m in limited
        )
        assert site.writes(TARIFF) == [(TARIFF, 200)]


async def test_with_controls_off_nothing_is_subscribed_announced_or_written(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY) as gateway:
        root = f"{unique_prefix}/{gateway.serial}"
        settings = bridge_settings(gateway, port, unique_prefix, tmp_path)  # the default: none
        assert settings.controls == "none"
        async with Recorder(HOST, port, f"{unique_prefix}/#") as recorder, running(settings):
            await recorder.wait_for(lambda r: any(x.topic == f"{root}/grid_status" for x in r), 30)
            async with aiomqtt.Client(HOST, port) as client:
                await client.publish(f"{root}/set/grid_enabled", "off", qos=1)
                await client.publish(f"{root}/set", '{"battery_mode": "backup"}', qos=1)
            await asyncio.sleep(1.5)
            configs = await collect(HOST, port, f"{unique_prefix}-ha/#", timeout=1.0)
        # nothing but the ghost sweep's own marker (`bridge/sync`): no command topic
        assert (
            subscribed(mosquitto_session, unique_prefix) - {f"{unique_prefix}/bridge/sync"} == set()
        )
        assert not any("/control_" in topic for topic in configs)
        assert f"{unique_prefix}-ha/sensor/{gateway.serial}/response/config" not in configs
        assert configs  # the sensors are announced all the same
        assert not recorder.on(f"{root}/response")
        assert gateway.write_log == []
        assert gateway.grid_on
        # the same check sees the command filters once controls are on
        async with controlled(BATTERY, mosquitto_session, f"{unique_prefix}-on", tmp_path):
            pass
        assert subscribed(mosquitto_session, f"{unique_prefix}-on") == {
            f"{unique_prefix}-on/+/set",
            f"{unique_prefix}-on/+/set/+",
            f"{unique_prefix}-on/+/+/+/set",
            f"{unique_prefix}-on/+/+/+/set/+",
        }


async def test_turning_controls_off_removes_their_entities(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        serial = site.gateway.serial
    configs = await collect(HOST, port, f"{unique_prefix}-ha/#", timeout=1.0)
    controls = {t for t, p in configs.items() if "/control_" in t and p}
    assert len(controls) == 30  # 4 dry contacts x 7, the grid relay, the generator mode
    answers = f"{unique_prefix}-ha/sensor/{serial}/response/config"
    assert configs.get(answers)  # the answers sensor, with the controls
    controls.add(answers)
    async with SimulatedGateway(capture=GENERATOR) as gateway:
        assert gateway.serial == serial
        settings = bridge_settings(gateway, port, unique_prefix, tmp_path)
        async with Recorder(HOST, port, f"{unique_prefix}-ha/#") as recorder, running(settings):
            await recorder.wait_for(
                lambda r: {x.topic for x in r if x.topic in controls and not x.payload} == controls,
                timeout=20,
            )
    left = await collect(HOST, port, f"{unique_prefix}-ha/#", timeout=1.0)
    assert not any("/control_" in topic for topic, payload in left.items() if payload)
    assert not left.get(answers)


async def test_writes_go_through_the_gate_and_never_overlap_a_read(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(
        GENERATOR,
        mosquitto_session,
        unique_prefix,
        tmp_path,
        fast_interval=0.2,
        battery_interval=1,
    ) as site:
        for contact in ("NC1", "NC2", "NO1", "NO2"):
            await site.send(f"dry_contact/{contact}/set", '{"status": "open", "mode": "soc"}')
        await site.send("set/generator_mode", "off")
        await site.send("set/grid_enabled", "off")
        responses = await site.answered(10, timeout=30)
        assert {r["status"] for r in responses} == {"ok"}
        stats = site.gateway.stats
        assert_polite(site.gateway)
        writes = [r for r in stats.log if r.path in {w.path for w in site.gateway.write_log}]
        assert len(writes) >= 10  # 4 x settings + position, generator, relay (and the reads)
        for record in stats.log:
            assert all(
                record is other or record.end <= other.start or other.end <= record.start
                for other in writes
            )


async def test_a_refused_write_is_reported_and_withdraws_the_control(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(
        BATTERY, mosquitto_session, unique_prefix, tmp_path, control_rate_limit=0
    ) as site:
        site.gateway.set_write_fault(WriteFault.REJECT, paths={RELAY})
        config = f"{unique_prefix}-ha/switch/{site.gateway.serial}/control_grid_enabled/config"
        await site.send("set/grid_enabled", "off")
        (response,) = await site.answered(1)
        assert answer(response)[:3] == ("error", "grid_enabled", "off")
        assert "refused the write (HTTP 401/403)" in response["message"]
        assert site.gateway.grid_on
        async with Recorder(HOST, site.port, config) as recorder:  # its entity is taken back
            await recorder.wait_for(lambda r: any(not x.payload for x in r), timeout=10)
        await site.send("set/grid_enabled", "off")
        refused = (await site.answered(2))[1]
        assert "refused writing it" in refused["message"]
        assert site.writes() == [(RELAY, 403)]
        assert site.app.bridges[0].publisher is not None
        assert site.app.bridges[0].publisher.available  # reads go on: not an auth failure


async def test_a_write_that_times_out_is_reported_and_the_next_one_works(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(
        GENERATOR,
        mosquitto_session,
        unique_prefix,
        tmp_path,
        request_timeout=1,
        control_rate_limit=0,
    ) as site:
        site.gateway.set_write_fault(WriteFault.TIMEOUT, paths={RELAY})
        await site.send("set/grid_enabled", "off")
        (response,) = await site.answered(1)
        assert answer(response)[:3] == ("error", "grid_enabled", "off")
        assert "did not answer in time" in response["message"]
        site.gateway.set_write_fault(WriteFault.NONE)
        await site.send("set/grid_enabled", "off")
        assert answer((await site.answered(2))[1]) == ("ok", "grid_enabled", "off", "off", None)


async def test_a_write_that_cannot_be_read_back_says_so(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        # a dry contact is read back from its own endpoints
        site.gateway.set_fault(Fault.HTTP_500, paths={"/ivp/ss/dry_contact_settings"})
        await site.send("dry_contact/NC1/set/status", "open")
        (response,) = await site.answered(1)
        assert answer(response)[:3] == ("error", "dry_contact/NC1/status", "open")
        assert response["message"].startswith("written, but not read back")
        assert site.writes() == [("/ivp/ensemble/dry_contacts", 200)]


async def test_a_command_while_the_gateway_is_down_is_answered(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY) as gateway:
        gateway.fault = Fault.DOWN
        settings = bridge_settings(
            gateway, port, unique_prefix, tmp_path, controls="all", envoy_serial=gateway.serial
        )
        root = f"{unique_prefix}/{gateway.serial}"
        async with Recorder(HOST, port, f"{root}/response") as recorder, running(settings) as app:
            await app.link.connected.wait()
            await asyncio.sleep(0.5)
            async with aiomqtt.Client(HOST, port) as client:
                await client.publish(f"{root}/set/grid_enabled", "off", qos=1)
            await recorder.wait_for(lambda records: len(records) > 0, timeout=10)
        body = json.loads(recorder.records[0].payload)
        assert answer(body)[:3] == ("error", "grid_enabled", "off")
        assert body["message"] == "the gateway is not connected: nothing was sent"
        assert gateway.write_log == []
