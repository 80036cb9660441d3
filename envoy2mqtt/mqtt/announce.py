"""Home Assistant discovery for one gateway: what is announced, and what to take back."""

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
    _published: set[str] = field(default_factory=set)

    def announce(self, info: GatewayInfo) -> int:
        """Publish every config, and remove those published before that are no longer wanted."""
        messages = self._messages(info, self.entities.values())
        wanted = {m.topic for m in messages}
        stale = sorted(self._published - wanted)
        for topic in stale:
            self.link.publish(topic, b"", retain=True, qos=1)
        for message in messages:
            self.link.publish(message.topic, json.dumps(message.payload), retain=True, qos=1)
        self._published = wanted
        return len(stale) + len(messages)

    def adopt(self, topics: Iterable[str]) -> None:
        """Treat configs from an earlier run as published, so stale ones get removed."""
        self._published |= set(topics)

    @property
    def published(self) -> set[str]:
        """Discovery config topics currently published."""
        return set(self._published)

    def _messages(self, info: GatewayInfo, entities: Iterable[Entity]) -> list[DiscoveryMessage]:
        if self.mode == "device":
            return device_configs(self.topics, info, entities, self.name, oldest=self.oldest)
        return entity_configs(self.topics, info, entities, self.name, oldest=self.oldest)
