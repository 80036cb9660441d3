"""Turns snapshots into MQTT messages: states, events, summary and discovery."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields

from envoy2mqtt.catalog.metric import Reading
from envoy2mqtt.catalog.reader import CatalogReader
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.changes import ChangeDetector, Hold
from envoy2mqtt.core.clock import Clock
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
from envoy2mqtt.settings import Settings

__all__ = [
    "OFFLINE",
    "ONLINE",
    "GatewayPublisher",
    "Link",
    "PublishOptions",
    "Settled",
    "format_value",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishOptions:
    """Publishing behaviour shared by every gateway: the settings of these names.

    `of(settings)` takes them from `Settings` by name, so there is no second list to keep in
    step; the defaults here are a plain publisher's (every change published at once), for
    tests and benchmarks, not the service's (those are Settings').
    """

    ha_discovery: bool = True
    ha_discovery_mode: str = "entity"  # or "device"
    heartbeat_interval: float = 300.0
    grid_debounce: int = 2
    soc_thresholds: Sequence[int] = (20, 10)
    summary_interval: float = 1.0
    clamp_negative_production: bool = True
    # minimum seconds between state publishes per Metric.pace (None: every change)
    state_interval_energy: float | None = None
    state_interval_power: float | None = None
    state_interval_measurement: float | None = None
    state_power_jump: float = 0.0  # a power moving this much is published at once all the same
    ha_compat: HaRelease = OLDEST  # the oldest Home Assistant the discovery payloads suit
    battery_state_dwell: float = BATTERY_DWELL_S  # a new battery state is believed after this
    battery_state_band: float = BATTERY_BAND_W  # ... and only this far from zero (idle within)
    runway_smoothing: float = RUNWAY_TAU_S  # the runway's averaging time constant (s)

    @classmethod
    def of(cls, settings: Settings) -> PublishOptions:
        """The settings of these names (the one list of what publishing reads)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    @property
    def state_intervals(self) -> dict[str, float]:
        """The minimum seconds between state publishes, per `Metric.pace` that has one."""
        paces = {
            "energy": self.state_interval_energy,
            "power": self.state_interval_power,
            "measurement": self.state_interval_measurement,
        }
        return {pace: seconds for pace, seconds in paces.items() if seconds is not None}


