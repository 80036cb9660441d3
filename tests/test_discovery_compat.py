"""Every discovery payload the bridge makes, for every capture, suits every supported HA release.

The evidence is tests/data/ha_discovery_keys.json: the keys each Home Assistant release's MQTT
schemas accept, read from its wheel (docs/ha-compat.md). A `device` or `origin` key a release
does not know makes it reject the entity; an unknown entity-level key it drops silently, so
only the keys in discovery.TOLERATED may be unknown there, and only where the release drops
(rather than refuses) unknown keys.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import pytest

from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.catalog.metric import Entity
from envoy2mqtt.control.discovery import control_configs
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.gateway.client import GatewayClient, TokenSource
from envoy2mqtt.gateway.overlay import merge_inverters
from envoy2mqtt.mqtt.discovery import (
    DEVICE_DISCOVERY,
    DEVICE_KEYS_SINCE,
    NEWEST_CHECKED,
    OLDEST,
    TOLERATED,
    HaRelease,
    device_mode_warning,
    entity_configs,
)
from envoy2mqtt.mqtt.publisher import GatewayPublisher, PublishOptions
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.sim import SimulatedGateway, list_captures
from tests.links import RecordingLink

EVIDENCE: Final = Path(__file__).parent / "data" / "ha_discovery_keys.json"
UNREADABLE: Final = {"3.7.0"}  # only the HTML /production page: nothing to publish
Json = dict[str, Any]
RELEASES: Final[dict[str, Json]] = json.loads(EVIDENCE.read_text())["versions"]


def release(version: str) -> HaRelease:
    """The evidence's version as a release."""
    return HaRelease.parse(version)


SUPPORTED: Final = sorted(
    (v for v in RELEASES if OLDEST <= release(v) <= NEWEST_CHECKED), key=release
)


@dataclass(frozen=True, slots=True)
class Produced:
    """What the bridge publishes for one capture, in both discovery modes."""

    serial: str
    entity_mode: dict[str, Json]  # topic -> payload
    device_mode: dict[str, Json]
    entities: list[Entity]
    snapshot: Snapshot


async def read(name: str) -> Snapshot:
    """The bridge's own reading of a capture: the normal lane and the inverter lane."""
    async with SimulatedGateway(capture=name) as gateway:
        tokens: TokenSource | None = FixedToken(gateway.make_token()) if gateway.uses_tls else None
        username = None if gateway.uses_tls else "envoy"
        async with GatewayClient(gateway.host, tokens=tokens, username=username) as client:
            info = await client.connect()
            data = await client.read_normal()
            inverters = await client.read_inverters()
    return Snapshot(info, merge_inverters(data, inverters))


def published(snapshot: Snapshot, mode: str) -> tuple[dict[str, Json], list[Entity]]:
    """The discovery configs a publisher sends for one snapshot, and its entities."""
    link = RecordingLink()
    publisher = GatewayPublisher(
        link, Topics(), snapshot.gateway, PublishOptions(ha_discovery_mode=mode)
    )
    publisher.publish_snapshot(snapshot)
    configs = {
        topic: json.loads(payload)
        for topic, payload, _ in link.messages
        if topic.startswith("homeassistant/") and payload
    }
    return configs, list(publisher.announcer.entities.values())


@pytest.fixture(scope="module")
def produced() -> list[Produced]:
    """Every readable capture's discovery payloads."""

    async def all_captures() -> list[Snapshot]:
        names = [n for n in list_captures() if n not in UNREADABLE]
        return list(await asyncio.gather(*(read(name) for name in names)))

    out = []
    for snapshot in asyncio.run(all_captures()):
        entity_mode, entities = published(snapshot, "entity")
        device_mode, _ = published(snapshot, "device")
        out.append(Produced(snapshot.gateway.serial, entity_mode, device_mode, entities, snapshot))
    return out


def expand(payload: Mapping[str, Any], table: Mapping[str, str]) -> Json:
    """Keys with the release's abbreviations written out."""
    return {table.get(key, key): value for key, value in payload.items()}


