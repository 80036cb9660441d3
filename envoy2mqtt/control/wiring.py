"""How controls join the running bridge: a controller per gateway, riding along with each
connection's lanes, and one router from the command topics to the controllers.

With CONTROLS=none (the default) nothing here runs: no command topic is subscribed to.
A retained message on a command topic is never carried out (a retained "go off-grid" would
replay at every restart): it is logged, and cleared from the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from envoy2mqtt.bridge import Bridge
from envoy2mqtt.control.commands import SET
from envoy2mqtt.control.controls import Scope
from envoy2mqtt.control.executor import Controller
from envoy2mqtt.control.session import ControlOptions
from envoy2mqtt.core.naming import sanitize
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.settings import Settings

log = logging.getLogger(__name__)

CLEARED: Final = b""
RetainHandler = Callable[[str, bytes, bool], Awaitable[None]]  # as `mqtt.link` calls it


class CommandLink(Link, Protocol):
    """The link as the router needs it: publishing, and subscriptions that see `retain`."""

    def subscribe_with_retain(self, topic: str, handler: RetainHandler) -> None:
        """Call `handler(topic, payload, retained)` for messages on `topic`."""


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
    )


class CommandRouter:
    """Hands each live command to its gateway's controller."""

    def __init__(self, link: Link, topics: Topics, bridges: Sequence[Bridge]) -> None:
        """Route to these bridges' controllers."""
        self.link, self.topics, self.bridges = link, topics, bridges

    async def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """One message on a command topic."""
        if not payload:
            return  # a cleared command topic (ours, or anyone's)
        if retained:
            log.warning("ignoring a retained command on %s (never retain commands); cleared", topic)
            self.link.publish(topic, CLEARED, retain=True, qos=1)
            return
        level, _, suffix = topic.removeprefix(f"{self.topics.base}/").partition("/")
        for bridge in self.bridges:
            serial = bridge.serial
            if bridge.controller is not None and serial and sanitize(serial) == level:
                bridge.controller.submit(level, suffix, payload, topic)
                return
        log.debug("a command for an unknown gateway %r on %s: ignored", level, topic)


def wire_controls(
    settings: Settings, link: CommandLink, topics: Topics, bridges: Sequence[Bridge]
) -> CommandRouter | None:
    """Controllers for the bridges and the command subscriptions, if CONTROLS is on."""
    options = control_options(settings)
    if options is None:
        return None
    for bridge in bridges:
        bridge.controller = Controller(link, topics, options)
    router = CommandRouter(link, topics, bridges)
    for command_filter in command_filters(topics.base):
        link.subscribe_with_retain(command_filter, router.on_message)
    log.info(
        "CONTROLS=%s: commands are taken on %s/<serial>/set (see the README's Controls)",
        options.scope,
        topics.base,
    )
    return router
