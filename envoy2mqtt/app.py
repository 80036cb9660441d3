"""Wires settings, the MQTT link and one bridge per gateway under one TaskGroup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from envoy2mqtt import __version__
from envoy2mqtt.auth.tokens import token_source
from envoy2mqtt.bridge import Bridge
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.mqtt.link import MqttLink, MqttOptions
from envoy2mqtt.mqtt.publisher import PublishOptions
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.settings import ConfigError, Settings

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
HEALTH_EVERY = 10.0


class Stopped(Exception):
    """Raised inside the TaskGroup to end it after a clean goodbye."""


def mqtt_options(settings: Settings, topics: Topics) -> MqttOptions:
    """The link's options from the settings."""
    if not settings.mqtt_host:
        raise ConfigError("MQTT_HOST: missing (the broker's host name or address)")
    return MqttOptions(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
        client_id=settings.mqtt_client_id,
        keepalive=settings.mqtt_keepalive,
        tls=settings.mqtt_tls or settings.mqtt_ca_file is not None,
        ca_file=settings.mqtt_ca_file,
        cert_file=settings.mqtt_cert_file,
        key_file=settings.mqtt_key_file,
        tls_insecure=settings.mqtt_tls_insecure,
        event_buffer=settings.mqtt_event_buffer,
        will_topic=topics.bridge_state,
    )


def publish_options(settings: Settings) -> PublishOptions:
    """Publishing behaviour from the settings."""
    return PublishOptions(
        discovery=settings.ha_discovery,
        discovery_mode=settings.ha_discovery_mode,
        heartbeat=settings.heartbeat_interval,
        grid_debounce=settings.grid_debounce,
        soc_thresholds=tuple(settings.soc_thresholds),
        summary_interval=settings.summary_interval,
        clamp_negative_production=settings.clamp_negative_production,
    )


class App:
    """The running service: one MQTT link, one bridge per gateway."""

    def __init__(self, settings: Settings) -> None:
        """Build everything from the settings (raises ConfigError on bad ones)."""
        self.settings = settings
        self.topics = Topics(
            settings.mqtt_base_topic, settings.ha_discovery_prefix, settings.ha_status_topic
        )
        gateways = settings.gateway_list()
        self.link = MqttLink(mqtt_options(settings, self.topics), on_connect=self._on_connect)
        options = publish_options(settings)
        self.bridges = [
            Bridge(
                gateway,
                self.link,
                self.topics,
                options,
                tokens=token_source(settings, gateway),
                request_timeout=settings.request_timeout,
                state_dir=settings.state_dir,
                pins=CertificatePins(settings.state_dir)
                if settings.pin_gateway_certificate
                else None,
            )
            for gateway in gateways
        ]
        for bridge in self.bridges:
            bridge.on_connected = self._gateway_connected
        self.link.subscribe(settings.ha_status_topic, self._on_ha_status)
        self.started = datetime.now(UTC)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or SIGTERM/SIGINT), then say goodbye within seconds."""
        stop = stop or asyncio.Event()
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.link.run(), name="mqtt")
                for bridge in self.bridges:
                    tasks.create_task(bridge.run(), name=f"bridge {bridge.settings.host}")
                tasks.create_task(self._health(), name="health")
                await stop.wait()
                await self._goodbye()
                raise Stopped  # noqa: TRY301 - ends the TaskGroup, cancelling every task
        except* Stopped:
            pass

    async def _goodbye(self) -> None:
        for bridge in self.bridges:
            bridge.save_state()
            if bridge.publisher is not None:
                bridge.publisher.set_available(False)
        await self.link.drain(timeout=2.0)
        await self.link.close(timeout=2.0)
        log.info("stopped")

    async def _on_connect(self) -> None:
        self.link.publish(self.topics.bridge_info, self.info_json(), retain=True, qos=1)
        for bridge in self.bridges:
            if bridge.publisher is not None:
                bridge.publisher.republish()

    def _gateway_connected(self, _info: object) -> None:
        self.link.publish(self.topics.bridge_info, self.info_json(), retain=True, qos=1)

    async def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            log.info("Home Assistant came online: re-publishing discovery and states")
            for bridge in self.bridges:
                if bridge.publisher is not None:
                    bridge.publisher.republish()

    def info_json(self) -> str:
        """`bridge/info`: version and gateways (never credentials)."""
        gateways = []
        for bridge in self.bridges:
            entry: dict[str, object] = {"host": bridge.settings.host, "name": bridge.settings.name}
            if bridge.publisher is not None:
                info = bridge.publisher.info
                entry.update(serial=info.serial, firmware=info.firmware, model=info.model)
            gateways.append(entry)
        return json.dumps(
            {
                "version": __version__,
                "started": self.started.isoformat(timespec="seconds"),
                "base_topic": self.topics.base,
                "gateways": gateways,
            },
            separators=(",", ":"),
        )

    async def _health(self) -> None:
        path = self.settings.state_dir / HEALTH_FILE
        while True:
            body = {
                "pid": os.getpid(),
                "written": time.time(),
                "last_publish": self.link.stats.last_publish or None,
                "connected": self.link.connected.is_set(),
                "gateways_online": sum(
                    1 for b in self.bridges if b.publisher is not None and b.publisher.available
                ),
            }
            with suppress(OSError):
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(body), encoding="utf-8")
                tmp.replace(path)
            await asyncio.sleep(HEALTH_EVERY)


def check_health(state_dir: Path, max_age: float) -> tuple[bool, str]:
    """Whether the bridge published within `max_age` seconds (for Docker's HEALTHCHECK)."""
    try:
        body = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, f"no health file in {state_dir}: is the bridge running?"
    last = body.get("last_publish")
    if not isinstance(last, int | float):
        return False, "the bridge has not published anything yet"
    age = time.time() - last
    if age > max_age:
        return False, f"the bridge last published {age:.0f} s ago (limit {max_age:.0f} s)"
    return True, f"ok: last published {age:.0f} s ago"


def install_signal_handlers(
    stop: asyncio.Event, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """SIGTERM and Ctrl-C set `stop`, so the app says goodbye before exiting."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
