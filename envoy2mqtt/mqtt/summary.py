"""The compact summary for small displays (ESP32 + PubSubClient drop packets over 256 bytes)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from envoy2mqtt.core.snapshot import Value

MAX_PACKET: Final = 256


def summary_json(values: Mapping[str, Value], fields: Iterable[tuple[str, str]]) -> str | None:
    """Compact JSON of the headline values, or None when there is nothing to show.

    `fields` pairs each short key (the catalog's `Metric.summary`) with its metric's path;
    short keys keep the packet small on a 256-byte budget.
    """
    body: dict[str, Value] = {}
    for short, path in fields:
        value = values.get(path)
        if value is None:
            continue
        body[short] = round(value) if isinstance(value, float) else value
    if not body:
        return None
    return json.dumps(body, separators=(",", ":"))


def packet_size(topic: str, payload: str) -> int:
    """Size of an MQTT 3.1.1 PUBLISH packet (QoS 0) carrying this payload."""
    remaining = 2 + len(topic.encode()) + len(payload.encode())
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    return 1 + length_bytes + remaining


@dataclass(slots=True)
class SummaryThrottle:
    """At most one summary per `interval` seconds; the newest one waits for its turn."""

    interval: float = 1.0
    sent: str | None = None  # the summary last published
    _pending: str | None = None
    _at: float = float("-inf")

    def due(self, payload: str | None, now: float) -> str | None:
        """The summary to publish now, if any."""
        if payload is None:
            return None
        if payload != self.sent:
            self._pending = payload
        if self._pending is None or now - self._at < self.interval:
            return None
        self.sent, self._pending, self._at = payload, None, now
        return payload
