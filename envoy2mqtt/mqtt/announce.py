"""Home Assistant discovery for one gateway: what is announced, and what to take back.

One place publishes a gateway's configs (its sensors' and, with CONTROLS on, its controls')
and removes, first, those of its own it published before and no longer wants. Home Assistant
refuses a config whose unique id another config still holds, so the configs an earlier run
left for the gateway (another HA_DISCOVERY_MODE files the same unique ids under other topics)
count as published before: the ghost sweep (`features.ghosts`), which reads them back, holds
the announcer until it has and then hands them over (`take_over`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from envoy2mqtt.catalog.metric import Entity
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.discovery import (
    OLDEST,
    DiscoveryMessage,
    HaRelease,
    device_configs,
    entity_configs,
)
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.topics import Topics


@dataclass(slots=True)
class Announcer:
    """Publishes discovery configs when the set of entities changes, removing stale ones."""

    link: Link
    topics: Topics
    mode: str = "entity"  # or "device"
    name: str | None = None
    oldest: HaRelease = OLDEST  # HA_COMPAT: device keys newer than this are left out
    entities: dict[str, Entity] = field(default_factory=dict)
    controls: tuple[DiscoveryMessage, ...] = ()  # the control entities' (CONTROLS on)
    generation: int = 0  # counts changes of `entities`
    waiting: bool = False  # held until the configs an earlier run left are known
    withdrawn: set[str] = field(default_factory=set)  # configs it removed (not published since)
    _published: set[str] = field(default_factory=set)
    _due: bool = False  # asked to announce while held

    def hold(self) -> None:
        """Publish nothing until `take_over` says what an earlier run left on the broker."""
        self.waiting = True

    def take_over(self, left: Iterable[str], info: GatewayInfo) -> int:
        """The configs of this gateway on the broker now (an earlier run's among them): each
        one not wanted is removed before anything is published. Announces what waited."""
        self._published |= set(left)
        due, self._due, self.waiting = self._due, False, False
        return self.announce(info) if due else 0

    def follow(self, entities: dict[str, Entity]) -> None:
        """The gateway's entities changed (announce them with `announce`)."""
        self.entities = entities
        self.generation += 1

    def announce(self, info: GatewayInfo) -> int:
        """Remove the configs published before that are no longer wanted, then publish every
        wanted one (in that order: Home Assistant refuses a unique id still in use)."""
        if self.waiting:
            self._due = True
            return 0
        messages = [*self._messages(info, self.entities.values()), *self.controls]
        wanted = {m.topic for m in messages}
        stale = sorted(self._published - wanted)
        for topic in stale:
            self.link.publish(topic, b"", retain=True, qos=1)
        for message in messages:
            self.link.publish(message.topic, json.dumps(message.payload), retain=True, qos=1)
        self._published = wanted
        self.withdrawn = (self.withdrawn | set(stale)) - wanted
        return len(stale) + len(messages)

    @property
    def published(self) -> set[str]:
        """Discovery config topics currently published."""
        return set(self._published)

    def _messages(self, info: GatewayInfo, entities: Iterable[Entity]) -> list[DiscoveryMessage]:
        if self.mode == "device":
            return device_configs(self.topics, info, entities, self.name, oldest=self.oldest)
        return entity_configs(self.topics, info, entities, self.name, oldest=self.oldest)