def format_value(value: Value) -> str:
    """A plain payload: integers as integers, floats compact, words as they are."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}" if abs(value) >= 1e6 else f"{round(value, 3)}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Settled:
    """One snapshot, settled: the values to publish and the events it raised."""

    values: Mapping[str, Value]
    events: tuple[Event, ...]
    announced: int = 0  # discovery configs already queued for entities that just appeared


@dataclass(slots=True)
class GatewayPublisher:
    """Everything one gateway publishes, with memory of what was published.

    The stages are its parts: the catalog reader, the settler (counters, clamping, debounce),
    change and event detection, the hold, the summary throttle and the discovery announcer;
    this class only runs them in order and sends what they decide.
    """

    link: Link
    topics: Topics
    info: GatewayInfo
    options: PublishOptions = field(default_factory=PublishOptions)
    name: str | None = None
    clock: Clock = field(default_factory=Clock)
    available: bool | None = None
    roles: Roles = field(default_factory=Roles)
    changes: ChangeDetector = field(init=False)
    held: Hold = field(init=False)
    catalog: CatalogReader = field(init=False)
    settler: Settler = field(init=False)
    events: EventDetector = field(init=False)
    summary: SummaryThrottle = field(init=False)
    announcer: Announcer = field(init=False)

    def __post_init__(self) -> None:
        opts = self.options
        self.changes = ChangeDetector(heartbeat=opts.heartbeat_interval)
        self.held = Hold(self.info.serial)
        self.catalog = CatalogReader(self.info.serial)
        self.settler = Settler(
            opts.grid_debounce,
            opts.clamp_negative_production,
            opts.battery_state_dwell,
            opts.battery_state_band,
            opts.runway_smoothing,
        )
        self.events = EventDetector(soc_thresholds=opts.soc_thresholds)
        self.summary = SummaryThrottle(opts.summary_interval)
        self.announcer = Announcer(
            self.link, self.topics, opts.ha_discovery_mode, self.name, oldest=opts.ha_compat
        )

    def publish_snapshot(self, snapshot: Snapshot, *, grid_read: bool = True) -> int:
        """Settle this snapshot and send what changed; how many messages were queued."""
        return self.send(self.settle(snapshot, grid_read=grid_read))

    def settle(
        self, snapshot: Snapshot, *, grid_read: bool = True, grid_vouched: bool = False
    ) -> Settled:
        """Read, settle and diff one snapshot: its values and events, nothing sent yet
        (but discovery for entities that just appeared, which must precede their states).

        `grid_read` says whether the snapshot holds a new reading of the grid status: the
        debounce counts readings, not snapshots (other lanes re-publish the same reading).
        `grid_vouched`: that reading is the relay's own transitional state, believed at once.
        """
        self.info = snapshot.gateway
        readings = self.catalog.readings(snapshot)
        announced = self._entities(readings)
        values = self.settler.settle(
            readings,
            self.roles,
            snapshot.taken_at,
            fresh_reads=grid_read,
            vouched=grid_vouched,
            zone=zone_named(self.info.timezone),
        )
        events = self.events.detect(values, snapshot.taken_at)
        return Settled(self.roles.with_deprecated(values), tuple(events), announced)

    def send(self, settled: Settled) -> int:
        """Queue a settled snapshot's events, changed states and summary; how many."""
        sent = settled.announced
        for event in settled.events:
            log.info("%s: %s %s -> %s", self.info.serial, event.type, event.before, event.after)
            self.link.publish_event(
                self.topics.event(self.info.serial), event.to_json(self.info.serial)
            )
            sent += 1
        roles = self.roles
        values = self.held.apply(settled.values, self.changes.last)
        for path, value in self.changes.diff(
            values, self.clock.monotonic(), roles.deadbands, roles.pacing
        ).items():
            urgent = path in roles.urgent
            self.link.publish(
                self.topics.state(self.info.serial, path),
                format_value(value),
                retain=True,
                urgent=urgent,
                qos=1 if urgent else 0,
            )
            sent += 1
        return sent + self._publish_summary(values)

    def hold(self, paths: Collection[str]) -> None:
        """Keep these values as last published in every `send` from now on, until a call
        without them: a change that goes back meanwhile is never sent, one still there then is.

        For a feature that knows a change may be false (the controls: a dry contact reads
        `open` for a while after a settings write); the snapshot's events are not held.
        """
        self.held.hold(paths)

    def _entities(self, readings: Mapping[str, Reading]) -> int:
        """Follow a changed set of entities: their roles, and their discovery configs."""
        current = {path: r.entity for path, r in readings.items()}
        if current.keys() == self.announcer.entities.keys():
            return 0
        opts = self.options
        self.roles = Roles.of(current.values(), opts.state_intervals, opts.state_power_jump)
        self.events.watch = self.roles.watch
        # one that comes back is published at once (an old name stays while its value does)
        self.changes.vanished({*current, *self.roles.deprecated_paths})
        self.announcer.follow(current)
        return self.announcer.announce(self.info) if self.options.ha_discovery else 0

    def _publish_summary(self, values: Mapping[str, Value]) -> int:
        payload = self.summary.due(summary_json(values, self.roles.summary), self.clock.monotonic())
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

    @property
    def discovery_topics(self) -> set[str]:
        """Discovery config topics currently published."""
        return self.announcer.published

    def announce_controls(self, messages: Sequence[DiscoveryMessage]) -> int:
        """The control entities' configs: published with the rest, those withdrawn removed."""
        self.announcer.controls = tuple(messages)
        return self.announcer.announce(self.info) if self.options.ha_discovery else 0

    def republish(self) -> int:
        """After a reconnect or Home Assistant's birth: discovery, availability, then states."""
        sent = 0
        if self.options.ha_discovery and self.announcer.entities:
            sent += self.announcer.announce(self.info)
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
