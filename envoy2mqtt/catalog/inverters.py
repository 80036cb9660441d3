"""Microinverters: each one a device, with its readings and its inventory status."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyenphase.const import URL_INVENTORY
from pyenphase.models.inverter import EnvoyInverter

from envoy2mqtt.catalog.base import (
    CONNECTIVITY,
    CURRENT,
    ENERGY_COUNTER,
    FREQUENCY,
    PEAK_W,
    POWER_W,
    PROBLEM,
    RUNNING,
    TEMPERATURE,
    TEXT,
    TIMESTAMP,
    VOLTAGE,
    iso_time,
    on_off,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, by_id, device_id
from envoy2mqtt.catalog.status import has_problem, status_text
from envoy2mqtt.core.snapshot import Snapshot, Value


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """What /inventory.json says about one device (pyenphase keeps it only as raw JSON)."""

    part_number: str | None = None
    firmware: str | None = None
    producing: bool | None = None
    communicating: bool | None = None
    flags: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, device: Mapping[str, object]) -> InventoryEntry:
        """Read one device entry, keeping only values of the expected types."""
        flags = device.get("device_status")
        return cls(
            part_number=_text(device.get("part_num")),
            firmware=_text(device.get("img_pnum_running")),
            producing=_flag(device.get("producing")),
            communicating=_flag(device.get("communicating")),
            flags=tuple(str(f) for f in flags) if isinstance(flags, list) else None,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def inventory(raw: Mapping[str, object], kind: str = "PCU") -> dict[str, InventoryEntry]:
    """Devices of one type in the raw /inventory.json, keyed by serial number."""
    out: dict[str, InventoryEntry] = {}
    groups = raw.get(URL_INVENTORY)
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict) or group.get("type") != kind:
            continue
        devices = group.get("devices")
        for device in devices if isinstance(devices, list) else []:
            if isinstance(device, dict) and (serial := device_id(_text(device.get("serial_num")))):
                out[serial] = InventoryEntry.from_json(device)
    return out


@dataclass(frozen=True, slots=True)
class Inverter:
    """One microinverter: pyenphase's reading and, where read, its inventory entry."""

    reading: EnvoyInverter
    entry: InventoryEntry | None = None


def _inverters(snap: Snapshot) -> Mapping[str, Inverter]:
    """Microinverters; AC Batteries that pyenphase lists among them are devices of their own."""
    entries = inventory(snap.data.raw)
    batteries = by_id(snap.data.acb_inventory)
    return {
        serial: Inverter(reading, entries.get(serial))
        for serial, reading in by_id(snap.data.inverters).items()
        if serial not in batteries
    }


def _describe(serial: str, inverter: Inverter, _snap: Snapshot) -> Device:
    entry = inverter.entry
    return Device(
        kind="inverter",
        id=serial,
        name=f"Inverter {serial}",
        model=(entry.part_number if entry else None) or "Microinverter",
        sw_version=entry.firmware if entry else None,
    )


def _read(name: str) -> Callable[[Inverter], Value | None]:
    return part_attribute(lambda inverter: inverter.reading, name)


def _entry(read: Callable[[InventoryEntry], object]) -> Callable[[Inverter], Value | None]:
    def from_entry(inverter: Inverter) -> Value | None:
        value = read(inverter.entry) if inverter.entry is not None else None
        return value if isinstance(value, int | float | str) else None

    return from_entry


INVERTERS = Family(
    kind="inverter",
    members=_inverters,
    inputs=("inverters", "raw", "acb_inventory"),
    describe=_describe,
    metrics=(
        POWER_W(
            "power",
            "Power",
            _read("last_report_watts"),
            "Power at its last report (every 5 minutes)",
            enabled=False,
            clamp_negative=True,
        ),
        PEAK_W(
            "max_power",
            "Maximum power",
            _read("max_report_watts"),
            "Highest power it has reported",
            enabled=False,
        ),
        TIMESTAMP(
            "last_report",
            "Last report",
            lambda inverter: iso_time(inverter.reading.last_report_date),
            "When it last reported",
            enabled=False,
        ),
        VOLTAGE("dc_voltage", "DC voltage", _read("dc_voltage"), "Panel voltage", enabled=False),
        CURRENT("dc_current", "DC current", _read("dc_current"), "Panel current", enabled=False),
        VOLTAGE("ac_voltage", "AC voltage", _read("ac_voltage"), "Grid voltage", enabled=False),
        CURRENT("ac_current", "AC current", _read("ac_current"), "Output current", enabled=False),
        FREQUENCY(
            "ac_frequency", "AC frequency", _read("ac_frequency"), "Grid frequency", enabled=False
        ),
        TEMPERATURE(
            "temperature", "Temperature", _read("temperature"), "Its temperature", enabled=False
        ),
        ENERGY_COUNTER(
            "lifetime_energy",
            "Lifetime energy",
            _read("lifetime_energy"),
            "Energy produced since installation",
            enabled=False,
        ),
        ENERGY_COUNTER(
            "energy_today",
            "Energy today",
            _read("energy_today"),
            "Energy produced since midnight",
            enabled=False,
            daily=True,
        ),
        RUNNING(
            "producing",
            "Producing",
            _entry(lambda entry: on_off(entry.producing)),
            "Whether it is producing (inventory)",
            enabled=False,
        ),
        CONNECTIVITY(
            "communicating",
            "Communicating",
            _entry(lambda entry: on_off(entry.communicating)),
            "Whether it talks to the gateway (inventory)",
            enabled=False,
        ),
        TEXT(
            "status",
            "Status",
            _entry(
                lambda entry: status_text(list(entry.flags)) if entry.flags is not None else None
            ),
            "Its status flags in plain English, e.g. 'DC Power Too Low'",
            enabled=False,
            category=DIAGNOSTIC,
        ),
        PROBLEM(
            "problem",
            "Problem",
            _entry(
                lambda entry: (
                    on_off(has_problem(list(entry.flags or ())))
                    if entry.flags is not None
                    else None
                )
            ),
            "on when a status flag reports a fault",
            enabled=False,
        ),
    ),
)
