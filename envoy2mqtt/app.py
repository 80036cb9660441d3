"""Wires settings, the MQTT link, one bridge per gateway and the features under one TaskGroup.

Every feature is an extension (`features.extension`): entered here, in the one TaskGroup,
in the order it should hear events. Adding a feature is a room and one line in `features`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from pathlib import Path

from envoy2mqtt.auth.tokens import token_source
from envoy2mqtt.control.extension import Controls
from envoy2mqtt.core.stream import EventStream
from envoy2mqtt.features.bridge_info import BridgeInfo
from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.features.ghosts import GhostSweep
from envoy2mqtt.features.health import Health
from envoy2mqtt.features.retained import RetainedState
from envoy2mqtt.gateway.finder import GatewayFinder, interfaces_from, is_auto
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.mqtt.discovery import device_mode_warning
from envoy2mqtt.mqtt.link import MqttLink, MqttOptions
from envoy2mqtt.mqtt.publisher import PublishOptions
from envoy2mqtt.mqtt.reference import deprecation_notice
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.polling.events import HomeAssistantOnline, MqttConnected, ShuttingDown
from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings
from envoy2mqtt.shedding.actor import Shedder
from envoy2mqtt.shedding.loads import read_plan

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Raised inside the TaskGroup to end it after a clean goodbye."""


class App:
    """The running service: one MQTT link, one bridge per gateway, and the features."""

    def __init__(self, settings: Settings) -> None:
        """Build everything from the settings (raises ConfigError on bad ones)."""
        self.settings = settings
        self.topics = Topics(settings.mqtt_base_topic, settings.ha_discovery_prefix)
        gateways = settings.gateway_list()
        self.plan = read_plan(settings, gateways)  # LOADS_FILE: checked before anything starts
        self.finder = _finder(settings, gateways)  # ENVOY_HOST=auto: mDNS
        self.events = EventStream("app")
        self.link = MqttLink(
            MqttOptions.of(settings, will_topic=self.topics.bridge_state),
            on_connect=self._on_connect,
        )
        options = PublishOptions.of(settings)
        self.bridges = [
            Bridge(
                gateway,
                self.link,
                self.topics,
                options,
                tokens=token_source(settings, gateway),
                request_timeout=settings.request_timeout,
                slow_timeout=settings.slow_request_timeout,
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
        self.tasks = asyncio.TaskGroup()  # the one TaskGroup, entered by `run()`
        hub = Hub(
            settings=settings,
            link=self.link,
            topics=self.topics,
            events=self.events,
            bridges=self.bridges,
            tasks=self.tasks,
        )
        self.shedding = (
            Shedder(hub, self.plan, discovery=settings.ha_discovery) if self.plan else None
        )
        self.ghosts = GhostSweep(hub, [self.shedding] if self.shedding else [])
        # every feature, in the order each hears an event (commands that waited go first)
        self.features: list[Extension] = [
            *([self.shedding] if self.shedding else []),
            Controls(hub),
            BridgeInfo(hub),
            RetainedState(hub),
            self.ghosts,
            Health(hub, self.link.stats),
        ]
        warning = device_mode_warning(settings.ha_compat)
        if settings.ha_discovery and settings.ha_discovery_mode == "device" and warning:
            log.warning(warning)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or SIGTERM/SIGINT), then say goodbye within seconds."""
        stop = stop or asyncio.Event()
        ensure_state_dir(self.settings.state_dir)
        if (notice := deprecation_notice()) is not None:
            log.warning(notice)
        try:
            async with self.tasks as tasks, AsyncExitStack() as features:
                for feature in self.features:
                    await features.enter_async_context(feature)
                self.link.subscribe(self.settings.ha_status_topic, self._on_ha_status)
                tasks.create_task(self.link.run(), name="mqtt")
                polling = [
                    tasks.create_task(bridge.run(), name=f"bridge {bridge.settings.host}")
                    for bridge in self.bridges
                ]
                if self.finder is not None:
                    tasks.create_task(self.finder.run(), name="mdns")
                await stop.wait()
                for task in polling:  # no read may mark a gateway online after its goodbye
                    task.cancel()
                await asyncio.wait(polling, timeout=2.0)
                await self._goodbye()
                raise Stopped  # noqa: TRY301 - ends the TaskGroup, cancelling every task
        except* Stopped:
            pass

    async def _goodbye(self) -> None:
        for bridge in self.bridges:
            bridge.save_state()
        self.events.emit(ShuttingDown())
        await self.link.drain(timeout=2.0)
        await self.link.close(timeout=2.0)
        log.info("stopped")

    async def _on_connect(self) -> None:
        self.events.emit(MqttConnected())

    async def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            self.events.emit(HomeAssistantOnline())


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


def install_signal_handlers(
    stop: asyncio.Event, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """SIGTERM and Ctrl-C set `stop`, so the app says goodbye before exiting."""
    loop = asyncio.get_running_loop()
    for sig in signals:
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
