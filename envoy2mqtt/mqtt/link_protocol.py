"""What the publishing side needs from the MQTT edge (the link implements it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Handler = Callable[[str, bytes], Awaitable[None]]
"""A subscription's handler: `handler(topic, payload)`."""
RetainHandler = Callable[[str, bytes, bool], Awaitable[None]]
"""A subscription's handler that is told whether the message was retained."""


class Link(Protocol):
    """Queues messages for the broker."""

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        """Queue a message."""

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        """Queue an event."""
