"""Building blocks of the catalog: readers of pyenphase's data and the shapes metrics take."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, TypeVar

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog.metric import (
    CELSIUS,
    DIAGNOSTIC,
    ENERGY,
    ENERGY_STORAGE,
    HZ,
    MEASUREMENT,
    PCT,
    POWER,
    TOTAL_INCREASING,
    VA,
    WH,
    A,
    GatewayMetrics,
    Inputs,
    Metric,
    Reading,
    V,
    W,
    clean,
)
from envoy2mqtt.core.snapshot import Snapshot, Value

T = TypeVar("T")

Reader = Callable[[Snapshot], Value | None]

ON: Final = "on"
OFF: Final = "off"
PHASES: Final = ("L1", "L2", "L3")
TOTAL: Final = "total"  # a counter that may go down (net energy): never total_increasing


def part_attribute(part: Callable[[T], object | None], name: str) -> Callable[[T], Value | None]:
    """A reader for one attribute of one part of a source (absent part: no value)."""

    def read(source: T) -> Value | None:
        obj = part(source)
        return clean(getattr(obj, name, None)) if obj is not None else None

    return read


def attribute(part: Callable[[EnvoyData], object | None], name: str) -> Reader:
    """A reader for one attribute of one part of pyenphase's data (absent part: no value)."""
    return part_attribute(lambda snap: part(snap.data), name)


def phase_attribute(
    part: Callable[[EnvoyData], Mapping[str, object | None] | None], phase: str, name: str
) -> Reader:
    """A reader for one attribute of one phase of a per-phase part of pyenphase's data."""
    return attribute(lambda data: (part(data) or {}).get(phase), name)


def on_off(value: object) -> str | None:
    """A boolean as the word a binary sensor expects (None stays absent)."""
    if value is None:
        return None
    return ON if value else OFF


LAST_EPOCH: Final = 253_402_300_799  # 9999-12-31T23:59:59Z: the last second datetime has


def iso_time(epoch: object) -> str | None:
    """Seconds since the epoch (int or numeric text) as an ISO 8601 UTC timestamp.

    The one reader of every epoch the gateway reports: anything that is not a moment after
    1970 and before the year 10000 (NaN, infinities, negative, zero, absurd) is no value.
    """
    if epoch is None or isinstance(epoch, bool):
        return None
    try:
        seconds = float(epoch)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds) or not 0 < seconds <= LAST_EPOCH:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def celsius_from_fahrenheit(value: object) -> float | None:
    """Degrees Fahrenheit (the Enpower reports those) in degrees Celsius."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round((value - 32) * 5 / 9, 1)


def joined(words: object) -> str | None:
    """A list of words as one comma-separated value; an empty list reads "none"."""
    if not isinstance(words, list | tuple):
        return None
    return ", ".join(str(word) for word in words) or "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What metrics of one kind share: unit, Home Assistant classes, default deadband."""

    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    component: str = "sensor"
    category: str | None = None
    deadband: float = 0.0
    precision: int | None = None
    payload_on: str | None = None
    payload_off: str | None = None
    pace: str | None = None  # see Metric.pace: how often a state of this kind may move

    def __call__(
        self,
        key: str,
        name: str,
        read: Callable[[T], Value | None],
        description: str,
        *,
        enabled: bool = True,
        category: str | None = None,
        urgent: bool = False,
        daily: bool = False,
        icon: str | None = None,
        options: tuple[str, ...] = (),
        clamp_negative: bool = False,
        event: str | None = None,
        in_context: bool = False,
        summary: str | None = None,
        holds: str | None = None,
        smoothed: str | None = None,
        code: str | None = None,
    ) -> Metric[T]:
        """A metric of this shape."""
        return Metric(
            key=key,
            name=name,
            read=read,
            unit=self.unit,
            device_class=self.device_class,
            state_class=self.state_class,
            component=self.component,
            category=category or self.category,
            enabled=enabled,
            urgent=urgent,
            deadband=self.deadband,
            precision=self.precision,
            icon=icon,
            payload_on=self.payload_on,
            payload_off=self.payload_off,
            options=options,
            description=description,
            daily=daily,
            clamp_negative=clamp_negative,
            event=event,
            in_context=in_context,
            summary=summary,
            pace=self.pace,
            holds=holds,
            smoothed=smoothed,
            code=code,
        )


