"""The bridge's own discovery configs left on the broker by an earlier run, and which are stale.

Home Assistant keeps an entity for as long as its retained config stays. A device replaced
while the bridge was down, a gateway removed from GATEWAYS_FILE, or a switch of
HA_DISCOVERY_MODE would leave configs nobody publishes any more: ghost entities. The bridge
reads the retained configs under the discovery prefix back, keeps those that are its own
(origin envoy2mqtt, unique ids `envoy2mqtt_...`, state topics under its own base topic), and
removes the ones its gateways no longer announce. Configs of anyone else are never touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

OURS = "envoy2mqtt"


@dataclass(slots=True)
class Ghosts:
    """Discovery configs of this bridge seen retained on the broker, by gateway."""

    base: str  # the bridge's MQTT base topic
    found: dict[str, str] = field(default_factory=dict)  # config topic -> gateway topic level

    def seen(self, topic: str, payload: bytes) -> None:
        """Note a config message (retained or live; an empty payload removes it)."""
        if OURS.encode() not in payload:
            self.found.pop(topic, None)
            return
        try:
            document = json.loads(payload)
        except ValueError:
            return
        owner = self.owner(document) if isinstance(document, dict) else None
        if owner is None:
            self.found.pop(topic, None)
        else:
            self.found[topic] = owner

    def owner(self, document: Mapping[str, object]) -> str | None:
        """The gateway (its topic level) a config of ours belongs to; None if not ours."""
        origin = document.get("origin", document.get("o"))
        if not isinstance(origin, dict) or origin.get("name") != OURS:
            return None
        ids = [v for k, v in _pairs(document) if k in ("unique_id", "uniq_id")]
        if not ids or not all(isinstance(i, str) and i.startswith(f"{OURS}_") for i in ids):
            return None
        prefix = f"{self.base}/"
        for _key, value in _pairs(document):
            if isinstance(value, str) and value.startswith(prefix):
                level = value[len(prefix) :].split("/", 1)[0]
                if level and level != "bridge":
                    return level
        return None  # not under our base topic: another bridge's (or instance's)

    def stale(self, announced: Mapping[str, set[str]], every_gateway_known: bool) -> list[str]:
        """Configs of ours to remove.

        `announced`: each gateway that has announced its entities (by topic level), with the
        config topics it wants now. Configs of a gateway not among them are removed only once
        every configured gateway is known, so one that is merely offline keeps its entities.
        """
        out = []
        for topic, owner in self.found.items():
            wanted = announced.get(owner)
            if (wanted is not None and topic not in wanted) or (
                wanted is None and every_gateway_known
            ):
                out.append(topic)
        return sorted(out)


def _pairs(value: object) -> Iterator[tuple[str, object]]:
    """Every (key, value) of a JSON document, at any depth (device configs nest in `cmps`)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key), inner
            yield from _pairs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _pairs(inner)
