"""Topic names: the MQTT contract, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from envoy2mqtt.core.naming import sanitize

__all__ = ["OFFLINE", "ONLINE", "Topics", "sanitize"]

ONLINE: Final = "online"  # availability payloads, of the bridge and of each gateway
OFFLINE: Final = "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic the bridge publishes or listens to."""

    base: str = "envoy2mqtt"
    discovery_prefix: str = "homeassistant"

    @property
    def bridge_state(self) -> str:
        """`online` / `offline` of the bridge process; `offline` is the last will."""
        return f"{self.base}/bridge/state"

    @property
    def bridge_info(self) -> str:
        """JSON describing the bridge and its gateways."""
        return f"{self.base}/bridge/info"

    def gateway(self, serial: str) -> str:
        """Root topic of one gateway."""
        return f"{self.base}/{sanitize(serial)}"

    def availability(self, serial: str) -> str:
        """`online` / `offline`: whether the gateway can be read."""
        return f"{self.gateway(serial)}/availability"

    def state(self, serial: str, path: str) -> str:
        """A plain value, e.g. `<base>/<serial>/production_power`."""
        return f"{self.gateway(serial)}/{path}"

    def event(self, serial: str) -> str:
        """JSON events (grid and battery transitions), QoS 1, not retained."""
        return f"{self.gateway(serial)}/event"

    def summary(self, serial: str) -> str:
        """A compact JSON summary for small displays (under 256 bytes per packet)."""
        return f"{self.gateway(serial)}/summary"

    def entity_config(self, component: str, serial: str, path: str) -> str:
        """Per-entity Home Assistant discovery config topic."""
        object_id = sanitize(path.replace("/", "_"))
        return f"{self.discovery_prefix}/{component}/{sanitize(serial)}/{object_id}/config"

    @property
    def config_filters(self) -> tuple[str, str]:
        """Subscriptions that see every discovery config: per entity, and per device."""
        return (f"{self.discovery_prefix}/+/+/+/config", f"{self.discovery_prefix}/device/+/config")

    def device_config(self, device_id: str) -> str:
        """Device-based Home Assistant discovery config topic (HA 2024.11+)."""
        return f"{self.discovery_prefix}/device/{sanitize(device_id)}/config"
