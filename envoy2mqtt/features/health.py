"""The health file the running bridge keeps for `envoy2mqtt health` (Docker's HEALTHCHECK)."""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.healthcheck import HEALTH_FILE, HealthFile

EVERY: Final = 10.0
EARLY: Final = 1.0  # seconds between writes until a gateway has been online a while
EARLY_FOR: Final = 30.0


class LinkStats(Protocol):
    """What the health file reports of the MQTT link."""

    last_publish: float


class Health(Extension):
    """Writes the health file from the first second on, then every few seconds."""

    def __init__(self, hub: Hub, stats: LinkStats) -> None:
        """References only; `stats` is the link's (when it last published)."""
        super().__init__(hub)
        self.stats = stats

    def start(self) -> None:
        """Start writing."""
        self.spawn(self._keep(), "health")

    async def _keep(self) -> None:
        settings, hub = self.hub.settings, self.hub
        started = time.time()
        health = HealthFile(settings.state_dir / HEALTH_FILE, started)
        while True:
            online = sum(
                1 for b in hub.bridges if b.publisher is not None and b.publisher.available
            )
            health.write(
                last_publish=self.stats.last_publish,
                connected=hub.link.connected.is_set(),
                online=online,
            )
            early = health.last_online is None or time.time() - started < EARLY_FOR
            await asyncio.sleep(EARLY if early else EVERY)
