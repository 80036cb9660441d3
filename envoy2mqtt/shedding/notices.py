"""What load shedding tells the world: retained states, `shed` / `restore` events, discovery.

Never a load's command: those are the actor's alone, sent urgently and never retained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from envoy2mqtt.core.events import Event
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.shedding.entities import entity_configs
from envoy2mqtt.shedding.plan import Plan
from envoy2mqtt.shedding.policy import Action, Command, Policy
from envoy2mqtt.shedding.topics import OFF, ON, SHED, SheddingTopics

CONTEXT: Final = ("grid_status", "battery_soc", "backup_runway", "house_load_power")
"""The values a shedding event carries as its context."""


def shed_event(action: Action, plan: Plan, values: Mapping[str, Value], at: datetime) -> Event:
    """The `shed` or `restore` event of an action: the load, its tier, the reason."""
    shed = action.command is Command.SHED
    load = plan.load(action.load)
    extra: dict[str, Value] = {
        "load": action.load,
        "tier": load.rule.tier if load is not None else 0,
        "reason": action.reason.value,
    }
    if plan.dry_run:
        extra["dry_run"] = ON  # nothing was commanded
    context = {key: values[key] for key in CONTEXT if key in values}
    before, after = (ON, SHED) if shed else (SHED, ON)
    return Event(action.command.value, before, after, at, context, extra)


@dataclass(slots=True)
class Notices:
    """Publishes the shedding stage's states, events and Home Assistant entities."""

    link: Link
    topics: Topics
    names: SheddingTopics
    discovery: bool = True
    discovery_topics: frozenset[str] = frozenset()  # the entity configs published

    def retain(self, topic: str, word: str) -> None:
        """One retained plain word."""
        self.link.publish(topic, word, retain=True, qos=1)

    def load(self, policy: Policy, name: str) -> None:
        """A load's retained state and reason, as the policy has it."""
        state = policy.states[name]
        self.retain(self.names.state(name), SHED if state.shed else ON)
        self.retain(self.names.reason(name), state.reason.value)

    def everything(self, policy: Policy, plan: Plan) -> None:
        """The switch, the dry-run flag and every load's state."""
        self.retain(self.names.armed, ON if policy.armed else OFF)
        self.retain(self.names.dry_run, ON if plan.dry_run else OFF)
        for name in policy.states:
            self.load(policy, name)

    def event(self, serial: str, event: Event) -> None:
        """An event on the gateway's event topic, with the bridge's other events."""
        self.link.publish_event(self.topics.event(serial), event.to_json(serial))

    def announce(self, publisher: GatewayPublisher, plan: Plan) -> None:
        """The entities' discovery configs, on the gateway's device (unless discovery is off)."""
        if not self.discovery:
            return
        configs = entity_configs(
            self.topics, self.names, publisher.info, plan.loads, publisher.name
        )
        for config in configs:
            self.link.publish(config.topic, json.dumps(config.payload), retain=True, qos=1)
        self.discovery_topics = frozenset(config.topic for config in configs)