def entity_problems(payload: Json, platform: str, schema: Json) -> Iterator[str]:
    """Why this release would reject, or silently lose, a part of one entity's payload."""
    entity = expand(payload, schema["abbreviations"])
    accepted = set(schema[platform])
    for key in sorted(entity.keys() - accepted):
        if key not in TOLERATED or schema["entity_extra_policy"] != "remove":
            yield f"unknown entity key {key!r}"
    for key in schema["required"].get(platform, []):
        if key not in entity:
            yield f"required key {key!r} missing"
    if "device" in entity:
        device = expand(entity["device"], schema["device_abbreviations"])
        yield from (
            f"device key {k!r} is rejected" for k in sorted(device.keys() - set(schema["device"]))
        )
    if "origin" in entity:
        origin = expand(entity["origin"], schema["origin_abbreviations"])
        yield from (
            f"origin key {k!r} is rejected" for k in sorted(origin.keys() - set(schema["origin"]))
        )
    if platform == "sensor":
        yield from sensor_problems(entity, schema)
    if entity.get("entity_category") not in (None, "diagnostic"):
        yield f"entity_category {entity['entity_category']!r}"  # `config` is refused


def sensor_problems(sensor: Json, schema: Json) -> Iterator[str]:
    """Unit, state class and options that this release warns about or refuses."""
    device_class = sensor.get("device_class")
    units = schema["sensor_device_class_units"]
    if device_class in units and sensor.get("unit_of_measurement") not in units[device_class]:
        yield f"unit {sensor.get('unit_of_measurement')!r} for device class {device_class}"
    state_classes = schema["sensor_device_class_state_classes"]
    state_class = sensor.get("state_class")
    if (
        state_class
        and device_class in state_classes
        and state_class not in state_classes[device_class]
    ):
        yield f"state class {state_class} for device class {device_class}"
    if "options" in sensor and (
        device_class != "enum" or state_class or "unit_of_measurement" in sensor
    ):
        yield "options on a sensor that is not a plain enum"


