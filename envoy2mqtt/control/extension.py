"""Controls as an extension: a controller per gateway, riding along with its connection, and
the command topics routed to them.

With CONTROLS=none (the default) nothing here runs: no command topic is subscribed to.
Command topics go through `mqtt.commands`: a retained command is never carried out.
"""

from __future__ import annotations

import asyncio
import logging

from envoy2mqtt.auth.battery import EnlightenBattery
from envoy2mqtt.control.commands import SET
from envoy2mqtt.control.controls import Scope
from envoy2mqtt.control.executor import Controller, ControlOptions
from envoy2mqtt.core.naming import sanitize
from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.mqtt.commands import take_commands
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.polling.events import GatewayConnected, GatewayDisconnected, SnapshotSettled
from envoy2mqtt.settings import Settings

log = logging.getLogger(__name__)


def command_filters(base: str) -> tuple[str, ...]:
    """Every command topic: `<serial>/set`, `<serial>/set/<control>`, and a device's two."""
    return (f"{base}/+/{SET}", f"{base}/+/{SET}/+", f"{base}/+/+/+/{SET}", f"{base}/+/+/+/{SET}/+")


def control_options(settings: Settings) -> ControlOptions | None:
    """What CONTROLS and CONTROL_* ask for; None when controls are off."""
    scope = Scope(settings.controls)
    if scope is Scope.NONE:
        return None
    return ControlOptions(
        scope=scope,
        watch=settings.control_watch,
        reassert=settings.control_reassert,
        rate_limit=settings.control_rate_limit,
        settle=settings.control_settle,
        battery_path=settings.battery_control_path,
        cloud=settings.control_cloud_timeout,
        relay_open=settings.control_relay_open_timeout,
        relay_close=settings.control_relay_close_timeout,
        contact=settings.control_contact_timeout,
        phantom=settings.control_contact_phantom,
    )


def battery_cloud(settings: Settings, bridge: Bridge) -> EnlightenBattery | None:
    """The Enlighten client for this gateway's battery settings: the account its tokens come
    from (ENVOY_USERNAME/ENVOY_PASSWORD); None without one, or with BATTERY_CONTROL_PATH=local."""
    gateway = bridge.settings
    if settings.battery_control_path == "local" or not gateway.username or not gateway.password:
        return None
    return EnlightenBattery(
        gateway.username,
        gateway.password.get_secret_value(),
        login_url=settings.enlighten_login_url,
        timeout=settings.cloud_timeout,
    )


class Controls(Extension):
    """CONTROLS: commands from MQTT carried out on each gateway while it is connected."""

    def __init__(self, hub: Hub) -> None:
        """References only; `async with` subscribes (if CONTROLS is on)."""
        super().__init__(hub)
        self.controllers: dict[Bridge, Controller] = {}
        self._running: dict[Bridge, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Subscribe to the command topics and follow every gateway (unless CONTROLS=none)."""
        options = control_options(self.hub.settings)
        if options is None:
            return
        hub = self.hub
        self.controllers = {
            bridge: Controller(
                hub.link,
                hub.topics,
                options,
                cloud=battery_cloud(hub.settings, bridge),
                events=bridge.events,
            )
            for bridge in hub.bridges
        }
        for command_filter in command_filters(hub.topics.base):
            take_commands(hub.link, command_filter, self._on_command)
        self.on_gateways(GatewayConnected, self._connected)
        self.on_gateways(SnapshotSettled, self._settled)
        self.on_gateways(GatewayDisconnected, self._disconnected)
        log.info(
            "CONTROLS=%s: commands are taken on %s/<serial>/set (see the README's Controls)",
            options.scope,
            hub.topics.base,
        )

    async def __aexit__(self, *exc: object) -> None:
        """Stop, and close the Enlighten sessions."""
        await super().__aexit__(*exc)
        for controller in self.controllers.values():
            if controller.cloud is not None:
                await controller.cloud.close()

    def _connected(self, bridge: Bridge, connected: GatewayConnected) -> None:
        self._disconnected(bridge, None)
        controller = self.controllers[bridge]
        self._running[bridge] = self.spawn(
            controller.run(connected.session), f"controls {bridge.settings.host}"
        )

    def _settled(self, bridge: Bridge, settled: SnapshotSettled) -> None:
        self.controllers[bridge].observe(settled.session)

    def _disconnected(self, bridge: Bridge, _event: GatewayDisconnected | None) -> None:
        task = self._running.pop(bridge, None)
        if task is not None:
            task.cancel()

    async def _on_command(self, topic: str, payload: bytes) -> None:
        """One live message on a command topic: to the controller of its gateway."""
        level, _, suffix = topic.removeprefix(f"{self.hub.topics.base}/").partition("/")
        for bridge, controller in self.controllers.items():
            serial = bridge.serial
            if serial and sanitize(serial) == level:
                controller.submit(level, suffix, payload, topic)
                return
        log.debug("a command for an unknown gateway %r on %s: ignored", level, topic)