def renamed(metric: Metric[T], was: str) -> Metric[T]:
    """`metric`, formerly `was`: its entity keeps `was`'s unique id, and `was`'s topic carries
    the same value until the next release."""
    return replace(metric, deprecated_names=(was,), unique_key=was)


POWER_W: Final = Shape(
    unit=W, device_class=POWER, state_class=MEASUREMENT, deadband=5, pace="power"
)
PEAK_W: Final = Shape(unit=W, device_class=POWER, category=DIAGNOSTIC)
APPARENT_VA: Final = Shape(
    unit=VA, device_class="apparent_power", state_class=MEASUREMENT, pace="power"
)
ENERGY_COUNTER: Final = Shape(
    unit=WH, device_class=ENERGY, state_class=TOTAL_INCREASING, pace="energy"
)
ENERGY_NET: Final = Shape(unit=WH, device_class=ENERGY, state_class=TOTAL, pace="energy")
ENERGY_WINDOW: Final = Shape(unit=WH, device_class=ENERGY, pace="energy")  # rolling: up and down
STORED_ENERGY: Final = Shape(
    unit=WH, device_class=ENERGY_STORAGE, state_class=MEASUREMENT, pace="energy"
)
VOLTAGE: Final = Shape(
    unit=V,
    device_class="voltage",
    state_class=MEASUREMENT,
    deadband=0.5,
    precision=1,
    pace="measurement",
)
CURRENT: Final = Shape(
    unit=A,
    device_class="current",
    state_class=MEASUREMENT,
    deadband=0.05,
    precision=2,
    pace="measurement",
)
FREQUENCY: Final = Shape(
    unit=HZ,
    device_class="frequency",
    state_class=MEASUREMENT,
    deadband=0.01,
    precision=2,
    pace="measurement",
)
POWER_FACTOR: Final = Shape(
    device_class="power_factor",
    state_class=MEASUREMENT,
    deadband=0.01,
    precision=2,
    pace="measurement",
)
TEMPERATURE: Final = Shape(
    unit=CELSIUS, device_class="temperature", state_class=MEASUREMENT, pace="measurement"
)
BATTERY_LEVEL: Final = Shape(
    unit=PCT, device_class="battery", state_class=MEASUREMENT, pace="measurement"
)
PERCENT_SETTING: Final = Shape(unit=PCT)
COUNT: Final = Shape(state_class=MEASUREMENT)
MINUTES: Final = Shape(unit="min", device_class="duration", category=DIAGNOSTIC)
TIMESTAMP: Final = Shape(device_class="timestamp", category=DIAGNOSTIC)
TEXT: Final = Shape()
ENUM: Final = Shape(device_class="enum")
FLAG: Final = Shape(component="binary_sensor", payload_on=ON, payload_off=OFF)
CONNECTIVITY: Final = Shape(
    component="binary_sensor",
    device_class="connectivity",
    category=DIAGNOSTIC,
    payload_on=ON,
    payload_off=OFF,
)
RUNNING: Final = Shape(
    component="binary_sensor", device_class="running", payload_on=ON, payload_off=OFF
)
PROBLEM: Final = Shape(
    component="binary_sensor", device_class="problem", payload_on=ON, payload_off=OFF
)
RELAY_STATES: Final = ("open", "closed")


@dataclass(frozen=True, slots=True)
class Gated:
    """Metrics that exist only while their equipment does (no batteries: no battery values)."""

    present: Callable[[EnvoyData], bool]
    source: GatewayMetrics

    @property
    def inputs(self) -> Inputs:
        """The inner source's inputs (which cover what `present` reads)."""
        return self.source.inputs

    def readings(self, snapshot: Snapshot, warned: set[str] | None = None) -> Iterator[Reading]:
        """The source's readings, or none when the equipment is absent."""
        if self.present(snapshot.data):
            yield from self.source.readings(snapshot, warned)
