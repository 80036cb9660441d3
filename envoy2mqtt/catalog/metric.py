"""What a metric is: the description the catalog is made of, shared by topics and discovery."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from envoy2mqtt.core.naming import sanitize
from envoy2mqtt.core.snapshot import Snapshot, Value

T = TypeVar("T")
K = TypeVar("K")
log = logging.getLogger(__name__)

W: Final = "W"
WH: Final = "Wh"
V: Final = "V"
A: Final = "A"
HZ: Final = "Hz"
PCT: Final = "%"
VA: Final = "VA"
CELSIUS: Final = "°C"

POWER: Final = "power"
ENERGY: Final = "energy"
ENERGY_STORAGE: Final = "energy_storage"
MEASUREMENT: Final = "measurement"
TOTAL_INCREASING: Final = "total_increasing"
DIAGNOSTIC: Final = "diagnostic"


@dataclass(frozen=True, kw_only=True, slots=True)
class Metric(Generic[T]):
    """One published value: how to read it from its source and how to describe it."""

    key: str  # stable: it is in topics and unique ids
    name: str
    read: Callable[[T], Value | None]
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    component: str = "sensor"
    category: str | None = None
    enabled: bool = True
    urgent: bool = False
    deadband: float = 0.0
    precision: int | None = None
    icon: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None
    options: tuple[str, ...] = ()
    description: str = ""  # what the value means, for the topic reference
    daily: bool = False  # a "today" counter: a drop after midnight is a new day, not a glitch
    clamp_negative: bool = False  # production: a few negative watts at night read as 0
    debounced: bool = False  # believed only after GRID_DEBOUNCE reads in a row (grid status)
    event: str | None = None  # the event type a change of this value raises
    in_context: bool = False  # carried in every event's context
    summary: str | None = None  # its short key in the summary for small displays
    pace: str | None = None  # "energy", "power" or "measurement": how often its state may move
    holds: str | None = None  # a battery state held by dwell and band over this power's path
    smoothed: str | None = None  # a runway over this load's average (core.steady.Runway)
    code: str | None = None  # a sibling metric's key holding the raw code (an HA attribute)
    # keys it had before a rename: their topics carry the same value until the next release
    # (not announced to Home Assistant: one entity per value)
    deprecated_names: tuple[str, ...] = ()
    # the key its Home Assistant unique id (and config topic) is made of, where not `key`: a
    # renamed value's entity keeps its id, so users' entity ids and history stay
    unique_key: str | None = None

    @property
    def is_counter(self) -> bool:
        """True for values that must never go backwards (energy dashboards)."""
        return self.state_class == TOTAL_INCREASING


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A device of its own behind the gateway (an inverter, a battery, a meter)."""

    kind: str
    id: str
    name: str
    model: str | None = None
    sw_version: str | None = None


@dataclass(frozen=True, slots=True)
class Entity:
    """A metric bound to its place: the gateway itself or one of its devices."""

    path: str  # topic suffix below the gateway, e.g. "production_power" or "inverter/1/power"
    metric: Metric[object]
    device: Device | None = None

    @property
    def unique_path(self) -> str:
        """The path its Home Assistant unique id and config topic are made of."""
        return beside(self.path, self.metric.unique_key or self.metric.key)

    @property
    def deprecated_paths(self) -> tuple[str, ...]:
        """The topic paths it was published under before a rename (until the next release)."""
        return tuple(beside(self.path, old) for old in self.metric.deprecated_names)


def beside(path: str, key: str) -> str:
    """The path of `key` on the same device as `path` (`inverter/1/x` -> `inverter/1/key`)."""
    parent = path.rpartition("/")[0]
    return f"{parent}/{key}" if parent else key


@dataclass(frozen=True, slots=True)
class Reading:
    """An entity and its current value."""

    entity: Entity
    value: Value


SNAPSHOT_PARTS: Final = ("gateway", "auth", "derived", "grid")
"""Parts of a snapshot beyond pyenphase's data that a source may read."""

Inputs = tuple[str, ...] | None
"""The parts of a snapshot a source reads: fields of pyenphase's `EnvoyData`, or one of
`SNAPSHOT_PARTS`. None: anything (the source is read on every publish)."""


