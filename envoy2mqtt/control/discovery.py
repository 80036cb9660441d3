"""Home Assistant entities for the controls: select, number and switch, through discovery,
and a diagnostic sensor of the gateway's answers.

Pure. Each control entity shows the state its existing sensor publishes (the same retained
topic) and belongs to that sensor's device; it commands `.../set/<control>`. The answers
sensor shows the status of the latest answer on `<base>/<serial>/response` (`pending` while a
write is on its way, then `ok`, `ignored` or `error`) with the answer's fields as attributes.
Always one config per entity (any HA_DISCOVERY_MODE: every release reads those). Published
only with CONTROLS on; with it off the publisher announces none, so the ghost sweep removes
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from envoy2mqtt.catalog.metric import Entity
from envoy2mqtt.control.commands import SET, Choice, Whole
from envoy2mqtt.control.controls import Offered
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.discovery import (
    ORIGIN,
    DiscoveryMessage,
    Json,
    device_json,
    object_id,
    unique_id,
)
from envoy2mqtt.mqtt.topics import Topics

RESPONSE: Final = "response"  # the answers' topic below the gateway; the sensor is named after it
STATUS: Final = "{{ value_json.status }}"  # pending, ok, ignored or error: short, one word


def command_topic(topics: Topics, serial: str, offered: Offered) -> str:
    """`<base>/<serial>/set/<control>`, or `<base>/<serial>/<device>/<id>/set/<control>`."""
    device, _, key = offered.path.rpartition("/")
    return "/".join(part for part in (topics.gateway(serial), device, SET, key) if part)


def response_topic(topics: Topics, serial: str) -> str:
    """`<base>/<serial>/response`: what became of each command."""
    return f"{topics.gateway(serial)}/{RESPONSE}"


def response_config(topics: Topics, info: GatewayInfo, name: str | None = None) -> DiscoveryMessage:
    """The gateway's diagnostic sensor "Last command": the latest answer's status, and its
    fields (control, requested, actual, via, within, message, transaction, at) as attributes."""
    serial = info.serial
    object_part = object_id(serial, RESPONSE)
    topic = response_topic(topics, serial)
    payload: Json = {
        "name": "Last command",
        "unique_id": unique_id(serial, RESPONSE),
        "object_id": object_part,
        "default_entity_id": f"sensor.{object_part}",
        "state_topic": topic,
        "value_template": STATUS,
        "json_attributes_topic": topic,
        # the bridge answers with the gateway offline too ("the gateway is not connected")
        "availability": [{"topic": topics.bridge_state}],
        "qos": 1,  # as answers are published: a `pending` is not lost
        "entity_category": "diagnostic",
        "icon": "mdi:message-reply-text-outline",
        "device": device_json(info, None, name),
        "origin": ORIGIN,
    }
    return DiscoveryMessage(topics.entity_config("sensor", serial, RESPONSE), payload)


def control_payload(
    topics: Topics, info: GatewayInfo, offered: Offered, entity: Entity, name: str | None
) -> Json:
    """The discovery config of one control, on the device of its state's entity."""
    control, serial = offered.control, info.serial
    object_part = object_id(serial, offered.path)
    payload: Json = {
        "name": control.name,
        # a renamed control's entity keeps the unique id of its old name
        "unique_id": unique_id(serial, f"control/{offered.unique_path}"),
        "object_id": object_part,
        "default_entity_id": f"{control.component}.{object_part}",
        "command_topic": command_topic(topics, serial, offered),
        "state_topic": topics.state(serial, offered.state),
        "availability": [{"topic": topics.bridge_state}, {"topic": topics.availability(serial)}],
        "availability_mode": "all",
        "qos": 1,
        "retain": False,  # a retained command would replay at every restart (and is ignored)
        "device": device_json(info, entity.device, name if entity.device is None else None),
        "origin": ORIGIN,
    }
    kind = control.kind
    if isinstance(kind, Choice):
        payload["options"] = list(kind.options)
    elif isinstance(kind, Whole):
        payload.update(min=kind.low, max=kind.high, step=1, unit_of_measurement=kind.unit)
        payload["mode"] = "box"
    else:
        (on, off), (state_on, state_off) = kind.words, control.states
        payload.update(payload_on=on, payload_off=off, state_on=state_on, state_off=state_off)
    if control.category:
        payload["entity_category"] = control.category
    if control.icon:
        payload["icon"] = control.icon
    return payload


def control_configs(
    topics: Topics,
    info: GatewayInfo,
    offered: Iterable[Offered],
    entities: Mapping[str, Entity],
    name: str | None = None,
) -> list[DiscoveryMessage]:
    """One config per offered control whose state is published (`entities`: the sensors), and
    the answers sensor."""
    out = []
    for control in sorted(offered, key=lambda o: o.path):
        entity = entities.get(control.state)
        if entity is None:
            continue  # nothing shows its state yet
        topic = topics.entity_config(
            control.control.component, info.serial, f"control/{control.unique_path}"
        )
        out.append(DiscoveryMessage(topic, control_payload(topics, info, control, entity, name)))
    return [*out, response_config(topics, info, name)]
