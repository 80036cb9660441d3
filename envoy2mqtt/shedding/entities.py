"""Home Assistant entities of load shedding: the arm switch and a sensor per load.

Built with the discovery module's own `entity_payload`, so they carry the same unique ids,
device and origin as every other entity, then pointed at the shedding topics. They belong
to the gateway's device; their availability is the bridge's alone (the switch works while
the gateway cannot be read).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy2mqtt.catalog.metric import Entity, Metric
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.discovery import DiscoveryMessage, device_json, entity_payload
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.shedding.loads import Load
from envoy2mqtt.shedding.topics import LEVEL, OFF, ON, SHED, SheddingTopics


def _nothing(_source: object) -> None:
    return None  # the states come from the shedding actor, not from a snapshot


def _switch() -> Metric[object]:
    return Metric(
        key="armed",
        name="Load shedding",
        read=_nothing,
        component="switch",
        icon="mdi:transmission-tower-off",
        payload_on=ON,
        payload_off=OFF,
        description="Armed: loads are shed when the grid fails (what was shed is restored)",
    )


def _sensor(load: Load) -> Metric[object]:
    return Metric(
        key=load.name,
        name=f"Shedding {load.name}",
        read=_nothing,
        device_class="enum",
        options=(ON, SHED),
        icon="mdi:power-plug-off",
        description=f"Tier {load.rule.tier} load: on, or shed by the bridge",
    )


def entity_configs(
    topics: Topics,
    names: SheddingTopics,
    info: GatewayInfo,
    loads: Sequence[Load],
    name: str | None = None,
) -> list[DiscoveryMessage]:
    """The discovery configs: the arm switch, then one sensor per load."""
    out = []
    wanted = [
        (_switch(), names.armed),
        *((_sensor(load), names.state(load.name)) for load in loads),
    ]
    for metric, state_topic in wanted:
        path = f"{LEVEL}/{metric.key}"
        payload = entity_payload(topics, info, Entity(path, metric))
        payload["state_topic"] = state_topic  # in place: the ghosts read the first topic
        payload["availability"] = [{"topic": topics.bridge_state}]
        payload.pop("availability_mode", None)
        payload["device"] = device_json(info, None, name)
        if metric.component == "switch":
            payload["command_topic"] = names.armed_set
        topic = topics.entity_config(metric.component, info.serial, path)
        out.append(DiscoveryMessage(topic, payload))
    return out
