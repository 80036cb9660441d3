"""The ghost sweep: discovery configs of ours that nobody announces any more are removed.

Retained configs arrive after each (re)connect; every few seconds the sweep compares them
with what each gateway (and load shedding) announces now (`mqtt.ghosts` decides what is
ours and what is stale).

A gateway's own announcer must know them before it first publishes: after a switch of
HA_DISCOVERY_MODE the same unique ids stand under other topics, and Home Assistant refuses a
new config whose unique id is still taken (then drops the old one: no entity left). So each
gateway's discovery is held from its connect until the retained configs have been read (a
`sync` marker published after subscribing comes back after all of them, or `SYNC_BOUND`
passes), and its announcer is handed the ones of its gateway: it removes them first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from typing import Final, Protocol

from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.mqtt.announce import Announcer
from envoy2mqtt.mqtt.ghosts import Ghosts
from envoy2mqtt.mqtt.topics import sanitize
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.polling.events import GatewayConnected, MqttConnected

log = logging.getLogger(__name__)

EVERY: Final = 5.0
SYNC_BOUND: Final = 5.0  # s after connecting: a marker that never came back holds no longer


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
        self.read = False  # every retained config of the first connect has arrived
        self.sync_topic = f"{hub.topics.base}/bridge/sync"
        self._nonce = secrets.token_hex(8)

    def start(self) -> None:
        """Listen to every discovery config; hold each gateway's discovery until they are read;
        sweep every few seconds."""
        for config_filter in self.hub.topics.config_filters:
            self.hub.link.subscribe(config_filter, self._on_config)
        self.hub.link.subscribe(self.sync_topic, self._on_sync)
        self.on(self.hub.events, MqttConnected, self._connected)
        self.on_gateways(GatewayConnected, self._gateway)
        self.spawn(self._sweeping(), "ghosts")

    async def _on_config(self, topic: str, payload: bytes) -> None:
        self.ghosts.seen(topic, payload)

    def _connected(self, _event: MqttConnected) -> None:
        if not self.read:
            self.hub.link.publish(self.sync_topic, self._nonce, qos=1)
            self.spawn(self._bound(), "ghosts sync")

    async def _on_sync(self, _topic: str, payload: bytes) -> None:
        if payload.decode(errors="replace") == self._nonce:
            self.settle()

    async def _bound(self) -> None:
        await asyncio.sleep(SYNC_BOUND)
        if not self.read:
            log.warning("the retained discovery configs were not read back in %.0f s", SYNC_BOUND)
            self.settle()

    def settle(self) -> None:
        """The retained configs are read: every gateway's announcer takes over its own."""
        if self.read:
            return
        self.read = True
        for bridge in self.hub.bridges:
            self._hand_over(bridge)

    def _gateway(self, bridge: Bridge, _event: GatewayConnected) -> None:
        """A gateway connected (before its first snapshot): its announcer waits, or takes over
        its configs on the broker now."""
        if self.read:
            self._hand_over(bridge)
        elif bridge.publisher is not None:
            bridge.publisher.announcer.hold()

    def _hand_over(self, bridge: Bridge) -> None:
        publisher = bridge.publisher
        if publisher is None:
            return
        level = sanitize(publisher.info.serial)
        left = [topic for topic, owner in self.ghosts.found.items() if owner == level]
        # with discovery off nothing is announced: the sweep removes them all instead
        publisher.announcer.take_over(
            left if publisher.options.ha_discovery else [], publisher.info
        )

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(EVERY)
            self.sweep()

    def sweep(self) -> list[str]:
        """One sweep: the stale configs of ours, removed; returns their topics."""
        announced: dict[str, set[str]] = {}
        for bridge in self.hub.bridges:
            publisher = bridge.publisher
            # removed by its announcer already: removing it again would queue the removal
            # anew, behind the configs that take its unique ids over
            for topic in publisher.announcer.withdrawn if publisher is not None else ():
                self.ghosts.found.pop(topic, None)
            if publisher is not None and _announcing(publisher.announcer):
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


def _announcing(announcer: Announcer) -> bool:
    """It has announced its entities (a held one has not yet)."""
    return bool(announcer.entities) and not announcer.waiting
