"""Batteries as a whole: state of charge, power, energy, reserve and storage settings."""

from __future__ import annotations

from typing import Final

from pyenphase.models.meters import CtType

from envoy2mqtt.catalog.acb import ACB_UNITS
from envoy2mqtt.catalog.base import (
    BATTERY_LEVEL,
    COUNT,
    ENERGY_COUNTER,
    ENUM,
    FLAG,
    PERCENT_SETTING,
    POWER_W,
    STORED_ENERGY,
    TEXT,
    Gated,
    Reader,
    Shape,
    attribute,
    on_off,
    renamed,
)
from envoy2mqtt.catalog.derived import (
    BATTERY_CHARGED,
    BATTERY_DISCHARGED,
    RUNWAY_CAP_MIN,
    backup_runway,
    battery_watts,
    has_batteries,
    house_load_watts,
)
from envoy2mqtt.catalog.encharge import BATTERIES
from envoy2mqtt.catalog.metric import DIAGNOSTIC, GatewayMetrics
from envoy2mqtt.core.snapshot import (
    SCHEDULE_PATH,
    STORAGE_MODES,
    Snapshot,
    StorageSchedule,
    Value,
    storage_schedule,
)
from envoy2mqtt.core.steady import BATTERY_BAND_W, BATTERY_DWELL_S

__all__ = ["ACB_UNITS", "BATTERIES", "BATTERY", "BATTERY_STATES", "IDLE_WATTS", "battery_state"]

IDLE_WATTS: Final = 50  # below this either way a battery is idle (standby draw, CT noise)
BATTERY_STATES: Final = ("charging", "discharging", "idle")
RUNWAY: Final = Shape(unit="min", device_class="duration", deadband=1, pace="measurement")


def battery_state(watts: float | None) -> str | None:
    """What the batteries are doing, from their power (positive = discharging)."""
    if watts is None:
        return None
    if watts <= -IDLE_WATTS:
        return "charging"
    if watts >= IDLE_WATTS:
        return "discharging"
    return "idle"


def _first(*parts: tuple[object | None, str]) -> Value | None:
    """The named attribute of the first part that is present."""
    for part, name in parts:
        if part is not None:
            value: Value | None = getattr(part, name)
            return value
    return None


def _soc(snap: Snapshot) -> Value | None:
    d = snap.data
    return _first(
        (d.battery_aggregate, "state_of_charge"),
        (d.encharge_aggregate, "state_of_charge"),
        (d.acb_power, "state_of_charge"),
    )


def _available(snap: Snapshot) -> Value | None:
    d = snap.data
    return _first(
        (d.battery_aggregate, "available_energy"),
        (d.encharge_aggregate, "available_energy"),
        (d.acb_power, "charge_wh"),
    )


def _max_energy(snap: Snapshot) -> Value | None:
    d = snap.data
    return _first(
        (d.battery_aggregate, "max_available_capacity"),
        (d.encharge_aggregate, "max_available_capacity"),
    )


def _battery_energy(ct_name: str, derived_key: str) -> Reader:
    """Battery energy: the storage CT's counter where fitted, else the integrated one."""

    def read(snap: Snapshot) -> Value | None:
        meter = snap.data.ctmeters.get(CtType.STORAGE)
        if meter is not None:
            value: Value = getattr(meter, ct_name)
            return value
        return snap.derived.get(derived_key)

    return read


def _storage(name: str) -> Reader:
    return attribute(lambda d: d.tariff.storage_settings if d.tariff else None, name)


def _schedule(snap: Snapshot) -> StorageSchedule | None:
    """What the battery controller runs (/ivp/sc/sched), where the full reading has it."""
    return storage_schedule(snap.data.raw.get(SCHEDULE_PATH))


def _mode(snap: Snapshot) -> str | None:
    schedule = _schedule(snap)
    if schedule is not None:
        return schedule.mode
    settings = snap.data.tariff.storage_settings if snap.data.tariff else None
    return settings.mode.value if settings is not None and settings.mode is not None else None


def _charge_from_grid(snap: Snapshot) -> str | None:
    schedule = _schedule(snap)
    if schedule is not None and schedule.charge_from_grid is not None:
        return on_off(schedule.charge_from_grid)
    settings = snap.data.tariff.storage_settings if snap.data.tariff else None
    return on_off(settings.charge_from_grid) if settings is not None else None


def _encharge(name: str) -> Reader:
    return attribute(lambda d: d.encharge_aggregate, name)


def _acb(name: str) -> Reader:
    return attribute(lambda d: d.acb_power, name)


