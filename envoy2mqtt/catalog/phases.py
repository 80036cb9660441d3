"""Whole-system production, consumption and net values per phase (L1-L3), where reported."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog.base import (
    ENERGY_COUNTER,
    ENERGY_NET,
    ENERGY_WINDOW,
    PHASES,
    POWER_W,
    Shape,
    phase_attribute,
)
from envoy2mqtt.catalog.metric import GatewayMetrics, Metric
from envoy2mqtt.core.snapshot import Snapshot

Part = Callable[[EnvoyData], Mapping[str, object | None] | None]

# (part, key prefix, name prefix, what it measures)
PARTS: Final[tuple[tuple[Part, str, str, str], ...]] = (
    (lambda d: d.system_production_phases, "production", "Production", "solar production"),
    (lambda d: d.system_consumption_phases, "consumption", "Consumption", "consumption"),
    (lambda d: d.system_net_consumption_phases, "net", "Net", "grid (+ import, - export)"),
)

# (shape, key suffix, name suffix, pyenphase attribute, which parts have it, daily)
QUANTITIES: Final[tuple[tuple[Shape, str, str, str, frozenset[str], bool], ...]] = (
    (
        POWER_W,
        "power",
        "power",
        "watts_now",
        frozenset({"production", "consumption", "net"}),
        False,
    ),
    (
        ENERGY_COUNTER,
        "energy_today",
        "energy today",
        "watt_hours_today",
        frozenset({"production", "consumption"}),
        True,
    ),
    (
        ENERGY_WINDOW,
        "energy_last_7_days",
        "energy last 7 days",
        "watt_hours_last_7_days",
        frozenset({"production", "consumption"}),
        False,
    ),
    (
        ENERGY_COUNTER,
        "energy_lifetime",
        "energy lifetime",
        "watt_hours_lifetime",
        frozenset({"production", "consumption"}),
        False,
    ),
    (
        ENERGY_NET,
        "energy_lifetime",
        "energy lifetime",
        "watt_hours_lifetime",
        frozenset({"net"}),
        False,
    ),
)


def _metrics() -> tuple[Metric[Snapshot], ...]:
    return tuple(
        shape(
            f"{prefix}_{suffix}_{phase.lower()}",
            f"{label} {name} {phase}",
            phase_attribute(part, phase, attr),
            f"{what.capitalize()}: {name}, phase {phase}",
            enabled=False,
            daily=daily,
            clamp_negative=prefix == "production" and suffix == "power",
        )
        for part, prefix, label, what in PARTS
        for shape, suffix, name, attr, parts, daily in QUANTITIES
        if prefix in parts
        for phase in PHASES
    )


PHASE_METRICS = GatewayMetrics(
    _metrics(),
    inputs=(
        "system_production_phases",
        "system_consumption_phases",
        "system_net_consumption_phases",
    ),
)
