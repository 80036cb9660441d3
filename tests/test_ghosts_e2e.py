"""No ghosts: across restarts, mode switches, replaced devices and removed gateways, the
retained discovery configs on a real broker are exactly what the current gateways publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

import envoy2mqtt.features.ghosts
from envoy2mqtt.app import App
from envoy2mqtt.polling.events import SnapshotSettled
from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, MosquittoFactory, Record, Recorder, collect
from tests.harness import bridge_settings, running

CAPTURE = "7.6.175_with_cts"
FOREIGN = json.dumps(
    {"name": "Kitchen plug", "unique_id": "0x00158d0001_power", "state_topic": "z2m/plug",
     "origin": {"name": "Zigbee2MQTT"}}
).encode()  # fmt: skip


@pytest.fixture(autouse=True)
def quick_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envoy2mqtt.features.ghosts, "EVERY", 0.3)


async def configs(broker: Mosquitto, prefix: str) -> dict[str, bytes]:
    """Every retained discovery config under the prefix now."""
    seen = await collect("127.0.0.1", broker.port, f"{prefix}/#", timeout=1.0)
    return {topic: payload for topic, payload in seen.items() if payload}


async def settled(
    broker: Mosquitto, prefix: str, check: Callable[[dict[str, bytes]], object], timeout: float = 20
) -> dict[str, bytes]:
    """Retained configs once `check(configs)` holds (the last seen ones if it never does)."""
    deadline = asyncio.get_running_loop().time() + timeout
    found = await configs(broker, prefix)
    while not check(found) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.3)
        found = await configs(broker, prefix)
    return found


async def retain(broker: Mosquitto, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(topic, payload, qos=1, retain=True)


def ours(found: dict[str, bytes]) -> set[str]:
    return {t for t, p in found.items() if b'"envoy2mqtt"' in p}


async def test_mode_switch_both_ways_leaves_only_the_current_mode(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    prefix = f"{unique_prefix}-ha"
    foreign = f"{prefix}/sensor/0x00158d0001/power/config"
    await retain(mosquitto_session, foreign, FOREIGN)
    async with SimulatedGateway(capture=CAPTURE) as gateway:

        def settings(mode: str) -> object:
            return bridge_settings(
                gateway, mosquitto_session.port, unique_prefix, tmp_path, ha_discovery_mode=mode
            )

        async with running(settings("entity")):  # type: ignore[arg-type]
            first = await settled(mosquitto_session, prefix, lambda f: len(ours(f)) > 20)
        entity_topics = ours(first)
        assert all("/device/" not in t for t in entity_topics)

        async with running(settings("device")):  # type: ignore[arg-type]
            device = await settled(
                mosquitto_session,
                prefix,
                lambda f: ours(f) and all("/device/" in t for t in ours(f)),
            )
        assert ours(device)
        assert all("/device/" in t for t in ours(device)), sorted(ours(device))
        entities_in_device_configs = sum(len(json.loads(device[t])["cmps"]) for t in ours(device))
        assert entities_in_device_configs == len(entity_topics)

        async with running(settings("entity")):  # type: ignore[arg-type]
            back = await settled(mosquitto_session, prefix, lambda f: ours(f) == entity_topics)
        assert ours(back) == entity_topics
    assert back[foreign] == FOREIGN  # somebody else's config is never touched


async def test_replaced_device_and_removed_gateway_are_cleaned_up_on_restart(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    prefix = f"{unique_prefix}-ha"
    async with SimulatedGateway(capture=CAPTURE) as gateway:
        settings = bridge_settings(gateway, mosquitto_session.port, unique_prefix, tmp_path)
        async with running(settings) as app:
            first = await settled(mosquitto_session, prefix, lambda f: len(ours(f)) > 20)
            serial = app.bridges[0].serial
        assert serial is not None
        wanted = ours(first)
        # while the bridge is down: an inverter is replaced, and a gateway it no longer has
        # left its configs behind (both carry the bridge's own origin and unique ids)
        template = json.loads(first[next(t for t in wanted if "/inverter_" in t)])
        ghosts = {}
        for owner, object_id in ((serial, "inverter_999999_power"), ("000000000000", "power")):
            ghost = dict(template)
            ghost["unique_id"] = f"envoy2mqtt_{owner}_{object_id}"
            ghost["state_topic"] = f"{unique_prefix}/{owner}/{object_id.replace('_', '/')}"
            topic = f"{prefix}/sensor/{owner}/{object_id}/config"
            ghosts[topic] = json.dumps(ghost).encode()
            await retain(mosquitto_session, topic, ghosts[topic])
        assert set(ghosts) <= ours(await configs(mosquitto_session, prefix))

        async with running(settings):
            after = await settled(mosquitto_session, prefix, lambda f: ours(f) == wanted)
        assert ours(after) == wanted, sorted(ours(after) ^ wanted)


def unique_ids(payload: bytes) -> set[str]:
    """The unique ids a config holds (one per entity; a device config, one per component)."""
    document = json.loads(payload)
    components = document.get("cmps", {}).values() if "cmps" in document else [document]
    return {c.get("unique_id", c.get("uniq_id")) for c in components}


def taken_before_given(records: list[Record], since: int) -> list[str]:
    """Unique ids published under a new topic while a config of ours still held them."""
    holder: dict[str, str] = {}  # unique id -> the config topic that holds it
    for record in records[:since]:
        if record.payload:
            holder.update(dict.fromkeys(unique_ids(record.payload), record.topic))
        else:
            holder = {u: t for u, t in holder.items() if t != record.topic}
    clashes = []
    for record in records[since:]:
        if not record.payload:
            holder = {u: t for u, t in holder.items() if t != record.topic}
            continue
        for uid in unique_ids(record.payload):
            if holder.get(uid, record.topic) != record.topic:
                clashes.append(f"{uid}: {record.topic} while {holder[uid]} stands")
            holder[uid] = record.topic
    return clashes


def current_mode(records: list[Record], mode: str) -> Callable[[list[Record]], bool]:
    """Every config of ours retained under the topics of `mode`, none under the other's."""

    def check(_records: list[Record]) -> bool:
        standing = {
            r.topic: r.payload for r in records if b'"envoy2mqtt"' in r.payload or not r.payload
        }
        live = [t for t, p in standing.items() if p]
        return bool(live) and all(("/device/" in t) == (mode == "device") for t in live)

    return check


