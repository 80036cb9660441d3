"""Home Assistant MQTT discovery payloads, built from the catalog's descriptions.

The payloads suit every Home Assistant release from `OLDEST` on (docs/ha-compat.md has the
evidence, read from each release's MQTT schemas). Home Assistant rejects a whole entity for
one `device` key it does not know, so device keys newer than the oldest release to support
(`oldest`, the HA_COMPAT setting) are left out; unknown entity-level keys it drops without a
word, so those in `TOLERATED` are sent to every release and used by the ones that know them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from envoy2mqtt import __version__
from envoy2mqtt.catalog.metric import Device, Entity
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.topics import Topics, sanitize
from envoy2mqtt.settings.forms import OLDEST_HA

# a release is read where the setting is; re-exported for the payloads' users (mypy --strict)
from envoy2mqtt.settings.forms import HaRelease as HaRelease  # noqa: PLC0414

Json = dict[str, object]

# no support_url: the package has no public page yet, and a dead link helps no one
ORIGIN: Final[Json] = {"name": "envoy2mqtt", "sw_version": __version__}
# the raw code of a value published in English, as the attribute `code` (the code's own
# topic carries plain text: the template makes it the JSON object HA expects)
CODE_TEMPLATE: Final = '{{ {"code": value} | tojson }}'
MANUFACTURER: Final = "Enphase"


OLDEST: Final = OLDEST_HA  # the oldest release the default payloads suit
NEWEST_CHECKED: Final = HaRelease(2026, 11)  # the newest whose schemas were read
DEVICE_DISCOVERY: Final = HaRelease(2024, 11)  # homeassistant/device/<id>/config from here on
# The device schema allows no key it does not know (the entity is rejected): these only
# from the release that added them.
DEVICE_KEYS_SINCE: Final = {"serial_number": HaRelease(2024, 2), "model_id": HaRelease(2024, 9)}
# Entity keys some supported releases drop unknown, sent to all: the entity id comes from
# `object_id` before 2025.10 and from `default_entity_id` after (both, so no release warns).
TOLERATED: Final = {
    "object_id": "sets the entity id up to 2025.9; dropped from 2026.4",
    "default_entity_id": "sets the entity id from 2025.10; dropped before",
    "options": "the states of an enum sensor, from 2024.9; dropped before",
}
_NOT_SLUG: Final = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """A discovery config: the topic and its JSON payload (empty payload = remove)."""

    topic: str
    payload: Json | None


def gateway_device_id(serial: str) -> str:
    """Stable identifier of the gateway device."""
    return f"envoy2mqtt_{sanitize(serial)}"


def unique_id(serial: str, path: str) -> str:
    """Stable unique id of an entity."""
    return f"envoy2mqtt_{sanitize(serial)}_{sanitize(path.replace('/', '_'))}"


def object_id(serial: str, path: str) -> str:
    """The entity id's object part, `envoy_<serial>_<path>`, as Home Assistant slugifies it."""
    return _NOT_SLUG.sub("_", f"envoy_{serial}_{path}".lower()).strip("_")


def _allowed(key: str, oldest: HaRelease) -> bool:
    return oldest >= DEVICE_KEYS_SINCE.get(key, OLDEST)


def _gateway_device(info: GatewayInfo, name: str | None, oldest: HaRelease) -> Json:
    device: Json = {
        "identifiers": [gateway_device_id(info.serial)],
        "manufacturer": MANUFACTURER,
        "model": info.model,
        "name": name or f"Envoy {info.serial}",
        "sw_version": info.firmware,
    }
    if _allowed("serial_number", oldest):
        device["serial_number"] = info.serial
    if info.part_number:  # model and revision: a hardware version where model_id is unknown
        key = "model_id" if _allowed("model_id", oldest) else "hw_version"
        device[key] = info.part_number
    return device


def _sub_device(info: GatewayInfo, device: Device, oldest: HaRelease) -> Json:
    out: Json = {
        "identifiers": [f"{gateway_device_id(info.serial)}_{device.kind}_{sanitize(device.id)}"],
        "manufacturer": MANUFACTURER,
        "name": device.name,
        "via_device": gateway_device_id(info.serial),
    }
    # a CT's id is its measurement type, not a serial number
    if device.kind != "ct" and _allowed("serial_number", oldest):
        out["serial_number"] = device.id
    if device.model:
        out["model"] = device.model
    if device.sw_version:
        out["sw_version"] = device.sw_version
    return out


