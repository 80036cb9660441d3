"""Home Assistant entities for the controls: select, number and switch, through discovery.

Pure. Each control entity shows the state its existing sensor publishes (the same retained
topic) and belongs to that sensor's device; it commands `.../set/<control>`. Always one
config per entity (any HA_DISCOVERY_MODE: every release reads those). Published only with
CONTROLS on; with it off the publisher announces none, so the ghost sweep removes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def command_topic(topics: Topics, serial: str, offered: Offered) -> str:
    """`<base>/<serial>/set/<control>`, or `<base>/<serial>/<device>/<id>/set/<control>`."""
    device, _, key = offered.path.rpartition("/")
    return "/".join(part for part in (topics.gateway(serial), device, SET, key) if part)


def response_topic(topics: Topics, serial: str) -> str:
    """`<base>/<serial>/response`: what became of each command."""
    return f"{topics.gateway(serial)}/response"


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
    """One config per offered control whose state is published (`entities`: the sensors)."""
    out = []
    for control in sorted(offered, key=lambda o: o.path):
        entity = entities.get(control.state)
        if entity is None:
            continue  # nothing shows its state yet
        topic = topics.entity_config(
            control.control.component, info.serial, f"control/{control.unique_path}"
        )
        out.append(DiscoveryMessage(topic, control_payload(topics, info, control, entity, name)))
    return out
