"""Turns snapshots into MQTT messages: states, events, summary and discovery."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from envoy2mqtt.catalog.metric import Reading
from envoy2mqtt.catalog.reader import CatalogReader
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.changes import ChangeDetector
from envoy2mqtt.core.events import Event, EventDetector
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot, Value
from envoy2mqtt.core.steady import BATTERY_BAND_W, BATTERY_DWELL_S, RUNWAY_TAU_S
from envoy2mqtt.core.zones import zone_named
from envoy2mqtt.mqtt.announce import Announcer
from envoy2mqtt.mqtt.discovery import OLDEST, DiscoveryMessage, HaRelease
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.settle import Settler
from envoy2mqtt.mqtt.summary import SummaryThrottle, summary_json
from envoy2mqtt.mqtt.topics import OFFLINE, ONLINE, Topics

__all__ = ["OFFLINE", "ONLINE", "GatewayPublisher", "Link", "PublishOptions", "format_value"]

log = logging.getLogger(__name__)


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
    # minimum seconds between state publishes per Metric.pace (none: every change)
    state_intervals: Mapping[str, float] = field(default_factory=dict)
    power_jump: float = 0.0  # a power moving this much is published at once all the same
    ha_compat: HaRelease = OLDEST  # the oldest Home Assistant the discovery payloads suit
    battery_dwell: float = BATTERY_DWELL_S  # a new battery state is believed after this long
    battery_band: float = BATTERY_BAND_W  # ... and only this far from zero (idle within)
    runway_smoothing: float = RUNWAY_TAU_S  # the runway's averaging time constant (s)


def format_value(value: Value) -> str:
    """A plain payload: integers as integers, floats compact, words as they are."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}" if abs(value) >= 1e6 else f"{round(value, 3)}"
    return str(value)


