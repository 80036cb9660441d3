"""CT meters: every current transformer the gateway lists, as a device, with its phases."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from pyenphase.models.meters import CtMeterStatus, CtType, EnvoyMeterData

from envoy2mqtt.catalog.base import (
    CURRENT,
    ENERGY_COUNTER,
    ENUM,
    FREQUENCY,
    PHASES,
    POWER_FACTOR,
    POWER_W,
    TEXT,
    VOLTAGE,
    Shape,
    joined,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, Metric, by_id
from envoy2mqtt.core.snapshot import Snapshot, Value

LABELS: Final[Mapping[str, str]] = {
    CtType.PRODUCTION: "Production",
    CtType.NET_CONSUMPTION: "Net consumption",
    CtType.TOTAL_CONSUMPTION: "Total consumption",
    CtType.STORAGE: "Storage",
    CtType.BACKFEED: "Backfeed",
    CtType.LOAD: "Load",
    CtType.EVSE: "EV charger",
    CtType.PV3P: "Third-party PV",
}


@dataclass(frozen=True, slots=True)
class CtMeter:
    """One CT: the reading over all its phases, and each phase's (any may be missing)."""

    reading: EnvoyMeterData | None
    phases: Mapping[str, EnvoyMeterData | None] = field(default_factory=dict)


def _meters(snap: Snapshot) -> Mapping[str, CtMeter]:
    totals, phases = by_id(snap.data.ctmeters), by_id(snap.data.ctmeters_phases)
    return {
        kind: CtMeter(totals.get(kind), phases.get(kind) or {})
        for kind in dict.fromkeys([*totals, *phases])
    }


def _describe(kind: str, _meter: CtMeter, _snap: Snapshot) -> Device:
    label = LABELS.get(kind, kind.replace("-", " ").capitalize())
    return Device(kind="ct", id=kind, name=f"{label} CT", model="Current transformer")


def _total(name: str) -> Callable[[CtMeter], Value | None]:
    return part_attribute(lambda meter: meter.reading, name)


def _phase(phase: str, name: str) -> Callable[[CtMeter], Value | None]:
    return part_attribute(lambda meter: meter.phases.get(phase), name)


# (shape, key, name, pyenphase attribute, meaning): what each CT and each phase of it has
QUANTITIES: Final[tuple[tuple[Shape, str, str, str, str], ...]] = (
    (
        POWER_W,
        "active_power",
        "Power",
        "active_power",
        "Power through the CT: positive delivering (grid import, production, battery "
        "discharge), negative receiving",
    ),
    (
        ENERGY_COUNTER,
        "energy_delivered",
        "Energy delivered",
        "energy_delivered",
        "Lifetime energy delivered (net CT: imported; storage CT: discharged)",
    ),
    (
        ENERGY_COUNTER,
        "energy_received",
        "Energy received",
        "energy_received",
        "Lifetime energy received (net CT: exported; storage CT: charged)",
    ),
    (VOLTAGE, "voltage", "Voltage", "voltage", "Voltage (the total is the sum of the phases)"),
    (CURRENT, "current", "Current", "current", "Current"),
    (FREQUENCY, "frequency", "Frequency", "frequency", "Grid frequency"),
    (POWER_FACTOR, "power_factor", "Power factor", "power_factor", "Power factor, -1 to 1"),
)


def _totals() -> tuple[Metric[CtMeter], ...]:
    return tuple(
        shape(key, name, _total(attr), meaning) for shape, key, name, attr, meaning in QUANTITIES
    )


def _phases() -> tuple[Metric[CtMeter], ...]:
    return tuple(
        shape(
            f"{key}_{phase.lower()}",
            f"{name} {phase}",
            _phase(phase, attr),
            f"{meaning}, phase {phase}",
            enabled=False,
        )
        for phase in PHASES
        for shape, key, name, attr, meaning in QUANTITIES
    )


METERS = Family(
    kind="ct",
    members=_meters,
    inputs=("ctmeters", "ctmeters_phases"),
    describe=_describe,
    metrics=(
        *_totals(),
        ENUM(
            "metering_status",
            "Metering status",
            lambda meter: meter.reading.metering_status if meter.reading else None,
            "Whether the CT measures properly",
            category=DIAGNOSTIC,
            options=tuple(status.value for status in CtMeterStatus),
        ),
        TEXT(
            "status_flags",
            "Status flags",
            lambda meter: joined(meter.reading.status_flags) if meter.reading else None,
            "The CT's status flags, e.g. negative-production ('none' when clear)",
            category=DIAGNOSTIC,
        ),
        *_phases(),
    ),
)
