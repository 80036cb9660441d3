"""What waits for the broker: urgent states, events in order, and retained states coalesced."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One outgoing message."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


class Outbox:
    """Loss-free queues: a message leaves only once the broker has it.

    Urgent states go first, then events (QoS 1, in order, the oldest dropped past `events_max`
    and counted), then retained states, of which only the newest per topic is kept.
    """

    def __init__(self, events_max: int = 10_000) -> None:
        """Empty queues."""
        self.events_max = events_max
        self.events_dropped = 0
        self._events: deque[Message] = deque()
        self._urgent: deque[Message] = deque()
        self._states: dict[str, Message] = {}

    def put(self, message: Message, *, urgent: bool = False) -> None:
        """Queue a state: urgent ones in order, others coalesced per topic."""
        self._states.pop(message.topic, None)
        if urgent:
            self._urgent.append(message)
        else:
            self._states[message.topic] = message

    def put_event(self, message: Message) -> None:
        """Queue an event, dropping the oldest when the buffer is full."""
        self._events.append(message)
        while len(self._events) > self.events_max:
            self._events.popleft()
            self.events_dropped += 1
            log.warning("event buffer full (%d): dropped the oldest event", self.events_max)

    def __len__(self) -> int:
        """Messages waiting to be sent."""
        return len(self._events) + len(self._urgent) + len(self._states)

    async def flush(self, send: Callable[[Message], Awaitable[None]]) -> None:
        """Send everything queued, in order of priority, until the queues are empty."""
        while True:
            if self._urgent:
                queue = self._urgent
            elif self._events:
                queue = self._events
            elif self._states:
                topic = next(iter(self._states))
                message = self._states.pop(topic)
                try:
                    await send(message)
                except BaseException:  # lost or cancelled mid-send: keep it, unless superseded
                    self._states.setdefault(topic, message)
                    raise
                continue
            else:
                return
            message = queue[0]
            await send(message)  # kept at the head until the broker has it
            if queue and queue[0] is message:
                queue.popleft()
