"""Wires settings, the MQTT link and one bridge per gateway under one TaskGroup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from envoy2mqtt import __version__
from envoy2mqtt.auth.factory import token_source
from envoy2mqtt.bridge import Bridge
from envoy2mqtt.control.wiring import wire_controls
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.gateway.finder import GatewayFinder, interfaces_from, is_auto
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.healthcheck import HEALTH_FILE, HealthFile
from envoy2mqtt.mqtt.discovery import HaRelease, device_mode_warning
from envoy2mqtt.mqtt.ghosts import Ghosts
from envoy2mqtt.mqtt.link import MqttLink, MqttOptions
from envoy2mqtt.mqtt.publisher import PublishOptions
from envoy2mqtt.mqtt.topics import Topics, sanitize
from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings
from envoy2mqtt.shedding.actor import Shedder
from envoy2mqtt.shedding.loads import read_plan
from envoy2mqtt.shedding.topics import LEVEL as SHEDDING

log = logging.getLogger(__name__)

HEALTH_EVERY = 10.0
GHOSTS_EVERY = 5.0  # retained configs arrive after each (re)connect; sweep a little later


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
        state_intervals={
            "energy": settings.state_interval_energy,
            "power": settings.state_interval_power,
            "measurement": settings.state_interval_measurement,
        },
        power_jump=settings.state_power_jump,
        ha_compat=HaRelease.parse(settings.ha_compat),
        battery_dwell=settings.battery_state_dwell,
        battery_band=settings.battery_state_band,
        runway_smoothing=settings.runway_smoothing,
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
        self.finder = _finder(settings, gateways)  # ENVOY_HOST=auto: mDNS
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
                locator=self.finder.locator(gateway.serial)
                if self.finder is not None and is_auto(gateway.host)
                else None,
            )
            for gateway in gateways
        ]
        for bridge in self.bridges:
            bridge.on_connected = self._gateway_connected
        self.shedding = self._shedding(settings, gateways)
        self.commands = wire_controls(settings, self.link, self.topics, self.bridges)  # CONTROLS
        self.link.subscribe(settings.ha_status_topic, self._on_ha_status)
        self.ghosts = Ghosts(self.topics.base)
        for config_filter in self.topics.config_filters:
            self.link.subscribe(config_filter, self._on_config)
        self.started = datetime.now(UTC)
        warning = device_mode_warning(HaRelease.parse(settings.ha_compat))
        if settings.ha_discovery and settings.ha_discovery_mode == "device" and warning:
            log.warning(warning)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or SIGTERM/SIGINT), then say goodbye within seconds."""
        stop = stop or asyncio.Event()
        ensure_state_dir(self.settings.state_dir)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.link.run(), name="mqtt")
                for bridge in self.bridges:
                    tasks.create_task(bridge.run(), name=f"bridge {bridge.settings.host}")
                tasks.create_task(self._health(), name="health")
                if self.finder is not None:
                    tasks.create_task(self.finder.run(), name="mdns")
                tasks.create_task(self._sweep_ghosts(), name="ghosts")
                if self.shedding is not None:
                    tasks.create_task(self.shedding.run(), name="shedding")
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

    def _shedding(self, settings: Settings, gateways: list[GatewaySettings]) -> Shedder | None:
        """Load shedding, when LOADS_FILE (or LOADS) names loads, fed by its gateway's bridge."""
        plan = read_plan(settings, gateways)
        if plan is None:
            return None
        shedder = Shedder(plan, self.link, self.topics, discovery=settings.ha_discovery)
        for bridge in self.bridges:
            bridge.on_connected = _offering(bridge, shedder, bridge.on_connected)
        return shedder

    async def _on_connect(self) -> None:
        if self.shedding is not None:
            self.shedding.connected()  # commands that waited for the broker go first
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
            if self.shedding is not None:
                self.shedding.republish()

    async def _on_config(self, topic: str, payload: bytes) -> None:
        self.ghosts.seen(topic, payload)

    async def _sweep_ghosts(self) -> None:
        """Remove discovery configs of ours that no gateway announces any more (see ghosts)."""
        while True:
            await asyncio.sleep(GHOSTS_EVERY)
            self.sweep_ghosts()

    def sweep_ghosts(self) -> list[str]:
        """One sweep: the stale configs of ours, removed; returns their topics."""
        announced: dict[str, set[str]] = {}
        for bridge in self.bridges:
            publisher = bridge.publisher
            if publisher is not None and publisher.announcer.entities:
                announced[sanitize(publisher.info.serial)] = publisher.discovery_topics
        if self.shedding is not None and self.shedding.discovery_topics:
            announced[SHEDDING] = set(self.shedding.discovery_topics)
        known = all(bridge.publisher is not None for bridge in self.bridges)
        stale = self.ghosts.stale(announced, every_gateway_known=known)
        for topic in stale:
            log.info("removing a discovery config nobody publishes any more: %s", topic)
            self.link.publish(topic, b"", retain=True, qos=1)
            self.ghosts.found.pop(topic, None)
        return stale

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
        health = HealthFile(self.settings.state_dir / HEALTH_FILE, time.time())
        while True:
            health.write(
                last_publish=self.link.stats.last_publish,
                connected=self.link.connected.is_set(),
                online=sum(
                    1 for b in self.bridges if b.publisher is not None and b.publisher.available
                ),
            )
            await asyncio.sleep(HEALTH_EVERY)


def ensure_state_dir(path: Path) -> None:
    """STATE_DIR exists and is writable by this user, or a ConfigError that says what to do."""
    probe = path / f".writable-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"STATE_DIR: cannot write to {path} as uid {os.getuid()} ({err.strerror}): a "
            f"bind-mounted /data must belong to that user (chown -R {os.getuid()} on the host "
            "folder; README, Docker)"
        ) from None


def _finder(settings: Settings, gateways: list[GatewaySettings]) -> GatewayFinder | None:
    """One mDNS browser for every gateway whose host is `auto`; None when none is."""
    if not any(is_auto(gateway.host) for gateway in gateways):
        return None
    return GatewayFinder(interfaces_from(settings.mdns_interfaces))


def _offering(
    bridge: Bridge, shedder: Shedder, connected: Callable[[GatewayInfo], None] | None
) -> Callable[[GatewayInfo], None]:
    """The bridge's connect hook, then its gateway offered to load shedding."""

    def hook(info: GatewayInfo) -> None:
        if connected is not None:
            connected(info)
        if bridge.publisher is not None:
            shedder.offer(bridge.settings, bridge.publisher)

    return hook


def install_signal_handlers(
    stop: asyncio.Event, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """SIGTERM and Ctrl-C set `stop`, so the app says goodbye before exiting."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