def device_json(
    info: GatewayInfo, device: Device | None, name: str | None = None, oldest: HaRelease = OLDEST
) -> Json:
    """The `device` block of an entity: the gateway or one of its devices."""
    if device is None:
        return _gateway_device(info, name, oldest)
    return _sub_device(info, device, oldest)


def device_mode_warning(oldest: HaRelease) -> str | None:
    """What to log when device-based discovery is chosen for releases that ignore it."""
    if oldest >= DEVICE_DISCOVERY:
        return None
    return (
        f"HA_DISCOVERY_MODE=device: Home Assistant before {DEVICE_DISCOVERY} ignores "
        "device-based discovery, no entities appear there; use HA_DISCOVERY_MODE=entity "
        f"unless every Home Assistant on this broker is {DEVICE_DISCOVERY} or newer"
    )


def entity_payload(
    topics: Topics,
    info: GatewayInfo,
    entity: Entity,
    *,
    with_device: bool = True,
    oldest: HaRelease = OLDEST,
) -> Json:
    """The discovery config of one entity (without origin/device when in a device config)."""
    metric = entity.metric
    serial = info.serial
    object_part = object_id(serial, entity.path)
    payload: Json = {
        "name": metric.name,
        # a renamed value's entity keeps the unique id of its old name (its entity id, history)
        "unique_id": unique_id(serial, entity.unique_path),
        "object_id": object_part,
        "default_entity_id": f"{metric.component}.{object_part}",
        "state_topic": topics.state(serial, entity.path),
        "availability": [
            {"topic": topics.bridge_state},
            {"topic": topics.availability(serial)},
        ],
        "availability_mode": "all",
    }
    optional: dict[str, object | None] = {
        "unit_of_measurement": metric.unit,
        "device_class": metric.device_class,
        "state_class": metric.state_class,
        "entity_category": metric.category,
        "icon": metric.icon,
        "suggested_display_precision": metric.precision,
        "payload_on": metric.payload_on,
        "payload_off": metric.payload_off,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    if metric.options:
        payload["options"] = list(metric.options)
    if metric.code is not None:
        parent = entity.path.rpartition("/")[0]
        code_path = f"{parent}/{metric.code}" if parent else metric.code
        payload["json_attributes_topic"] = topics.state(serial, code_path)
        payload["json_attributes_template"] = CODE_TEMPLATE
    if not metric.enabled:
        payload["enabled_by_default"] = False
    if with_device:  # the platform is in the topic: `platform` belongs in `cmps` only
        payload["device"] = device_json(info, entity.device, oldest=oldest)
        payload["origin"] = ORIGIN
    return payload


def entity_configs(
    topics: Topics,
    info: GatewayInfo,
    entities: Iterable[Entity],
    name: str | None = None,
    *,
    oldest: HaRelease = OLDEST,
) -> list[DiscoveryMessage]:
    """Per-entity discovery: one retained config per entity."""
    out = []
    for entity in entities:
        payload = entity_payload(topics, info, entity, oldest=oldest)
        if entity.device is None and name:
            payload["device"] = device_json(info, None, name, oldest)
        topic = topics.entity_config(entity.metric.component, info.serial, entity.unique_path)
        out.append(DiscoveryMessage(topic, payload))
    return out


def device_configs(
    topics: Topics,
    info: GatewayInfo,
    entities: Iterable[Entity],
    name: str | None = None,
    *,
    oldest: HaRelease = OLDEST,
) -> list[DiscoveryMessage]:
    """Device-based discovery (HA 2024.11+): one config per device, entities in `cmps`."""
    groups: dict[str, tuple[Device | None, Json]] = {}
    for entity in entities:
        key = gateway_device_id(info.serial)
        if entity.device is not None:
            key = f"{key}_{entity.device.kind}_{sanitize(entity.device.id)}"
        _, components = groups.setdefault(key, (entity.device, {}))
        component = entity_payload(topics, info, entity, with_device=False, oldest=oldest)
        component["platform"] = entity.metric.component
        components[unique_id(info.serial, entity.unique_path)] = component
    out = []
    for device_id, (device, components) in groups.items():
        payload: Json = {
            "device": device_json(info, device, name, oldest),
            "origin": ORIGIN,
            "cmps": components,
        }
        out.append(DiscoveryMessage(topics.device_config(device_id), payload))
    return out
