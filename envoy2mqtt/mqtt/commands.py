"""Command topics, guarded: only a live message is a command.

A retained message on a command topic (a "go off-grid" or "dryer on" someone published with
the retain flag) would be replayed at every restart: it is logged, cleared from the broker
and never carried out. Every command topic, of the controls and of load shedding alike, is
subscribed through `take_commands`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from envoy2mqtt.mqtt.link_protocol import Link, RetainHandler

log = logging.getLogger(__name__)

CLEARED: Final = b""
CommandHandler = Callable[[str, bytes], Awaitable[None]]


class CommandLink(Link, Protocol):
    """The link as command topics need it: publishing, and subscriptions that see `retain`."""

    def subscribe_with_retain(self, topic: str, handler: RetainHandler) -> None:
        """Call `handler(topic, payload, retained)` for messages on `topic`."""


def take_commands(link: CommandLink, topic_filter: str, handler: CommandHandler) -> None:
    """Hand every live, non-empty message on `topic_filter` to `handler(topic, payload)`."""

    async def guarded(topic: str, payload: bytes, retained: bool) -> None:
        if not payload:
            return  # a cleared command topic (ours, or anyone's)
        if retained:
            log.warning("ignoring a retained command on %s (never retain commands); cleared", topic)
            link.publish(topic, CLEARED, retain=True, qos=1)
            return
        await handler(topic, payload)

    link.subscribe_with_retain(topic_filter, guarded)
