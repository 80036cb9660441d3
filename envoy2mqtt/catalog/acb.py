"""AC Batteries (ACB): each one a device of its own, from the inventory and its reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyenphase.models.acb import ACBChargeStatus, ACBSleepState, EnvoyACB

from envoy2mqtt.catalog.base import (
    BATTERY_LEVEL,
    CONNECTIVITY,
    ENUM,
    FLAG,
    PEAK_W,
    PERCENT_SETTING,
    POWER_W,
    PROBLEM,
    RUNNING,
    TEMPERATURE,
    TEXT,
    TIMESTAMP,
    iso_time,
    on_off,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, by_id
from envoy2mqtt.catalog.status import has_problem, status_text
from envoy2mqtt.core.snapshot import Snapshot, Value


def _units(snap: Snapshot) -> Mapping[str, EnvoyACB]:
    return by_id(snap.data.acb_inventory)


def _describe(serial: str, unit: EnvoyACB, _snap: Snapshot) -> Device:
    return Device(kind="acb", id=serial, name=f"AC Battery {serial}", model=unit.part_num or None)


def _field(name: str) -> Callable[[EnvoyACB], Value | None]:
    return part_attribute(lambda unit: unit, name)


def _flag(name: str) -> Callable[[EnvoyACB], Value | None]:
    return lambda unit: on_off(getattr(unit, name))


ACB_UNITS = Family(
    kind="acb",
    members=_units,
    inputs=("acb_inventory",),
    describe=_describe,
    metrics=(
        BATTERY_LEVEL("soc", "State of charge", _field("percent_full"), "This battery's charge"),
        POWER_W(
            "real_power",
            "Power",
            _field("last_report_watts"),
            "Power at its last report (every 5 minutes)",
        ),
        PEAK_W("max_power", "Maximum power", _field("max_report_watts"), "Highest power reported"),
        ENUM(
            "charge_status",
            "Charge status",
            lambda unit: unit.charge_status.value,
            "Charge status, as reported",
            options=tuple(status.value for status in ACBChargeStatus),
        ),
        ENUM(
            "sleep_state",
            "Sleep state",
            lambda unit: unit.sleep_state.value,
            "Sleep state (from its flags and the sleep request)",
            options=tuple(state.value for state in ACBSleepState),
        ),
        FLAG(
            "sleep_enabled",
            "Sleep enabled",
            _flag("sleep_enabled"),
            "Whether sleep is requested",
            category=DIAGNOSTIC,
        ),
        PERCENT_SETTING(
            "sleep_min_soc",
            "Sleep minimum",
            _field("sleep_min_soc"),
            "Sleeps below this state of charge",
            category=DIAGNOSTIC,
        ),
        PERCENT_SETTING(
            "sleep_max_soc",
            "Sleep maximum",
            _field("sleep_max_soc"),
            "Wakes above this state of charge",
            category=DIAGNOSTIC,
        ),
        TEMPERATURE(
            "max_cell_temperature",
            "Maximum cell temperature",
            _field("max_cell_temp"),
            "Warmest cell",
        ),
        CONNECTIVITY(
            "communicating",
            "Communicating",
            _flag("communicating"),
            "Whether it talks to the gateway",
        ),
        RUNNING("operating", "Operating", _flag("operating"), "Whether it is operating"),
        RUNNING("producing", "Producing", _flag("producing"), "Whether it is producing"),
        TEXT(
            "status",
            "Status",
            lambda unit: status_text(unit.device_status),
            "Its status flags in plain English",
        ),
        PROBLEM(
            "problem",
            "Problem",
            lambda unit: on_off(has_problem(unit.device_status)),
            "on when a status flag reports a fault",
        ),
        TIMESTAMP(
            "last_report",
            "Last report",
            lambda unit: iso_time(unit.last_report_date),
            "When it last reported",
        ),
    ),
)