class Source(Protocol):
    """Anything that yields readings from a snapshot."""

    @property
    def inputs(self) -> Inputs:
        """What the readings depend on: the same objects there, the same readings."""
        ...

    def readings(self, snapshot: Snapshot, warned: set[str] | None = None) -> Iterator[Reading]:
        """Yield every reading the snapshot has for this source (see `safe_read`)."""
        ...


def input_key(snapshot: Snapshot, inputs: tuple[str, ...]) -> tuple[object, ...]:
    """The objects a source's readings depend on, in `inputs` order."""
    return tuple(
        getattr(snapshot, name) if name in SNAPSHOT_PARTS else getattr(snapshot.data, name)
        for name in inputs
    )


def same_objects(old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    """Whether two input keys hold the very same objects (identity, not equality).

    The lanes replace what they read and keep every other part of the data as it was, so an
    unchanged object means unchanged readings; comparing by identity costs next to nothing.
    """
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    """Metrics of the gateway as a whole."""

    metrics: tuple[Metric[Snapshot], ...]
    inputs: Inputs = None

    def readings(self, snapshot: Snapshot, warned: set[str] | None = None) -> Iterator[Reading]:
        """Yield the metrics the gateway has data for."""
        for metric in self.metrics:
            value = safe_read(metric, snapshot, metric.key, warned)
            if value is not None:
                yield Reading(Entity(metric.key, metric), value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Family(Generic[T]):
    """Devices of one kind behind the gateway, and the metrics each of them has."""

    kind: str
    members: Callable[[Snapshot], Mapping[str, T]]
    describe: Callable[[str, T, Snapshot], Device]
    metrics: tuple[Metric[T], ...]
    inputs: Inputs = None

    def readings(self, snapshot: Snapshot, warned: set[str] | None = None) -> Iterator[Reading]:
        """Yield the metrics of every member device (one without an id is skipped)."""
        for raw_id, member in self.members(snapshot).items():
            member_id = device_id(raw_id)
            if member_id is None:
                continue
            device = self.describe(member_id, member, snapshot)
            base = f"{self.kind}/{sanitize(member_id)}"
            for metric in self.metrics:
                path = f"{base}/{metric.key}"
                value = safe_read(metric, member, path, warned)
                if value is not None:
                    yield Reading(Entity(path, metric, device), value)  # type: ignore[arg-type]


def device_id(raw: object) -> str | None:
    """A device's id (its serial number) as text; None, empty or blank: no id, no device.

    Gateways report devices with a null or empty serial number now and then; such a device
    cannot have a topic of its own, so it is skipped and its siblings still publish.
    """
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw).strip()
    return text or None


def by_id(members: Mapping[K, T] | None) -> dict[str, T]:
    """Devices keyed by their id as text, without those that have none (see `device_id`).

    Every family reads its members through this, so ids compare and sort as strings whatever
    the gateway sent (a None key among strings would break `sorted`). Where two keys read the
    same, the first wins.
    """
    out: dict[str, T] = {}
    for raw, member in (members or {}).items():
        key = device_id(raw)
        if key is not None:
            out.setdefault(key, member)
    return out


def safe_read(
    metric: Metric[T], source: T, path: str, warned: set[str] | None = None
) -> Value | None:
    """Read one metric; gateway garbage that breaks a reader means no value, not a crash.

    `warned` is the caller's memory of paths already reported, so each gateway says so once
    per entity; without one, the failure is only logged at debug level.
    """
    try:
        value = clean(metric.read(source))
        # a number where the gateway may send words: "unknown" for a while after a reboot
        # (field, firmware 8.3) is no value, never a state Home Assistant refuses
        numeric = metric.unit is not None or metric.state_class is not None
        return clean(float(value)) if isinstance(value, str) and numeric else value
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, ArithmeticError) as err:
        if warned is None:
            log.debug("cannot read %s from the gateway's data (%s): skipped", path, err)
        elif path not in warned:
            warned.add(path)
            log.warning("cannot read %s from the gateway's data (%s): skipped", path, err)
        return None


def clean(value: object) -> Value | None:
    """Accept only publishable values: finite numbers and non-empty words."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        return text if text and text.isprintable() else None
    return None
