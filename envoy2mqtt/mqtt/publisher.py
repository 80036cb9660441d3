"""Turns snapshots into MQTT messages: states, events, summary and discovery."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from envoy2mqtt import catalog
from envoy2mqtt.catalog.metric import Entity, Reading, Value, input_key, same_objects
from envoy2mqtt.core.changes import ChangeDetector, CounterGuard, Debouncer
from envoy2mqtt.core.events import GRID, EventDetector
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.mqtt.discovery import (
    DiscoveryMessage,
    device_configs,
    entity_configs,
)
from envoy2mqtt.mqtt.summary import summary_json
from envoy2mqtt.mqtt.topics import Topics

log = logging.getLogger(__name__)

ONLINE: Final = "online"
OFFLINE: Final = "offline"


class Link(Protocol):
    """What the publisher needs from the MQTT edge."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishOptions:
    """Publishing behaviour shared by every gateway."""

    discovery: bool = True
    discovery_mode: str = "entity"  # or "device"
    heartbeat: float = 300.0
    grid_debounce: int = 2
    soc_thresholds: Sequence[int] = (20, 10)
    summary_interval: float = 1.0
    clamp_negative_production: bool = True


def format_value(value: Value) -> str:
    """A plain payload: integers as integers, floats compact, words as they are."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}" if abs(value) >= 1e6 else f"{round(value, 3)}"
    return str(value)


@dataclass(slots=True)
class GatewayPublisher:
    """Everything one gateway publishes, with memory of what was published."""

    link: Link
    topics: Topics
    info: GatewayInfo
    options: PublishOptions = field(default_factory=PublishOptions)
    name: str | None = None
    clock: Callable[[], float] = time.monotonic
    on_publish: Callable[[float], None] | None = None
    changes: ChangeDetector = field(init=False)
    counters: CounterGuard = field(init=False)
    debounce: Debouncer = field(init=False)
    events: EventDetector = field(init=False)
    _entities: dict[str, Entity] = field(default_factory=dict)
    _discovered: set[str] = field(default_factory=set)
    _summary: str | None = None
    _summary_pending: str | None = None
    _summary_at: float = float("-inf")
    available: bool | None = None
    _day: str | None = None
    _grid: Value | None = None  # the debounced grid status
    _by_source: dict[int, dict[str, Reading]] = field(default_factory=dict)
    _broken: set[int] = field(default_factory=set)  # sources whose reader failed last time
    _inputs: dict[int, tuple[object, ...]] = field(default_factory=dict)  # read from these

    def __post_init__(self) -> None:
        self.changes = ChangeDetector(heartbeat=self.options.heartbeat)
        self.counters = CounterGuard()
        self.debounce = Debouncer(reads=self.options.grid_debounce)
        self.events = EventDetector(soc_thresholds=self.options.soc_thresholds)

    # -- state -----------------------------------------------------------------------------

    def publish_snapshot(self, snapshot: Snapshot, *, grid_read: bool = True) -> int:
        """Publish what changed in this snapshot; return how many messages were queued.

        `grid_read` says whether the snapshot holds a new reading of the grid status: the
        debounce counts readings, not snapshots (other lanes re-publish the same reading).
        """
        started = time.perf_counter()
        self.info = snapshot.gateway
        readings = self._readings(snapshot)
        values = self._settle(readings, snapshot, grid_read=grid_read)
        sent = 0
        if self.options.discovery:
            sent += self._discover(readings)
        for event in self.events.detect(values, snapshot.taken_at):
            log.info("%s: %s %s -> %s", self.info.serial, event.type, event.before, event.after)
            self.link.publish_event(
                self.topics.event(self.info.serial), event.to_json(self.info.serial)
            )
            sent += 1
        bands = {path: r.entity.metric.deadband for path, r in readings.items()}
        for path, value in self.changes.diff(values, self.clock(), bands).items():
            urgent = readings[path].entity.metric.urgent
            self.link.publish(
                self.topics.state(self.info.serial, path),
                format_value(value),
                retain=True,
                urgent=urgent,
                qos=1 if urgent else 0,
            )
            sent += 1
        sent += self._publish_summary(values)
        if self.on_publish is not None:
            self.on_publish(time.perf_counter() - started)
        return sent

    def _readings(self, snapshot: Snapshot) -> dict[str, Reading]:
        """The catalog's readings, one source at a time.

        A source is read again only when something it reads is a new object (see
        `metric.same_objects`): a fast-lane publish re-reads the grid and CT sources, not 60
        inverters.

        A source whose reader fails on data no capture had keeps its last good readings
        (logged once, with the traceback) instead of taking the whole gateway down.
        """
        out: dict[str, Reading] = {}
        for index, source in enumerate(catalog.SOURCES):
            key = input_key(snapshot, source.inputs) if source.inputs is not None else None
            known = self._inputs.get(index)
            if key is not None and known is not None and same_objects(known, key):
                out.update(self._by_source[index])  # nothing it reads changed
                continue
            self._inputs.pop(index, None)
            try:
                fresh = {reading.entity.path: reading for reading in source.readings(snapshot)}
            except Exception:
                if index not in self._broken:
                    self._broken.add(index)
                    log.warning(
                        "%s: cannot read part of the gateway's data; keeping its last good "
                        "values (please report this)",
                        self.info.serial,
                        exc_info=True,
                    )
                fresh = self._by_source.get(index, {})
            else:
                self._broken.discard(index)
                self._by_source[index] = fresh
                if key is not None:
                    self._inputs[index] = key
            out.update(fresh)
        return out

    def _settle(
        self, readings: Mapping[str, Reading], snapshot: Snapshot, *, grid_read: bool = True
    ) -> dict[str, Value]:
        """Apply counter integrity, night clamping and debouncing to raw readings."""
        # "today" counters reset at the gateway's midnight: local time (TZ) is taken as its zone
        day = snapshot.taken_at.astimezone().date().isoformat()
        day_changed = self._day is not None and day != self._day
        self._day = day
        out: dict[str, Value] = {}
        for path, reading in readings.items():
            value = reading.value
            metric = reading.entity.metric
            if (
                self.options.clamp_negative_production
                and metric.key in ("production_power", "power")
                and isinstance(value, int | float)
                and value < 0
            ):
                value = 0
            if metric.is_counter and isinstance(value, int | float):
                value = self.counters.check(
                    path, value, daily=metric.daily, day_changed=day_changed
                )
            if path == GRID:
                if grid_read or self._grid is None:
                    self._grid = self.debounce.feed(path, value)
                value = self._grid
            out[path] = value
        return out

    def _publish_summary(self, values: Mapping[str, Value]) -> int:
        payload = summary_json(values)
        if payload is None:
            return 0
        if payload != self._summary:
            self._summary_pending = payload
        now = self.clock()
        if self._summary_pending is None or now - self._summary_at < self.options.summary_interval:
            return 0
        self._summary, self._summary_pending, self._summary_at = payload, None, now
        self.link.publish(self.topics.summary(self.info.serial), payload, retain=True)
        return 1

    @property
    def grid_unconfirmed(self) -> bool:
        """A changed grid status was read and awaits its confirming read (the debounce)."""
        return self.debounce.pending(GRID)

    # -- availability and discovery -----------------------------------------------------------

    def set_available(self, available: bool) -> None:
        """Publish the gateway's availability when it changes."""
        if available == self.available:
            return
        self.available = available
        self.link.publish(
            self.topics.availability(self.info.serial),
            ONLINE if available else OFFLINE,
            retain=True,
            qos=1,
            urgent=True,
        )

    def _discover(self, readings: Mapping[str, Reading]) -> int:
        current = {path: r.entity for path, r in readings.items()}
        if current.keys() == self._entities.keys():
            return 0
        self._entities = current
        return self._apply(self._messages(current.values()))

    def _messages(self, entities: Iterable[Entity]) -> list[DiscoveryMessage]:
        if self.options.discovery_mode == "device":
            return device_configs(self.topics, self.info, entities, self.name)
        return entity_configs(self.topics, self.info, entities, self.name)

    def _apply(self, messages: list[DiscoveryMessage]) -> int:
        """Publish configs, and remove the ones published before that are no longer wanted."""
        wanted = {m.topic for m in messages}
        stale = sorted(self._discovered - wanted)
        for topic in stale:
            self.link.publish(topic, b"", retain=True, qos=1)
        for message in messages:
            self.link.publish(message.topic, json.dumps(message.payload), retain=True, qos=1)
        self._discovered = wanted
        return len(stale) + len(messages)

    def adopt_discovery(self, topics: Iterable[str]) -> None:
        """Treat configs from an earlier run as published, so stale ones get removed."""
        self._discovered |= set(topics)

    @property
    def discovery_topics(self) -> set[str]:
        """Discovery config topics currently published."""
        return set(self._discovered)

    def republish(self) -> int:
        """After a reconnect or Home Assistant's birth: discovery, availability, then states."""
        sent = 0
        if self.options.discovery and self._entities:
            sent += self._apply(self._messages(self._entities.values()))
        if self.available is not None:
            self.link.publish(
                self.topics.availability(self.info.serial),
                ONLINE if self.available else OFFLINE,
                retain=True,
                qos=1,
            )
            sent += 1
        for path, value in self.changes.current().items():
            self.link.publish(
                self.topics.state(self.info.serial, path), format_value(value), retain=True
            )
            sent += 1
        if self._summary is not None:
            self.link.publish(self.topics.summary(self.info.serial), self._summary, retain=True)
            sent += 1
        return sent
