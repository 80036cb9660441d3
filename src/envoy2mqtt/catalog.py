"""Every metric the bridge publishes, described as data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from pyenphase.models.envoy import EnvoyData
from pyenphase.models.inverter import EnvoyInverter

from envoy2mqtt.metric import (
    DIAGNOSTIC,
    ENERGY,
    MEASUREMENT,
    POWER,
    TOTAL_INCREASING,
    WH,
    Device,
    Family,
    GatewayMetrics,
    Metric,
    Reading,
    Source,
    Value,
    W,
    clean,
)

from envoy2mqtt.snapshot import Snapshot, grid_status

Reader = Callable[[Snapshot], Value | None]


def attribute(part: Callable[[EnvoyData], object | None], name: str) -> Reader:
    """A reader for one attribute of one part of pyenphase's data (absent part: no value)."""

    def read(snap: Snapshot) -> Value | None:
        obj = part(snap.data)
        return clean(getattr(obj, name, None)) if obj is not None else None

    return read


def _production(name: str) -> Reader:
    return attribute(lambda d: d.system_production, name)


def _consumption(name: str) -> Reader:
    return attribute(lambda d: d.system_consumption, name)


def _net_watts(snap: Snapshot) -> int | None:
    net = snap.data.system_net_consumption
    return net.watts_now if net is not None else None


def _import_watts(snap: Snapshot) -> int | None:
    net = _net_watts(snap)
    return max(net, 0) if net is not None else None


def _export_watts(snap: Snapshot) -> int | None:
    net = _net_watts(snap)
    return max(-net, 0) if net is not None else None


def _grid(snap: Snapshot) -> str | None:
    status = grid_status(snap.data)
    return status.value if status is not None else None


def _battery_soc(snap: Snapshot) -> int | None:
    data = snap.data
    if data.battery_aggregate is not None:
        return data.battery_aggregate.state_of_charge
    if data.encharge_aggregate is not None:
        return data.encharge_aggregate.state_of_charge
    if data.acb_power is not None:
        return data.acb_power.state_of_charge
    return None


def _battery_watts(snap: Snapshot) -> int | None:
    """Battery power, positive while discharging (the sign of a storage CT)."""
    data = snap.data
    if data.encharge_power:
        return round(sum(unit.real_power_mw for unit in data.encharge_power.values()) / 1000)
    if data.acb_power is not None:
        return data.acb_power.power
    return None


GATEWAY: Source = GatewayMetrics(
    (
        Metric(
            key="production_power",
            name="Production power",
            read=_production("watts_now"),
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=5,
        ),
        Metric(
            key="production_energy_today",
            name="Production energy today",
            read=_production("watt_hours_today"),
            unit=WH,
            device_class=ENERGY,
            state_class=TOTAL_INCREASING,
        ),
        Metric(
            key="production_energy_lifetime",
            name="Production energy lifetime",
            read=_production("watt_hours_lifetime"),
            unit=WH,
            device_class=ENERGY,
            state_class=TOTAL_INCREASING,
        ),
        Metric(
            key="consumption_power",
            name="Consumption power",
            read=_consumption("watts_now"),
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=5,
        ),
        Metric(
            key="consumption_energy_today",
            name="Consumption energy today",
            read=_consumption("watt_hours_today"),
            unit=WH,
            device_class=ENERGY,
            state_class=TOTAL_INCREASING,
        ),
        Metric(
            key="consumption_energy_lifetime",
            name="Consumption energy lifetime",
            read=_consumption("watt_hours_lifetime"),
            unit=WH,
            device_class=ENERGY,
            state_class=TOTAL_INCREASING,
        ),
        Metric(
            key="net_power",
            name="Net power",
            read=_net_watts,
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=5,
        ),
        Metric(
            key="grid_import_power",
            name="Grid import power",
            read=_import_watts,
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=5,
        ),
        Metric(
            key="grid_export_power",
            name="Grid export power",
            read=_export_watts,
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=5,
        ),
        Metric(
            key="grid_status",
            name="Grid",
            read=_grid,
            component="binary_sensor",
            device_class=POWER,
            payload_on="on-grid",
            payload_off="off-grid",
            urgent=True,
        ),
        Metric(
            key="battery_soc",
            name="Battery state of charge",
            read=_battery_soc,
            unit="%",
            device_class="battery",
            state_class=MEASUREMENT,
            urgent=True,
        ),
        Metric(
            key="battery_power",
            name="Battery power",
            read=_battery_watts,
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            deadband=10,
        ),
        Metric(
            key="firmware",
            name="Firmware",
            read=lambda s: s.gateway.firmware,
            category=DIAGNOSTIC,
            icon="mdi:chip",
        ),
    )
)


def _inverters(snap: Snapshot) -> Mapping[str, EnvoyInverter]:
    return snap.data.inverters


def _describe_inverter(serial: str, _inverter: EnvoyInverter, _snap: Snapshot) -> Device:
    return Device(kind="inverter", id=serial, name=f"Inverter {serial}", model="Microinverter")


INVERTERS: Source = Family(
    kind="inverter",
    members=_inverters,
    describe=_describe_inverter,
    metrics=(
        Metric(
            key="power",
            name="Power",
            read=lambda inv: inv.last_report_watts,
            unit=W,
            device_class=POWER,
            state_class=MEASUREMENT,
            enabled=False,
        ),
        Metric(
            key="max_power",
            name="Maximum power",
            read=lambda inv: inv.max_report_watts,
            unit=W,
            device_class=POWER,
            category=DIAGNOSTIC,
            enabled=False,
        ),
    ),
)

SOURCES: tuple[Source, ...] = (GATEWAY, INVERTERS)


def readings(snapshot: Snapshot) -> Iterator[Reading]:
    """Every reading the catalog can take from a snapshot."""
    for source in SOURCES:
        yield from source.readings(snapshot)


def values(snapshot: Snapshot) -> dict[str, Reading]:
    """Readings keyed by topic path."""
    return {reading.entity.path: reading for reading in readings(snapshot)}


def empty_data() -> EnvoyData:
    """Gateway data with nothing in it (before the first successful read)."""
    return EnvoyData()
