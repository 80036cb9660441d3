"""The extension model: what every feature is given, and its start and stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from envoy2mqtt.core.stream import EventStream, Subscription
from envoy2mqtt.mqtt.commands import CommandLink
from envoy2mqtt.mqtt.link_protocol import Handler
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.settings import Settings

E = TypeVar("E")


class HubLink(CommandLink, Protocol):
    """The MQTT link as features use it (`mqtt.link.MqttLink` is the real one)."""

    connected: asyncio.Event

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler(topic, payload)` for messages on `topic` (a filter)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hub:
    """What an extension may use: settings, the link, topic names, the streams, the tasks."""

    settings: Settings
    link: HubLink
    topics: Topics
    events: EventStream  # the app's: MQTT connected, Home Assistant online, shutting down
    bridges: Sequence[Bridge]  # each with its gateway's stream (`bridge.events`)
    tasks: asyncio.TaskGroup


class Extension:
    """A feature: an async context manager entered in the app's TaskGroup.

    Subclasses set up their subscriptions and tasks in `start()` with `on()`, `on_gateways()`
    and `spawn()`; everything started that way ends in `__aexit__`. The constructor stores
    references only.
    """

    def __init__(self, hub: Hub) -> None:
        """Keep the hub; nothing starts before `async with`."""
        self.hub = hub
        self._subscriptions: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        """Subscribe and start."""
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Unsubscribe and stop the tasks it started."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def start(self) -> None:
        """Subscribe to what the feature follows; start its tasks (override)."""

    def on(self, stream: EventStream, kind: type[E], handler: Callable[[E], None]) -> None:
        """Follow events of type `kind` on `stream` while entered."""
        self._subscriptions.append(stream.subscribe().on(kind, handler))

    def on_gateways(self, kind: type[E], handler: Callable[[Bridge, E], None]) -> None:
        """Follow events of type `kind` from every gateway, told which bridge it came from."""
        for bridge in self.hub.bridges:
            self.on(bridge.events, kind, _bound(bridge, handler))

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in the app's TaskGroup until it ends or the extension exits."""
        self._tasks = [task for task in self._tasks if not task.done()]
        task = self.hub.tasks.create_task(work, name=name)
        self._tasks.append(task)
        return task


def _bound(bridge: Bridge, handler: Callable[[Bridge, E], None]) -> Callable[[E], None]:
    def call(event: E) -> None:
        handler(bridge, event)

    return call
