"""Events worth acting on at once: grid outages and battery transitions."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from envoy2mqtt.catalog.metric import Value

GRID: Final = "grid_status"
BATTERY_STATE: Final = "battery_state"
BATTERY_SOC: Final = "battery_soc"
BATTERY_MODE: Final = "battery_mode"

CONTEXT_KEYS: Final = (
    "grid_status",
    "battery_soc",
    "battery_power",
    "battery_state",
    "production_power",
    "consumption_power",
    "net_power",
)

_RUN: Final = uuid.uuid4().hex[:8]
_SEQUENCE = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Event:
    """A transition, published as JSON on `<base>/<serial>/event`."""

    type: str
    before: Value | None
    after: Value
    at: datetime
    context: Mapping[str, Value] = field(default_factory=dict)
    extra: Mapping[str, Value] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"{_RUN}-{next(_SEQUENCE)}")

    def to_json(self, serial: str) -> str:
        """The event's wire form; `id` lets consumers drop a duplicate after a reconnect."""
        body: dict[str, object] = {
            "id": self.id,
            "type": self.type,
            "gateway": serial,
            "from": self.before,
            "to": self.after,
            "at": self.at.isoformat(timespec="milliseconds"),
            **self.extra,
            "context": dict(self.context),
        }
        return json.dumps(body, separators=(",", ":"))


@dataclass(slots=True)
class EventDetector:
    """Compares each new set of values with the previous one and names the transitions."""

    soc_thresholds: Sequence[int] = (20, 10)
    _last: dict[str, Value] = field(default_factory=dict)

    def detect(self, values: Mapping[str, Value], at: datetime) -> list[Event]:
        """Return the events between the previous values and these."""
        context = {key: values[key] for key in CONTEXT_KEYS if key in values}
        events: list[Event] = []
        for key, kind in ((GRID, "grid"), (BATTERY_STATE, "battery"), (BATTERY_MODE, "mode")):
            if key not in values:
                continue
            before, after = self._last.get(key), values[key]
            if before is not None and before != after:
                events.append(Event(kind, before, after, at, context))
            self._last[key] = after
        soc = values.get(BATTERY_SOC)
        if isinstance(soc, int | float):
            before = self._last.get(BATTERY_SOC)
            if isinstance(before, int | float):
                events.extend(self._crossings(before, soc, at, context))
            self._last[BATTERY_SOC] = soc
        return events

    def _crossings(
        self, before: float, after: float, at: datetime, context: Mapping[str, Value]
    ) -> list[Event]:
        out = []
        # in the order they were crossed: falling passes the high threshold first
        for threshold in sorted(self.soc_thresholds, reverse=after < before):
            if before >= threshold > after:
                out.append(
                    self._soc_event(
                        "below",
                        threshold=threshold,
                        before=before,
                        after=after,
                        at=at,
                        context=context,
                    )
                )
            elif before < threshold <= after:
                out.append(
                    self._soc_event(
                        "above",
                        threshold=threshold,
                        before=before,
                        after=after,
                        at=at,
                        context=context,
                    )
                )
        return out

    @staticmethod
    def _soc_event(
        direction: str,
        *,
        threshold: int,
        before: float,
        after: float,
        at: datetime,
        context: Mapping[str, Value],
    ) -> Event:
        extra: dict[str, Value] = {"threshold": threshold, "direction": direction}
        return Event("battery_soc", before, after, at, context, extra)
