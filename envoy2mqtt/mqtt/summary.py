"""The compact summary for small displays (ESP32 + PubSubClient drop packets over 256 bytes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from envoy2mqtt.catalog.metric import Value

# summary key -> metric path; short keys keep the packet small on a 256-byte budget
FIELDS: Final = (
    ("pv", "production_power"),
    ("load", "consumption_power"),
    ("net", "net_power"),
    ("imp", "grid_import_power"),
    ("exp", "grid_export_power"),
    ("soc", "battery_soc"),
    ("bat", "battery_power"),
    ("grid", "grid_status"),
)
MAX_PACKET: Final = 256


def summary_json(values: Mapping[str, Value]) -> str | None:
    """Compact JSON of the headline values, or None when there is nothing to show."""
    body: dict[str, Value] = {}
    for short, path in FIELDS:
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
