"""What the broker keeps for each gateway, kept right: discovery, availability and states
are published again after a broker reconnect or Home Assistant's birth, and every gateway is
`offline` on the way out."""

from __future__ import annotations

import logging

from envoy2mqtt.features.extension import Extension
from envoy2mqtt.polling.events import HomeAssistantOnline, MqttConnected, ShuttingDown

log = logging.getLogger(__name__)


class RetainedState(Extension):
    """Re-publishes every gateway's retained topics when a consumer needs them again."""

    def start(self) -> None:
        """Follow the broker, Home Assistant and the shutdown."""
        events = self.hub.events
        self.on(events, MqttConnected, lambda _: self.republish())
        self.on(events, HomeAssistantOnline, self._home_assistant)
        self.on(events, ShuttingDown, self._goodbye)

    def republish(self) -> None:
        """Discovery, availability and states of every connected gateway."""
        for bridge in self.hub.bridges:
            if bridge.publisher is not None:
                bridge.publisher.republish()

    def _home_assistant(self, _event: HomeAssistantOnline) -> None:
        log.info("Home Assistant came online: re-publishing discovery and states")
        self.republish()

    def _goodbye(self, _event: ShuttingDown) -> None:
        for bridge in self.hub.bridges:
            if bridge.publisher is not None:
                bridge.publisher.set_available(False)
