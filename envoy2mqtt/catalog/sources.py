"""Every metric the bridge publishes, described as data.

The headline metrics of the whole system live here; the other parts of the catalog live in
the ``catalog_*`` modules, one per kind of equipment, and ``SOURCES`` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyenphase.models.meters import CtType

from envoy2mqtt.catalog.auth import AUTH
from envoy2mqtt.catalog.base import (
    ENERGY_COUNTER,
    ENERGY_NET,
    ENERGY_WINDOW,
    POWER_W,
    Reader,
    attribute,
)
from envoy2mqtt.catalog.battery import ACB_UNITS, BATTERIES, BATTERY
from envoy2mqtt.catalog.ensemble import C6_COMBINERS, COLLARS, DRY_CONTACTS, ENPOWERS, GENERATORS
from envoy2mqtt.catalog.gateway import DIAGNOSTICS
from envoy2mqtt.catalog.inverters import INVERTERS
from envoy2mqtt.catalog.meters import METERS
from envoy2mqtt.catalog.metric import POWER, GatewayMetrics, Metric, Reading, Source
from envoy2mqtt.catalog.phases import PHASE_METRICS
from envoy2mqtt.core.snapshot import GridStatus, Snapshot, grid_status

__all__ = [
    "GATEWAY",
    "INVERTERS",
    "SOURCES",
    "Reader",
    "attribute",
    "readings",
    "values",
]


def _production(name: str) -> Reader:
    return attribute(lambda d: d.system_production, name)


def _consumption(name: str) -> Reader:
    return attribute(lambda d: d.system_consumption, name)


def _net_ct(name: str) -> Reader:
    return attribute(lambda d: d.ctmeters.get(CtType.NET_CONSUMPTION), name)


def _net_watts(snap: Snapshot) -> int | None:
    """Grid power, + import / - export: the net CT (fresh, fast lane), else /production."""
    meter = snap.data.ctmeters.get(CtType.NET_CONSUMPTION)
    if meter is not None:
        return meter.active_power
    net = snap.data.system_net_consumption
    return net.watts_now if net is not None else None


def _import_watts(snap: Snapshot) -> int | None:
    net = _net_watts(snap)
    return max(net, 0) if net is not None else None


def _export_watts(snap: Snapshot) -> int | None:
    net = _net_watts(snap)
    return max(-net, 0) if net is not None else None


def _grid(snap: Snapshot) -> str | None:
    status = grid_status(snap.data) or snap.grid  # the early watch until the probe is done
    return status.value if status is not None else None


GATEWAY = GatewayMetrics(
    (
        POWER_W(
            "production_power",
            "Production power",
            _production("watts_now"),
            "Solar production now",
            clamp_negative=True,
            in_context=True,
            summary="pv",
        ),
        ENERGY_COUNTER(
            "production_energy_today",
            "Production energy today",
            _production("watt_hours_today"),
            "Solar energy produced since midnight",
            daily=True,
        ),
        ENERGY_WINDOW(
            "production_energy_last_7_days",
            "Production energy last 7 days",
            _production("watt_hours_last_7_days"),
            "Solar energy produced in the last 7 days (rolling, as the gateway counts it)",
        ),
        ENERGY_COUNTER(
            "production_energy_lifetime",
            "Production energy lifetime",
            _production("watt_hours_lifetime"),
            "Solar energy produced since installation",
        ),
        POWER_W(
            "consumption_power",
            "Consumption power",
            _consumption("watts_now"),
            "House consumption now (consumption CT)",
            in_context=True,
            summary="load",
        ),
        ENERGY_COUNTER(
            "consumption_energy_today",
            "Consumption energy today",
            _consumption("watt_hours_today"),
            "Energy consumed since midnight",
            daily=True,
        ),
        ENERGY_WINDOW(
            "consumption_energy_last_7_days",
            "Consumption energy last 7 days",
            _consumption("watt_hours_last_7_days"),
            "Energy consumed in the last 7 days (rolling, as the gateway counts it)",
        ),
        ENERGY_COUNTER(
            "consumption_energy_lifetime",
            "Consumption energy lifetime",
            _consumption("watt_hours_lifetime"),
            "Energy consumed since installation",
        ),
        POWER_W(
            "net_power",
            "Net power",
            _net_watts,
            "Grid power: positive importing, negative exporting",
            in_context=True,
            summary="net",
        ),
        ENERGY_NET(
            "net_energy_lifetime",
            "Net energy lifetime",
            attribute(lambda d: d.system_net_consumption, "watt_hours_lifetime"),
            "Lifetime imported minus exported energy (goes down while exporting)",
        ),
        POWER_W(
            "grid_import_power",
            "Grid import power",
            _import_watts,
            "Power drawn from the grid (0 while exporting)",
            summary="imp",
        ),
        POWER_W(
            "grid_export_power",
            "Grid export power",
            _export_watts,
            "Power fed into the grid (0 while importing)",
            summary="exp",
        ),
        ENERGY_COUNTER(
            "grid_import_energy",
            "Grid import energy",
            _net_ct("energy_delivered"),
            "Lifetime energy drawn from the grid (net-consumption CT)",
        ),
        ENERGY_COUNTER(
            "grid_export_energy",
            "Grid export energy",
            _net_ct("energy_received"),
            "Lifetime energy fed into the grid (net-consumption CT)",
        ),
        Metric(
            key="grid_status",
            name="Grid",
            read=_grid,
            component="binary_sensor",
            device_class=POWER,
            payload_on=GridStatus.ON_GRID.value,
            payload_off=GridStatus.OFF_GRID.value,
            urgent=True,
            debounced=True,
            event="grid",
            in_context=True,
            summary="grid",
            description="on-grid / off-grid, from the Enpower relay or the IQ Meter Collar",
        ),
    ),
    inputs=(
        "system_production",
        "system_consumption",
        "system_net_consumption",
        "ctmeters",
        "enpower",
        "collar",
        "grid",
    ),
)

SOURCES: tuple[Source, ...] = (
    GATEWAY,
    BATTERY,
    DIAGNOSTICS,
    AUTH,
    PHASE_METRICS,
    METERS,
    INVERTERS,
    BATTERIES,
    ACB_UNITS,
    ENPOWERS,
    COLLARS,
    C6_COMBINERS,
    DRY_CONTACTS,
    GENERATORS,
)


def readings(snapshot: Snapshot) -> Iterator[Reading]:
    """Every reading the catalog can take from a snapshot."""
    for source in SOURCES:
        yield from source.readings(snapshot)


def values(snapshot: Snapshot) -> dict[str, Reading]:
    """Readings keyed by topic path."""
    return {reading.entity.path: reading for reading in readings(snapshot)}