BATTERY = Gated(
    has_batteries,
    GatewayMetrics(
        (
            BATTERY_LEVEL(
                "battery_soc",
                "Battery state of charge",
                _soc,
                "All batteries together",
                urgent=True,
                event="battery_soc",
                in_context=True,
                summary="soc",
            ),
            POWER_W(
                "battery_power",
                "Battery power",
                lambda s: battery_watts(s.data),
                "Positive discharging, negative charging (storage CT where fitted)",
                in_context=True,
                summary="bat",
            ),
            ENUM(
                "battery_state",
                "Battery state",
                lambda s: battery_state(battery_watts(s.data)),
                "What the batteries are doing: idle within a band around zero (±"
                f"{BATTERY_BAND_W:.0f} W), a new state believed once it has held "
                f"{BATTERY_DWELL_S:.0f} s (BATTERY_STATE_BAND, BATTERY_STATE_DWELL)",
                urgent=True,
                holds="battery_power",
                options=BATTERY_STATES,
                event="battery",
                in_context=True,
            ),
            # plain text, not an enum: Home Assistant refuses an enum state outside its
            # options, and new profiles appear in the field ("AI Optimization", published as
            # the gateway names it)
            TEXT(
                "battery_mode",
                "Battery mode",
                _mode,
                "The mode the battery controller runs (" + " / ".join(STORAGE_MODES) + ", or "
                "a newer profile as the gateway names it): from /ivp/sc/sched where the gateway "
                "has it (firmware D8.3, whose tariff file is a stale copy), else from the "
                "tariff's storage settings",
                urgent=True,
                event="mode",
            ),
            STORED_ENERGY(
                "battery_available_energy",
                "Battery available energy",
                _available,
                "Energy stored now",
            ),
            STORED_ENERGY(
                "battery_max_energy",
                "Battery maximum energy",
                _max_energy,
                "Energy the batteries hold when full",
                category=DIAGNOSTIC,
            ),
            renamed(
                PERCENT_SETTING(
                    "reserve_soc",
                    "Battery reserve",
                    _encharge("configured_reserve_state_of_charge"),
                    "The reserve the battery controller runs (secctrl's configured reserve; "
                    "the `reserve_soc` control changes it). Until the next release also on "
                    "`battery_configured_reserve_soc`",
                ),
                was="battery_configured_reserve_soc",
            ),
            renamed(
                BATTERY_LEVEL(
                    "backup_target_soc",
                    "Battery backup target",
                    _encharge("reserve_state_of_charge"),
                    "The level the gateway holds for backup now (the reserve as it adjusts it; "
                    "100 in full backup). Until the next release also on `battery_reserve_soc`",
                ),
                was="battery_reserve_soc",
            ),
            STORED_ENERGY(
                "battery_reserve_energy",
                "Battery reserve energy",
                _encharge("backup_reserve"),
                "Energy kept for backup",
            ),
            ENERGY_COUNTER(
                "battery_charged_energy",
                "Battery charged energy",
                _battery_energy("energy_received", BATTERY_CHARGED),
                "Lifetime energy into the batteries (storage CT, else integrated from power)",
            ),
            ENERGY_COUNTER(
                "battery_discharged_energy",
                "Battery discharged energy",
                _battery_energy("energy_delivered", BATTERY_DISCHARGED),
                "Lifetime energy out of the batteries (storage CT, else integrated from power)",
            ),
            POWER_W(
                "house_load_power",
                "House load power",
                lambda s: house_load_watts(s.data),
                "Consumption without the battery: consumption power plus battery power",
                summary="load",  # what the house uses: on battery sites, over consumption
            ),
            RUNWAY(
                "backup_runway",
                "Backup runway",
                lambda s: backup_runway(s.data),
                "Minutes of battery above the reserve at the house load of the last minutes "
                "(averaged over RUNWAY_SMOOTHING, 5 min), in two significant figures (capped at "
                f"{RUNWAY_CAP_MIN}, a week, for a load of about 0 W)",
                smoothed="house_load_power",
                in_context=True,
                summary="run",
            ),
            renamed(
                PERCENT_SETTING(
                    "tariff_reserve_soc",
                    "Tariff reserve setting",
                    _storage("reserved_soc"),
                    "The reserve in the tariff file's storage settings: a stale copy on "
                    "firmware D8.3 (`reserve_soc` is the one the battery runs). Until the next "
                    "release also on `storage_reserve_soc`",
                    category=DIAGNOSTIC,
                ),
                was="storage_reserve_soc",
            ),
            renamed(
                PERCENT_SETTING(
                    "very_low_soc",
                    "Battery very low level",
                    _storage("very_low_soc"),
                    "The very-low (shutdown) state of charge, from the storage settings. Until "
                    "the next release also on `storage_very_low_soc`",
                    category=DIAGNOSTIC,
                ),
                was="storage_very_low_soc",
            ),
            FLAG(
                "storage_charge_from_grid",
                "Charge from grid",
                _charge_from_grid,
                "Whether the batteries may charge from the grid, as the battery controller "
                "runs it: from /ivp/sc/sched where the gateway has it, else from the tariff's "
                "storage settings",
            ),
            POWER_W(
                "acb_power",
                "AC Battery power",
                _acb("power"),
                "AC Batteries together, positive discharging",
            ),
            BATTERY_LEVEL(
                "acb_soc",
                "AC Battery state of charge",
                _acb("state_of_charge"),
                "AC Batteries together",
            ),
            TEXT(
                "acb_state",
                "AC Battery state",
                _acb("state"),
                "charging / discharging / idle, as reported",
            ),
            STORED_ENERGY(
                "acb_available_energy",
                "AC Battery available energy",
                _acb("charge_wh"),
                "Energy stored now",
            ),
            COUNT(
                "acb_count",
                "AC Batteries",
                _acb("batteries"),
                "AC Batteries reporting",
                category=DIAGNOSTIC,
            ),
        ),
        inputs=(
            "battery_aggregate",
            "encharge_aggregate",
            "encharge_inventory",
            "encharge_power",
            "acb_power",
            "acb_inventory",
            "ctmeters",
            "system_consumption",
            "tariff",
            "raw",  # /ivp/sc/sched
            "derived",
        ),
    ),
)
