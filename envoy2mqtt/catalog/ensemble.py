"""Backup equipment: IQ System Controller (Enpower), IQ Meter Collar, C6 Combiner Controller."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from pyenphase.models.c6combiner import EnvoyC6CC
from pyenphase.models.collar import EnvoyCollar
from pyenphase.models.enpower import EnvoyEnpower

from envoy2mqtt.catalog.base import (
    CONNECTIVITY,
    COUNT,
    RUNNING,
    TEMPERATURE,
    TEXT,
    TIMESTAMP,
    celsius_from_fahrenheit,
    iso_time,
    on_off,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, Metric, by_id
from envoy2mqtt.catalog.relays import DRY_CONTACTS, GENERATORS
from envoy2mqtt.catalog.status import state_text
from envoy2mqtt.core.snapshot import Snapshot, Value

__all__ = ["C6_COMBINERS", "COLLARS", "DRY_CONTACTS", "ENPOWERS", "GENERATORS"]


class _Equipment(Protocol):
    """What every Ensemble device in /ivp/ensemble/inventory reports."""

    @property
    def serial_number(self) -> str: ...
    @property
    def part_number(self) -> str: ...
    @property
    def firmware_version(self) -> str: ...
    @property
    def admin_state_str(self) -> str: ...
    @property
    def communicating(self) -> bool: ...
    @property
    def last_report_date(self) -> int: ...


E = TypeVar("E", bound=_Equipment)


def _field(name: str) -> Callable[[E], Value | None]:
    return part_attribute(lambda device: device, name)


def _relay(read: Callable[[E], object]) -> Callable[[E], Value | None]:
    def state(device: E) -> str | None:
        value = read(device)
        return value.lower() if isinstance(value, str) else None

    return state


def _common() -> tuple[Metric[E], ...]:
    """Status, link and last report: what every Ensemble device has."""
    return (
        TEXT(
            "status",
            "Status",
            lambda device: state_text(device.admin_state_str),
            "Administrative state in plain English (Closed, Ready, ...)",
            category=DIAGNOSTIC,
            code="status_code",
        ),
        TEXT(
            "status_code",
            "Status code",
            _field("admin_state_str"),
            "Administrative state as reported (ENPWR_STATE_OPER_CLOSED, ...)",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        CONNECTIVITY(
            "communicating",
            "Communicating",
            lambda device: on_off(device.communicating),
            "Whether it talks to the gateway",
        ),
        TIMESTAMP(
            "last_report",
            "Last report",
            lambda device: iso_time(device.last_report_date),
            "When it last reported",
        ),
    )


def _describe(kind: str, label: str) -> Callable[[str, E, Snapshot], Device]:
    def describe(serial: str, device: E, _snap: Snapshot) -> Device:
        return Device(
            kind=kind,
            id=serial,
            name=f"{label} {serial}",
            model=device.part_number or label,
            sw_version=device.firmware_version or None,
        )

    return describe


def _one(device: E | None) -> Mapping[str, E]:
    """The device keyed by its serial number; none without one (see `metric.device_id`)."""
    return by_id({device.serial_number: device}) if device is not None else {}


ENPOWERS: Family[EnvoyEnpower] = Family(
    kind="enpower",
    members=lambda snap: _one(snap.data.enpower),
    inputs=("enpower",),
    describe=_describe("enpower", "IQ System Controller"),
    metrics=(
        # plain text, not an enum: Home Assistant refuses an enum state outside its options,
        # and the field reports more than open/closed (`open synchronizing`, ...)
        TEXT(
            "grid_relay",
            "Grid relay",
            _relay(lambda enpower: enpower.mains_oper_state),
            "The grid relay's position as reported: closed = on grid, open ... "
            "(`open synchronizing`, `open synchronized`) = off grid",
            urgent=True,
        ),
        TEXT(
            "grid_relay_commanded",
            "Grid relay commanded",
            _relay(lambda enpower: enpower.mains_admin_state),
            "The position the grid relay was told to take, as reported",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "grid_mode",
            "Grid mode",
            _field("grid_mode"),
            "Enpwr_grid_mode as reported (lags during an outage: use grid_relay)",
            category=DIAGNOSTIC,
        ),
        TEMPERATURE(
            "temperature",
            "Temperature",
            lambda enpower: celsius_from_fahrenheit(enpower.temperature),
            "Its temperature (reported in °F, published in °C)",
        ),
        RUNNING(
            "operating",
            "Operating",
            lambda enpower: on_off(enpower.operating),
            "Whether it is operating (firmware before 8 only)",
        ),
        COUNT(
            "signal_sub_ghz",
            "Signal (sub-GHz)",
            _field("comm_level_sub_ghz"),
            "Radio link quality, 0-5",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        COUNT(
            "signal_2_4_ghz",
            "Signal (2.4 GHz)",
            _field("comm_level_2_4_ghz"),
            "Radio link quality, 0-5",
            category=DIAGNOSTIC,
            enabled=False,
        ),
        *_common(),
    ),
)

COLLARS: Family[EnvoyCollar] = Family(
    kind="collar",
    members=lambda snap: _one(snap.data.collar),
    inputs=("collar",),
    describe=_describe("collar", "IQ Meter Collar"),
    metrics=(
        TEXT(
            "grid_state",
            "Grid state",
            _field("grid_state"),
            "on_grid / off_grid (or a variant such as on-grid), as reported",
        ),
        TEXT("mid_state", "MID state", _field("mid_state"), "Microgrid interconnect device state"),
        TEXT("collar_state", "Collar state", _field("collar_state"), "The collar's own state"),
        COUNT(
            "control_error",
            "Control error",
            _field("control_error"),
            "Control error code (0 = none)",
            category=DIAGNOSTIC,
        ),
        TEMPERATURE("temperature", "Temperature", _field("temperature"), "Its temperature"),
        *_common(),
    ),
)

C6_COMBINERS: Family[EnvoyC6CC] = Family(
    kind="c6cc",
    members=lambda snap: _one(snap.data.c6cc),
    inputs=("c6cc",),
    describe=_describe("c6cc", "C6 Combiner Controller"),
    metrics=(
        TEXT(
            "dmir_version",
            "DMIR version",
            _field("dmir_version"),
            "Its DMIR version",
            category=DIAGNOSTIC,
        ),
        *_common(),
    ),
)
