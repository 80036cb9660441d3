"""`<base>/bridge/info`: the bridge's version and its gateways, retained (never credentials)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from envoy2mqtt import __version__
from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.polling.events import BatteryPathChosen, GatewayConnected, MqttConnected


class BridgeInfo(Extension):
    """Publishes `bridge/info` on every broker connect and whenever a gateway connects."""

    def __init__(self, hub: Hub, *, started: datetime | None = None) -> None:
        """References only."""
        super().__init__(hub)
        self.started = started or datetime.now(UTC)
        self.battery_paths: dict[Bridge, str] = {}  # as the controls feature chose them

    def start(self) -> None:
        """Follow the broker and the gateways."""
        self.on(self.hub.events, MqttConnected, lambda _: self.publish())
        self.on_gateways(GatewayConnected, lambda _bridge, _event: self.publish())
        self.on_gateways(BatteryPathChosen, self._battery_path)

    def _battery_path(self, bridge: Bridge, chosen: BatteryPathChosen) -> None:
        self.battery_paths[bridge] = chosen.path
        self.publish()

    def publish(self) -> None:
        """Queue the current info, retained."""
        self.hub.link.publish(self.hub.topics.bridge_info, self.json(), retain=True, qos=1)

    def json(self) -> str:
        """The info document."""
        return json.dumps(
            {
                "version": __version__,
                "started": self.started.isoformat(timespec="seconds"),
                "base_topic": self.hub.topics.base,
                "gateways": [self._gateway(bridge) for bridge in self.hub.bridges],
            },
            separators=(",", ":"),
        )

    def _gateway(self, bridge: Bridge) -> dict[str, object]:
        entry: dict[str, object] = {"host": bridge.settings.host, "name": bridge.settings.name}
        if bridge.publisher is not None:
            info = bridge.publisher.info
            entry.update(serial=info.serial, firmware=info.firmware, model=info.model)
        settings = self.hub.settings
        if settings.controls != "none":
            # how battery settings are written: local, enlighten, or auto until learnt
            path = self.battery_paths.get(bridge, settings.battery_control_path)
            entry["battery_control_path"] = path
        return entry