def slug(text: str) -> str:
    """Home Assistant's slugify, for ASCII text."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def entity_id_in(payload: Json, schema: Json) -> str | None:
    """The object part of the entity id this release makes of the payload (None: from names)."""
    entity = expand(payload, schema["abbreviations"])
    keys = schema["entity_id_keys"]
    if "default_entity_id" in keys and "default_entity_id" in entity:
        return slug(str(entity["default_entity_id"]).partition(".")[2])
    if "object_id" in keys and "object_id" in entity:
        return slug(str(entity["object_id"]))
    return None


def documented_id(serial: str, payload: Json) -> str:
    """README: `<component>.envoy_<serial>_<topic below the gateway, as a slug>`."""
    path = payload["state_topic"].split(f"/{serial}/", 1)[1]
    return slug(f"envoy_{serial}_{path}")


def test_the_evidence_covers_the_supported_range() -> None:
    assert SUPPORTED[0] == f"{OLDEST}.0"
    assert release(SUPPORTED[-1]) == NEWEST_CHECKED
    assert len(SUPPORTED) >= 20


def test_every_capture_has_payloads(produced: list[Produced]) -> None:
    assert len(produced) == len(list_captures()) - len(UNREADABLE)
    assert all(p.entity_mode and p.device_mode for p in produced)


@pytest.mark.parametrize("version", SUPPORTED)
def test_entity_payloads_suit_the_release(produced: list[Produced], version: str) -> None:
    schema = RELEASES[version]
    problems = {
        f"{topic}: {problem}"
        for p in produced
        for topic, payload in p.entity_mode.items()
        for problem in entity_problems(payload, topic.split("/")[1], schema)
    }
    assert sorted(problems) == []


@pytest.mark.parametrize("version", SUPPORTED)
def test_entity_ids_are_the_documented_ones(produced: list[Produced], version: str) -> None:
    schema = RELEASES[version]
    wrong = [
        (topic, entity_id_in(payload, schema))
        for p in produced
        for topic, payload in p.entity_mode.items()
        if entity_id_in(payload, schema) != documented_id(p.serial, payload)
    ]
    assert wrong == []
    for p in produced:
        for topic, payload in p.entity_mode.items():
            # sent as Home Assistant will show it: already a slug, with the platform's domain
            assert payload["default_entity_id"] == f"{topic.split('/')[1]}.{payload['object_id']}"
            assert payload["object_id"] == slug(payload["object_id"])


@pytest.mark.parametrize("version", SUPPORTED)
def test_the_answers_sensor_suits_the_release(version: str) -> None:
    schema = RELEASES[version]
    info = GatewayInfo(serial="122238082763", firmware="8.2.4286", part_number="800-00654-r08")
    # announced with the controls, whichever this gateway offers (here: none)
    (config,) = control_configs(Topics(base="e2m"), info, [], {}, "Home")
    assert config.topic == "homeassistant/sensor/122238082763/response/config"
    payload = config.payload
    assert payload is not None
    assert list(entity_problems(payload, "sensor", schema)) == []
    assert entity_id_in(payload, schema) in (None, documented_id(info.serial, payload))
    assert documented_id(info.serial, payload) == "envoy_122238082763_response"
    topic = "e2m/122238082763/response"
    assert payload["state_topic"] == payload["json_attributes_topic"] == topic
    assert payload["value_template"] == "{{ value_json.status }}"
    assert payload["entity_category"] == "diagnostic"
    assert payload["availability"] == [{"topic": "e2m/bridge/state"}]


@pytest.mark.parametrize("version", [v for v in SUPPORTED if RELEASES[v]["device_discovery"]])
def test_device_payloads_suit_the_release(produced: list[Produced], version: str) -> None:
    schema = RELEASES[version]
    problems = set()
    for p in produced:
        for topic, config in p.device_mode.items():
            top = expand(config, schema["abbreviations"])
            problems |= {
                f"{topic}: top-level {k!r}"
                for k in top.keys() - set(schema["device_discovery_keys"])
            }
            for component in top["components"].values():
                platform = component["platform"]
                entity = {k: v for k, v in component.items() if k != "platform"}
                whole = {**entity, "device": top["device"], "origin": top["origin"]}
                problems |= {
                    f"{topic} {platform}: {x}" for x in entity_problems(whole, platform, schema)
                }
    assert sorted(problems) == []


def test_device_mode_is_announced_as_ignored_before_2024_11() -> None:
    first = min((v for v in RELEASES if RELEASES[v]["device_discovery"]), key=release)
    assert release(first) == DEVICE_DISCOVERY
    warning = device_mode_warning(OLDEST)
    assert warning is not None
    assert str(DEVICE_DISCOVERY) in warning
    assert device_mode_warning(DEVICE_DISCOVERY) is None


def test_newer_device_keys_are_gated_from_the_release_that_accepts_them(
    produced: list[Produced],
) -> None:
    for key, since in DEVICE_KEYS_SINCE.items():
        first = min((v for v in RELEASES if key in RELEASES[v]["device"]), key=release)
        assert release(first) == since, key
    battery = next(p for p in produced if p.serial == "123456789012")
    for oldest in (OLDEST, *DEVICE_KEYS_SINCE.values()):
        configs = entity_configs(
            Topics(), battery.snapshot.gateway, battery.entities, oldest=oldest
        )
        keys = {k for m in configs if m.payload for k in cast(Json, m.payload["device"])}
        assert {k for k, since in DEVICE_KEYS_SINCE.items() if since <= oldest} <= keys
        assert not {k for k, since in DEVICE_KEYS_SINCE.items() if since > oldest} & keys
        for version in (v for v in SUPPORTED if release(v) >= oldest):
            problems = [
                x
                for m in configs
                if m.payload
                for x in entity_problems(m.payload, m.topic.split("/")[1], RELEASES[version])
            ]
            assert problems == [], (oldest, version)
