"""One gateway's bridge: connect, run its lanes, and start again when the gateway fails.

It owns the gateway's event stream: `GatewayConnected` once its lanes are ready, every
`SnapshotSettled` (from the lanes), `GatewayDisconnected` when the connection ends.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Final

from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.core.stream import EventStream
from envoy2mqtt.gateway.client import GatewayClient, TokenSource
from envoy2mqtt.gateway.errors import CertificateChanged, GatewayAuthError, GatewayError
from envoy2mqtt.gateway.finder import Locator, until_moved
from envoy2mqtt.gateway.gate import EndpointClass
from envoy2mqtt.gateway.pace import Pace
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.mqtt.publisher import GatewayPublisher, Link, PublishOptions
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.polling.availability import Availability
from envoy2mqtt.polling.energy import BatteryEnergy
from envoy2mqtt.polling.events import GatewayConnected, GatewayDisconnected
from envoy2mqtt.polling.lanes import Lanes
from envoy2mqtt.settings import GatewaySettings

log = logging.getLogger(__name__)

RECONNECT_MIN: Final = 2.0
RECONNECT_MAX: Final = 300.0


class Bridge:
    """Reads one gateway politely and keeps its MQTT topics current."""

    def __init__(
        self,
        gateway: GatewaySettings,
        link: Link,
        topics: Topics,
        options: PublishOptions,
        *,
        tokens: TokenSource | None = None,
        request_timeout: float = 10.0,
        slow_timeout: float = 120.0,
        clock: Clock | None = None,
        state_dir: Path | None = None,
        pins: CertificatePins | None = None,
        locator: Locator | None = None,
    ) -> None:
        """Prepare; `run()` connects and polls until cancelled."""
        self.locator = locator  # ENVOY_HOST=auto: the gateway's address, found by mDNS
        self.settings = gateway
        self.link, self.topics, self.options = link, topics, options
        self.tokens, self.pins, self.request_timeout = tokens, pins, request_timeout
        self.slow_timeout = slow_timeout
        self.clock = clock or Clock()
        self.pace = Pace()
        self.health = Availability(gateway.host)
        self.energy = BatteryEnergy(state_dir)
        self.publisher: GatewayPublisher | None = None
        self.events = EventStream(gateway.host)

    @property
    def serial(self) -> str | None:
        """The gateway's serial once known."""
        return self.publisher.info.serial if self.publisher else self.settings.serial

    async def run(self) -> None:
        """Connect and poll; on failure, back off (capped, jittered) and start again."""
        backoff = Backoff(first=RECONNECT_MIN, cap=RECONNECT_MAX)
        while True:
            try:
                await self._locate()
                async with self._client() as client:
                    info = await client.open()  # /info and authentication: seconds
                    log.info(
                        "gateway %s (%s, firmware %s) connected; finding out what it has",
                        info.serial,
                        self.settings.host,
                        info.firmware,
                    )
                    backoff.reset()
                    lanes = self._lanes(client, info)
                    self.events.emit(GatewayConnected(info, self.settings, lanes))
                    try:
                        polling = lanes.run(info)
                        moved = await until_moved(polling, self.locator, self.settings.host)
                    finally:
                        self.events.emit(GatewayDisconnected(info.serial))
                    if moved is not None:
                        log.info("gateway %s moved to %s; reconnecting", info.serial, moved)
                        continue
            except GatewayError as err:
                self.health.mark(ok=False, err=err, force=True)
                refused = isinstance(err, GatewayAuthError | CertificateChanged)
                wait = backoff.failed()
                log.log(
                    logging.ERROR if refused else logging.WARNING,
                    "gateway %s: %s; retrying in %.0f s",
                    self.settings.host,
                    err,
                    wait,
                )
                await self.clock.sleep(wait)
                continue
            await self.clock.sleep(backoff.failed())

    async def _locate(self) -> None:
        """Found by mDNS: connect to where the gateway is now (same serial, same topics)."""
        if self.locator is not None:
            host = await self.locator.locate()
            self.settings = self.settings.model_copy(update={"host": host})
            self.health = replace(self.health, host=host)

    def _client(self) -> GatewayClient:
        password = self.settings.password
        return GatewayClient(
            self.settings.host,
            username=self.settings.username,
            password=password.get_secret_value() if password else None,
            tokens=self.tokens,
            timeout=self.request_timeout,
            slow_timeout=self.slow_timeout,
            pins=self.pins,
            on_answer=self._answered,
        )

    def _answered(self, took: float, kind: EndpointClass) -> None:
        self.pace.answered(took, kind)

    def _lanes(self, client: GatewayClient, info: GatewayInfo) -> Lanes:
        if self.publisher is None or self.publisher.info.serial != info.serial:
            self.publisher = GatewayPublisher(
                self.link, self.topics, info, self.options, name=self.settings.name
            )
            self.health = Availability(self.settings.host, self.publisher)
        self.energy.start(info.serial)
        return Lanes(
            client,
            self.publisher,
            self.health,
            cadence=self.settings.cadence,
            pace=self.pace,
            clock=self.clock,
            energy=self.energy,
            events=self.events,
            tokens=self.tokens,
        )

    def save_state(self) -> None:
        """Persist the battery energy counters (on the way out)."""
        self.energy.save(self.clock.monotonic())
