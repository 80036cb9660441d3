"""The publisher's link for tests: keeps every message instead of sending it."""

from __future__ import annotations

from dataclasses import dataclass, field


def as_bytes(payload: str | bytes) -> bytes:
    """A payload as the broker would carry it."""
    return payload.encode() if isinstance(payload, str) else payload


@dataclass(frozen=True, slots=True)
class Sent:
    """One message handed to the link."""

    topic: str
    payload: bytes
    retain: bool = False
    event: bool = False


@dataclass(slots=True)
class RecordingLink:
    """Satisfies `publisher.Link`; every message is kept, in order."""

    sent: list[Sent] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        """Keep a state (or discovery, availability, summary) message."""
        del qos, urgent  # kept messages do not need them
        self.sent.append(Sent(topic, as_bytes(payload), retain))

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        """Keep an event."""
        self.sent.append(Sent(topic, as_bytes(payload), event=True))

    @property
    def messages(self) -> list[tuple[str, bytes, bool]]:
        """Every message but events: (topic, payload, retained)."""
        return [(s.topic, s.payload, s.retain) for s in self.sent if not s.event]

    @property
    def events(self) -> list[tuple[str, bytes]]:
        """Every event: (topic, payload)."""
        return [(s.topic, s.payload) for s in self.sent if s.event]

    def clear(self) -> None:
        """Forget what was kept so far."""
        self.sent.clear()

    def retained(self) -> dict[str, bytes]:
        """Topic -> the last retained payload."""
        return {s.topic: s.payload for s in self.sent if s.retain}