@dataclass(slots=True)
class GatewayPublisher:
    """Everything one gateway publishes, with memory of what was published.

    The stages are its parts: the catalog reader, the settler (counters, clamping, debounce),
    change and event detection, the summary throttle and the discovery announcer; this class
    only runs them in order and sends what they decide.
    """

    link: Link
    topics: Topics
    info: GatewayInfo
    options: PublishOptions = field(default_factory=PublishOptions)
    name: str | None = None
    clock: Callable[[], float] = time.monotonic
    on_publish: Callable[[float], None] | None = None
    # every snapshot's events and settled values, before the events are queued: what it
    # publishes urgently (load shedding's commands) goes out ahead of them
    on_events: Callable[[Sequence[Event], Mapping[str, Value]], None] | None = None
    available: bool | None = None
    roles: Roles = field(default_factory=Roles)
    changes: ChangeDetector = field(init=False)
    catalog: CatalogReader = field(init=False)
    settler: Settler = field(init=False)
    events: EventDetector = field(init=False)
    summary: SummaryThrottle = field(init=False)
    announcer: Announcer = field(init=False)
    # the control entities' discovery configs (CONTROLS on; see control.discovery)
    controls: list[DiscoveryMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        opts = self.options
        self.changes = ChangeDetector(heartbeat=opts.heartbeat)
        self.catalog = CatalogReader(self.info.serial)
        self.settler = Settler(
            opts.grid_debounce,
            opts.clamp_negative_production,
            opts.battery_dwell,
            opts.battery_band,
            opts.runway_smoothing,
        )
        self.events = EventDetector(soc_thresholds=opts.soc_thresholds)
        self.summary = SummaryThrottle(opts.summary_interval)
        self.announcer = Announcer(
            self.link, self.topics, opts.discovery_mode, self.name, oldest=opts.ha_compat
        )

    def publish_snapshot(self, snapshot: Snapshot, *, grid_read: bool = True) -> int:
        """Publish what changed in this snapshot; return how many messages were queued.

        `grid_read` says whether the snapshot holds a new reading of the grid status: the
        debounce counts readings, not snapshots (other lanes re-publish the same reading).
        """
        started = time.perf_counter()
        self.info = snapshot.gateway
        readings = self.catalog.readings(snapshot)
        sent = self._entities(readings)
        values = self.settler.settle(
            readings,
            self.roles,
            snapshot.taken_at,
            fresh_reads=grid_read,
            zone=zone_named(self.info.timezone),
        )
        events = self.events.detect(values, snapshot.taken_at)
        if self.on_events is not None:
            self.on_events(events, values)
        for event in events:
            log.info("%s: %s %s -> %s", self.info.serial, event.type, event.before, event.after)
            self.link.publish_event(
                self.topics.event(self.info.serial), event.to_json(self.info.serial)
            )
            sent += 1
        roles = self.roles
        for path, value in self.changes.diff(
            values, self.clock(), roles.deadbands, roles.pacing
        ).items():
            urgent = path in self.roles.urgent
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

    def _entities(self, readings: Mapping[str, Reading]) -> int:
        """Follow a changed set of entities: their roles, and their discovery configs."""
        current = {path: r.entity for path, r in readings.items()}
        if current.keys() == self.announcer.entities.keys():
            return 0
        opts = self.options
        self.roles = Roles.of(current.values(), opts.state_intervals, opts.power_jump)
        self.events.watch = self.roles.watch
        self.changes.vanished(current)  # one that comes back is published at once
        self.announcer.entities = current
        return self.announcer.announce(self.info) if self.options.discovery else 0

    def _publish_summary(self, values: Mapping[str, Value]) -> int:
        payload = self.summary.due(summary_json(values, self.roles.summary), self.clock())
        if payload is None:
            return 0
        self.link.publish(self.topics.summary(self.info.serial), payload, retain=True)
        return 1

    @property
    def grid_unconfirmed(self) -> bool:
        """A changed grid status was read and awaits its confirming read (the debounce)."""
        return self.settler.unconfirmed(self.roles)

    def set_available(self, available: bool) -> None:
        """Publish the gateway's availability when it changes."""
        if available == self.available:
            return
        self.available = available
        self._send_availability(urgent=True)

    def _send_availability(self, *, urgent: bool = False) -> None:
        self.link.publish(
            self.topics.availability(self.info.serial),
            ONLINE if self.available else OFFLINE,
            retain=True,
            qos=1,
            urgent=urgent,
        )

    def adopt_discovery(self, topics: set[str]) -> None:
        """Treat configs from an earlier run as published, so stale ones get removed."""
        self.announcer.adopt(topics)

    @property
    def discovery_topics(self) -> set[str]:
        """Discovery config topics currently published."""
        controls = {m.topic for m in self.controls} if self.options.discovery else set()
        return self.announcer.published | controls

    def announce_controls(self, messages: Sequence[DiscoveryMessage]) -> int:
        """Publish the control entities' configs, removing those no longer offered."""
        gone = sorted({m.topic for m in self.controls} - {m.topic for m in messages})
        for topic in gone:
            self.link.publish(topic, b"", retain=True, qos=1)
        self.controls = list(messages)
        return len(gone) + self._send_controls()

    def _send_controls(self) -> int:
        if not self.options.discovery:
            return 0
        for message in self.controls:
            self.link.publish(message.topic, json.dumps(message.payload), retain=True, qos=1)
        return len(self.controls)

    def republish(self) -> int:
        """After a reconnect or Home Assistant's birth: discovery, availability, then states."""
        sent = 0
        if self.options.discovery and self.announcer.entities:
            sent += self.announcer.announce(self.info) + self._send_controls()
        if self.available is not None:
            self._send_availability()
            sent += 1
        for path, value in self.changes.current().items():
            self.link.publish(
                self.topics.state(self.info.serial, path), format_value(value), retain=True
            )
            sent += 1
        if self.summary.sent is not None:
            self.link.publish(self.topics.summary(self.info.serial), self.summary.sent, retain=True)
            sent += 1
        return sent
