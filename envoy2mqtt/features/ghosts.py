"""The ghost sweep: discovery configs of ours that nobody announces any more are removed.

Retained configs arrive after each (re)connect; every few seconds the sweep compares them
with what each gateway (and load shedding) announces now (`mqtt.ghosts` decides what is
ours and what is stale).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final, Protocol

from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.mqtt.ghosts import Ghosts
from envoy2mqtt.mqtt.topics import sanitize

log = logging.getLogger(__name__)

EVERY: Final = 5.0


class Announcing(Protocol):
    """A feature with discovery configs of its own, under its own topic level."""

    @property
    def level(self) -> str:
        """The level its configs are filed under (the ghosts' owner)."""
        ...

    @property
    def discovery_topics(self) -> frozenset[str]:
        """The configs it announces now."""
        ...


class GhostSweep(Extension):
    """Removes the bridge's own stale discovery configs, never anyone else's."""

    def __init__(self, hub: Hub, features: Sequence[Announcing] = ()) -> None:
        """References only; `features` announce configs besides the gateways."""
        super().__init__(hub)
        self.features = features
        self.ghosts = Ghosts(hub.topics.base)

    def start(self) -> None:
        """Listen to every discovery config; sweep every few seconds."""
        for config_filter in self.hub.topics.config_filters:
            self.hub.link.subscribe(config_filter, self._on_config)
        self.spawn(self._sweeping(), "ghosts")

    async def _on_config(self, topic: str, payload: bytes) -> None:
        self.ghosts.seen(topic, payload)

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(EVERY)
            self.sweep()

    def sweep(self) -> list[str]:
        """One sweep: the stale configs of ours, removed; returns their topics."""
        announced: dict[str, set[str]] = {}
        for bridge in self.hub.bridges:
            publisher = bridge.publisher
            if publisher is not None and publisher.announcer.entities:
                announced[sanitize(publisher.info.serial)] = publisher.discovery_topics
        for feature in self.features:
            if feature.discovery_topics:
                announced[feature.level] = set(feature.discovery_topics)
        known = all(bridge.publisher is not None for bridge in self.hub.bridges)
        stale = self.ghosts.stale(announced, every_gateway_known=known)
        for topic in stale:
            log.info("removing a discovery config nobody publishes any more: %s", topic)
            self.hub.link.publish(topic, b"", retain=True, qos=1)
            self.ghosts.found.pop(topic, None)
        return stale
