"""Home Assistant MQTT discovery payloads, built from the catalog's descriptions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from envoy2mqtt import __version__
from envoy2mqtt.catalog.metric import Device, Entity
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.topics import Topics, sanitize

Json = dict[str, object]

ORIGIN: Final[Json] = {
    "name": "envoy2mqtt",
    "sw_version": __version__,
    "support_url": "https://pypi.org/project/envoy2mqtt/",
}
MANUFACTURER: Final = "Enphase"


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


def _gateway_device(info: GatewayInfo, name: str | None) -> Json:
    device: Json = {
        "identifiers": [gateway_device_id(info.serial)],
        "manufacturer": MANUFACTURER,
        "model": info.model,
        "name": name or f"Envoy {info.serial}",
        "serial_number": info.serial,
        "sw_version": info.firmware,
    }
    if info.part_number:
        device["model_id"] = info.part_number
    return device


def _sub_device(info: GatewayInfo, device: Device) -> Json:
    out: Json = {
        "identifiers": [f"{gateway_device_id(info.serial)}_{device.kind}_{sanitize(device.id)}"],
        "manufacturer": MANUFACTURER,
        "name": device.name,
        "via_device": gateway_device_id(info.serial),
    }
    if device.kind != "ct":  # a CT's id is its measurement type, not a serial number
        out["serial_number"] = device.id
    if device.model:
        out["model"] = device.model
    if device.sw_version:
        out["sw_version"] = device.sw_version
    return out


def device_json(info: GatewayInfo, device: Device | None, name: str | None = None) -> Json:
    """The `device` block of an entity: the gateway or one of its devices."""
    return _gateway_device(info, name) if device is None else _sub_device(info, device)


def entity_payload(
    topics: Topics, info: GatewayInfo, entity: Entity, *, with_device: bool = True
) -> Json:
    """The discovery config of one entity (without origin/device when in a device config)."""
    metric = entity.metric
    serial = info.serial
    payload: Json = {
        "name": metric.name,
        "unique_id": unique_id(serial, entity.path),
        "default_entity_id": (
            f"{metric.component}.envoy_{sanitize(serial)}_{sanitize(entity.path.replace('/', '_'))}"
        ).lower(),
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
    if not metric.enabled:
        payload["enabled_by_default"] = False
    if metric.component != "sensor":
        payload["platform"] = metric.component
    if with_device:
        payload["device"] = device_json(info, entity.device)
        payload["origin"] = ORIGIN
    return payload


def entity_configs(
    topics: Topics, info: GatewayInfo, entities: Iterable[Entity], name: str | None = None
) -> list[DiscoveryMessage]:
    """Per-entity discovery: one retained config per entity."""
    out = []
    for entity in entities:
        payload = entity_payload(topics, info, entity)
        if entity.device is None and name:
            payload["device"] = device_json(info, None, name)
        topic = topics.entity_config(entity.metric.component, info.serial, entity.path)
        out.append(DiscoveryMessage(topic, payload))
    return out


def device_configs(
    topics: Topics, info: GatewayInfo, entities: Iterable[Entity], name: str | None = None
) -> list[DiscoveryMessage]:
    """Device-based discovery (HA 2024.11+): one config per device, entities in `cmps`."""
    groups: dict[str, tuple[Device | None, Json]] = {}
    for entity in entities:
        key = gateway_device_id(info.serial)
        if entity.device is not None:
            key = f"{key}_{entity.device.kind}_{sanitize(entity.device.id)}"
        _, components = groups.setdefault(key, (entity.device, {}))
        component = entity_payload(topics, info, entity, with_device=False)
        component["platform"] = entity.metric.component
        components[unique_id(info.serial, entity.path)] = component
    out = []
    for device_id, (device, components) in groups.items():
        payload: Json = {
            "device": device_json(info, device, name),
            "origin": ORIGIN,
            "cmps": components,
        }
        out.append(DiscoveryMessage(topics.device_config(device_id), payload))
    return out


def component_of(topic: str) -> str | None:
    """The component of a per-entity config topic, or None for device configs."""
    parts = topic.split("/")
    return parts[-4] if len(parts) >= 4 and parts[-4] != "device" else None
