"""Events worth acting on at once: grid outages and battery transitions."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from envoy2mqtt.core.snapshot import Value

SOC_CROSSING: Final = "battery_soc"
"""The event type of a state of charge: raised when it crosses a threshold, not on change."""


@dataclass(frozen=True, slots=True)
class Watch:
    """Which values raise events and which ride along as context (from the catalog)."""

    events: Mapping[str, str] = field(default_factory=dict)  # path -> event type
    context: tuple[str, ...] = ()  # paths carried in every event


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
    watch: Watch = field(default_factory=Watch)
    _last: dict[str, Value] = field(default_factory=dict)

    def detect(self, values: Mapping[str, Value], at: datetime) -> list[Event]:
        """Return the events between the previous values and these (transitions first)."""
        context = {key: values[key] for key in self.watch.context if key in values}
        events: list[Event] = []
        crossings: list[Event] = []
        for path, kind in self.watch.events.items():
            if path not in values:
                continue
            before, after = self._last.get(path), values[path]
            self._last[path] = after
            if kind == SOC_CROSSING:
                if isinstance(before, int | float) and isinstance(after, int | float):
                    crossings.extend(self._crossings(before, after, at, context))
            elif before is not None and before != after:
                events.append(Event(kind, before, after, at, context))
        return events + crossings

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
        return Event(SOC_CROSSING, before, after, at, context, extra)