async def test_a_mode_switch_frees_every_unique_id_before_taking_it_again(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    prefix = f"{unique_prefix}-ha"
    async with (
        SimulatedGateway(capture=CAPTURE) as gateway,
        Recorder("127.0.0.1", mosquitto_session.port, f"{prefix}/#") as wire,
    ):
        for mode in ("entity", "device", "entity"):
            since = len(wire.records)
            settings = bridge_settings(
                gateway, mosquitto_session.port, unique_prefix, tmp_path, ha_discovery_mode=mode
            )
            async with running(settings):
                await wire.wait_for(current_mode(wire.records, mode), timeout=20)
            assert not taken_before_given(wire.records, since), mode


async def test_configs_read_after_the_first_snapshot_are_still_removed_first(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(persistence=True)
    prefix = f"{unique_prefix}-ha"
    async with SimulatedGateway(capture=CAPTURE) as gateway:

        def settings(mode: str) -> Settings:
            return bridge_settings(
                gateway, broker.port, unique_prefix, tmp_path, ha_discovery_mode=mode
            )

        async with running(settings("entity")):
            await settled(broker, prefix, lambda f: len(ours(f)) > 20)
        await asyncio.to_thread(broker.stop)  # the retained configs are kept (persistence)
        app = App(settings("device"))
        first = asyncio.Event()
        app.bridges[0].events.subscribe().on(SnapshotSettled, lambda _: first.set())
        async with running(app):
            # the broker is down: the gateway's first snapshot comes before any config is read
            await asyncio.wait_for(first.wait(), 20)
            publisher = app.bridges[0].publisher
            assert publisher is not None
            assert publisher.announcer.waiting
            assert not publisher.discovery_topics
            wire = Recorder("127.0.0.1", broker.port, f"{prefix}/#")
            subscribing = asyncio.create_task(wire.__aenter__())  # retries every 50 ms
            await broker.start_async()
            await subscribing  # subscribed before the bridge is back (its back-off: >= 0.5 s)
            try:
                await wire.wait_for(current_mode(wire.records, "device"), timeout=20)
            finally:
                await wire.__aexit__(None, None, None)
    old = [r for r in wire.records if r.retain and b'"envoy2mqtt"' in r.payload]
    assert old, "the entity-mode configs were on the broker when it came back"
    assert all("/device/" not in r.topic for r in old)
    assert not taken_before_given(wire.records, 0)


async def test_discovery_switched_off_takes_every_config_of_ours_away(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    prefix = f"{unique_prefix}-ha"
    async with SimulatedGateway(capture=CAPTURE) as gateway:

        def settings(discovery: bool) -> Settings:
            return bridge_settings(
                gateway, mosquitto_session.port, unique_prefix, tmp_path, ha_discovery=discovery
            )

        async with running(settings(True)):
            await settled(mosquitto_session, prefix, lambda f: len(ours(f)) > 20)
        async with running(settings(False)):
            left = await settled(mosquitto_session, prefix, lambda f: not ours(f))
    assert ours(left) == set()
