"""IQ Batteries (Encharge): each one a device of its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyenphase.models.encharge import EnvoyEncharge, EnvoyEnchargePower

from envoy2mqtt.catalog.base import (
    APPARENT_VA,
    BATTERY_LEVEL,
    CONNECTIVITY,
    COUNT,
    FLAG,
    POWER_W,
    RUNNING,
    STORED_ENERGY,
    TEMPERATURE,
    TEXT,
    TIMESTAMP,
    iso_time,
    on_off,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, by_id
from envoy2mqtt.catalog.status import state_text
from envoy2mqtt.core.snapshot import Snapshot, Value


@dataclass(frozen=True, slots=True)
class EnchargeUnit:
    """One IQ Battery: its inventory entry and its power reading, either may be missing."""

    inventory: EnvoyEncharge | None
    power: EnvoyEnchargePower | None


def _units(snap: Snapshot) -> Mapping[str, EnchargeUnit]:
    inventory = by_id(snap.data.encharge_inventory)
    power = by_id(snap.data.encharge_power)
    return {
        serial: EnchargeUnit(inventory.get(serial), power.get(serial))
        for serial in sorted({*inventory, *power})
    }


def _describe(serial: str, unit: EnchargeUnit, _snap: Snapshot) -> Device:
    inventory = unit.inventory
    return Device(
        kind="battery",
        id=serial,
        name=f"IQ Battery {serial}",
        model=inventory.part_number if inventory else "IQ Battery",
        sw_version=inventory.firmware_version if inventory else None,
    )


def _unit_soc(unit: EnchargeUnit) -> Value | None:
    if unit.power is not None:
        return unit.power.soc
    return unit.inventory.percent_full if unit.inventory is not None else None


def _inventory(name: str) -> Callable[[EnchargeUnit], Value | None]:
    return part_attribute(lambda unit: unit.inventory, name)


def _milli(name: str) -> Callable[[EnchargeUnit], Value | None]:
    def read(unit: EnchargeUnit) -> float | None:
        value = getattr(unit.power, name, None)
        return value / 1000 if isinstance(value, int | float) else None

    return read


BATTERIES = Family(
    kind="battery",
    members=_units,
    inputs=("encharge_inventory", "encharge_power"),
    describe=_describe,
    metrics=(
        BATTERY_LEVEL("soc", "State of charge", _unit_soc, "This battery's state of charge"),
        POWER_W(
            "real_power",
            "Power",
            _milli("real_power_mw"),
            "Positive discharging, negative charging",
        ),
        APPARENT_VA(
            "apparent_power",
            "Apparent power",
            _milli("apparent_power_mva"),
            "Apparent power through the battery's inverter",
            category=DIAGNOSTIC,
        ),
        TEMPERATURE("temperature", "Temperature", _inventory("temperature"), "Battery temperature"),
        TEMPERATURE(
            "max_cell_temperature",
            "Maximum cell temperature",
            _inventory("max_cell_temp"),
            "Warmest cell",
            category=DIAGNOSTIC,
        ),
        STORED_ENERGY(
            "capacity",
            "Capacity",
            _inventory("encharge_capacity"),
            "Rated capacity",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "status",
            "Status",
            lambda u: state_text(u.inventory.admin_state_str if u.inventory else None),
            "Administrative state in plain English (Ready, Charging, ...)",
            code="status_code",
        ),
        TEXT(
            "status_code",
            "Status code",
            _inventory("admin_state_str"),
            "Administrative state as reported (ENCHG_STATE_READY, ...)",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        CONNECTIVITY(
            "communicating",
            "Communicating",
            lambda u: on_off(u.inventory.communicating if u.inventory else None),
            "Whether the battery talks to the gateway",
        ),
        RUNNING(
            "operating",
            "Operating",
            lambda u: on_off(u.inventory.operating if u.inventory else None),
            "Whether the battery is operating (firmware before 8 only)",
        ),
        FLAG(
            "dc_switch",
            "DC switch",
            lambda u: on_off(not u.inventory.dc_switch_off if u.inventory else None),
            "on while the battery's DC switch is on",
            category=DIAGNOSTIC,
        ),
        COUNT(
            "led_status",
            "LED status",
            _inventory("led_status"),
            "The battery's LED status code",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        COUNT(
            "signal_sub_ghz",
            "Signal (sub-GHz)",
            _inventory("comm_level_sub_ghz"),
            "Radio link quality, 0-5",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        COUNT(
            "signal_2_4_ghz",
            "Signal (2.4 GHz)",
            _inventory("comm_level_2_4_ghz"),
            "Radio link quality, 0-5",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        TIMESTAMP(
            "last_report",
            "Last report",
            lambda u: iso_time(u.inventory.last_report_date if u.inventory else None),
            "When the battery last reported",
        ),
    ),
)
