"""Where a simulated gateway serves its batteries: ensemble power, secctrl, inventory, ACBs.

Battery power is positive while discharging, in every document: /ivp/ensemble/power's
`real_power_mw` is negative while charging, the storage CT's `activePower` is positive
while delivering into the house (pyenphase's reading of it), and production.json's ACB
`wNow` likewise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from .state import INVENTORY, POWER, READINGS, SECCTRL, STATUS, SimState, set_ct_power
from .storage import StorageSettings

TARIFF: Final = "admin_lib_tariff"
SCHEDULE: Final = "ivp_sc_sched"  # /ivp/sc/sched: what the battery controller runs now
PRODUCTION_DOCS: Final = ("production.json", "production")
IDLE_W: Final = 1.0  # below this an ACB says "idle"
ACB_WH: Final = 1200.0  # one AC Battery's usable energy, when the capture cannot tell
ACB_W: Final = 270.0  # one AC Battery's continuous power
ENCHARGE_RATED_W: Final = 3840.0  # IQ Battery 5P, when the capture does not say
ENCHARGE_DEVICE_TYPE: Final = 13


def power_units(state: SimState) -> list[dict[str, Any]]:
    """The batteries in /ivp/ensemble/power."""
    power = state.documents.get(POWER)
    units = power.get("devices:") if isinstance(power, dict) else None
    return [u for u in units if isinstance(u, dict)] if isinstance(units, list) else []


def acb_entries(state: SimState) -> Iterator[dict[str, Any]]:
    """Active AC Battery entries in production.json's (and /production's) storage section."""
    for name in PRODUCTION_DOCS:
        document = state.documents.get(name)
        storage = document.get("storage") if isinstance(document, dict) else None
        for entry in storage if isinstance(storage, list) else []:
            if isinstance(entry, dict) and entry.get("type") == "acb" and entry.get("activeCount"):
                yield entry


def storage_ct_eids(state: SimState) -> list[Any]:
    """Enabled storage CTs."""
    return [eid for eid, kind in state.meter_eids().items() if kind == "storage"]


def has_battery(state: SimState) -> bool:
    """Whether the site has batteries at all (Encharge units, a storage CT or ACBs)."""
    return bool(power_units(state) or storage_ct_eids(state) or any(acb_entries(state)))


def soc(state: SimState) -> float | None:
    """Aggregate state of charge as served: secctrl, else the ACBs' own."""
    secctrl = state.documents.get(SECCTRL)
    if power_units(state) and isinstance(secctrl, dict):
        value = secctrl.get("agg_soc")
        if isinstance(value, int | float):
            return float(value)
    for entry in acb_entries(state):
        return float(entry.get("percentFull", 0) or 0)
    return None


def _recorded_acbs(state: SimState) -> list[dict[str, Any]]:
    """The capture's own active ACB entries (production.json only: /production repeats them)."""
    original = state.capture.recordings.get("production.json")
    storage = original.document.get("storage") if original and original.is_json else None
    return [
        e
        for e in (storage if isinstance(storage, list) else [])
        if isinstance(e, dict) and e.get("type") == "acb" and e.get("activeCount")
    ]


def _acb_capacity_wh(state: SimState) -> float:
    """From the capture's own energy and percentage, which secctrl's Max_energy is not."""
    total = 0.0
    for entry in _recorded_acbs(state):
        percent, energy = float(entry.get("percentFull", 0) or 0), float(entry.get("whNow", 0))
        total += energy * 100 / percent if percent > 0 else ACB_WH * entry["activeCount"]
    return total


def capacity_wh(state: SimState) -> float:
    """Usable energy of all batteries when full."""
    secctrl = state.documents.get(SECCTRL)
    encharge = 0.0
    if isinstance(secctrl, dict) and power_units(state):
        encharge = float(
            secctrl.get("Enc_max_available_capacity") or secctrl.get("Max_energy") or 0
        )
    return encharge + _acb_capacity_wh(state)


def rating_w(state: SimState) -> float:
    """The most power all batteries together charge or discharge with."""
    units = len(power_units(state))
    status = state.documents.get(STATUS)
    inventory = (
        status.get("inventory", {}).get("serial_nums", {}) if isinstance(status, dict) else {}
    )
    rated = [
        float(d.get("encharge_rated_power") or ENCHARGE_RATED_W)
        for d in inventory.values()
        if isinstance(d, dict) and d.get("device_type") == ENCHARGE_DEVICE_TYPE
    ]
    # some captures list fewer units in the status than in /ivp/ensemble/power
    encharge = sum(rated) / len(rated) * units if rated else ENCHARGE_RATED_W * units
    acbs = sum(int(e["activeCount"]) for e in _recorded_acbs(state))
    return encharge + ACB_W * acbs or capacity_wh(state) / 2


def _settings_section(state: SimState) -> dict[str, Any] | None:
    tariff = state.documents.get(TARIFF)
    inner = tariff.get("tariff") if isinstance(tariff, dict) else None
    raw = inner.get("storage_settings") if isinstance(inner, dict) else None
    return raw if isinstance(raw, dict) else None


def storage_settings(state: SimState) -> StorageSettings:
    """The tariff's storage settings, as the gateway serves them now."""
    raw = _settings_section(state)
    if raw is None:
        return StorageSettings()
    return StorageSettings(
        mode=str(raw.get("mode") or "self-consumption"),
        charge_from_grid=bool(raw.get("charge_from_grid")),
        reserve_soc=float(raw.get("reserved_soc") or 0),
    )


def controller_settings(state: SimState) -> StorageSettings:
    """The settings the battery controller obeys: the tariff's, unless it ignores the file."""
    return state.obeyed or storage_settings(state)


def hold_controller(state: SimState) -> None:
    """From now on the controller keeps its settings whatever is written to the tariff file."""
    state.obeyed = storage_settings(state)


def show_controller(
    state: SimState, *, very_low_soc: float | None = None, secctrl: bool = True
) -> None:
    """Serve what the battery controller runs (its live values), not the tariff file's copy.

    secctrl's `configured_backup_soc` (and `VLS_Limit`) and /ivp/sc/sched: where a D8.3
    gateway shows a cloud write [F "Local writes do not work"]. The schedule document's shape
    is the simulator's own; only its "Charge From Grid Allowed" is named after the field's.
    `secctrl=False` serves the schedule alone (at start, secctrl as captured); firmware
    without /ivp/sc/sched (`state.serve_schedule` off) has secctrl only.
    """
    if _settings_section(state) is None:
        return
    settings = controller_settings(state)
    for name, part in ((SECCTRL, None), (STATUS, "secctrl")) if secctrl else ():
        document = state.documents.get(name)
        section = document.get(part) if part and isinstance(document, dict) else document
        if not isinstance(section, dict) or "configured_backup_soc" not in section:
            continue
        state.dirty.add(name)
        section["configured_backup_soc"] = round(settings.reserve_soc)
        if very_low_soc is not None and "VLS_Limit" in section:
            section["VLS_Limit"] = round(very_low_soc)
    if not state.serve_schedule:
        return
    schedule = state.documents.get(SCHEDULE)
    low = very_low_soc if very_low_soc is not None else _very_low(schedule)
    state.documents[SCHEDULE] = {
        "Battery Mode": settings.mode,
        "Reserve SoC": round(settings.reserve_soc),
        "Very Low SoC": low,
        "Charge From Grid Allowed": settings.charge_from_grid,
        "schedules": [],
    }
    state.dirty.add(SCHEDULE)


def _very_low(schedule: object) -> float:
    value = schedule.get("Very Low SoC") if isinstance(schedule, dict) else None
    return value if isinstance(value, int | float) else 10


def apply_controller(
    state: SimState,
    *,
    mode: str,
    charge_from_grid: bool,
    reserve_soc: float,
    very_low_soc: float | None = None,
) -> None:
    """The cloud's write: the controller runs these settings from now on.

    Firmware that ignores the tariff leaves the file as it was; older firmware's controller
    follows the file, so the write lands there too.
    """
    settings = StorageSettings(
        mode=mode, charge_from_grid=charge_from_grid, reserve_soc=reserve_soc
    )
    if state.obeyed is not None:
        state.obeyed = settings
    else:
        set_storage(state, mode=mode, charge_from_grid=charge_from_grid, reserve_soc=reserve_soc)
    show_controller(state, very_low_soc=very_low_soc)


def set_storage(
    state: SimState,
    *,
    mode: str | None = None,
    charge_from_grid: bool | None = None,
    reserve_soc: float | None = None,
    optimised_schedules: bool | None = None,
) -> None:
    """Change the storage settings the tariff document serves (and the battery obeys)."""
    settings = _settings_section(state)
    if settings is None:
        raise ValueError(f"capture {state.capture.name} has no storage settings")
    state.touch(TARIFF)
    for key, value in (
        ("mode", mode),
        ("charge_from_grid", charge_from_grid),
        ("reserved_soc", reserve_soc),
        ("opt_schedules", optimised_schedules),  # on: a locally set mode is ignored
    ):
        if value is not None:
            settings[key] = value
    if state.obeyed is not None:
        # a simulation control stands for the cloud's write, which the controller obeys
        state.obeyed = storage_settings(state)
    show_controller(state)


def apply_soc(state: SimState, percent_soc: float) -> bool:
    """Write a state of charge everywhere it is served; False if nowhere."""
    percent = round(min(max(percent_soc, 0.0), 100.0))
    changed = False
    for name, part in ((SECCTRL, None), (STATUS, "secctrl")):
        document = state.documents.get(name)
        section = document.get(part) if part and isinstance(document, dict) else document
        if not isinstance(section, dict) or "agg_soc" not in section:
            continue
        state.dirty.add(name)
        section["agg_soc"] = percent
        if "ENC_agg_soc" in section:
            section["ENC_agg_soc"] = percent
        capacity = section.get("Enc_max_available_capacity") or section.get("Max_energy")
        if "ENC_agg_avail_energy" in section and capacity:
            section["ENC_agg_avail_energy"] = round(capacity * percent / 100)
        changed = True
    for device in state.devices("ENCHARGE"):
        state.dirty.add(INVENTORY)
        device["percentFull"] = percent
        changed = True
    for unit in power_units(state):
        state.dirty.add(POWER)
        unit["soc"] = percent
        changed = True
    return _apply_acb_soc(state, percent) or changed


def _apply_acb_soc(state: SimState, percent: int) -> bool:
    entries = list(acb_entries(state))
    capacity = _acb_capacity_wh(state)
    for entry in entries:
        state.dirty.update(PRODUCTION_DOCS)
        entry["percentFull"] = percent
        entry["whNow"] = round(capacity * percent / 100)
    secctrl = state.documents.get(SECCTRL)
    if entries and isinstance(secctrl, dict) and "ACB_agg_soc" in secctrl:
        state.dirty.add(SECCTRL)
        secctrl["ACB_agg_soc"] = percent
        secctrl["ACB_agg_energy"] = round(capacity * percent / 100)
    return bool(entries)


def apply_power(state: SimState, watts: float, *, storage_ct: bool = True) -> bool:
    """Write battery power into units, ACBs and (unless told not to) the storage CT."""
    units = power_units(state)
    acbs = list(acb_entries(state))
    for unit in units:
        state.dirty.add(POWER)
        share = watts if not acbs else watts * (1 - _acb_share(state))
        unit["real_power_mw"] = round(share * 1000 / len(units))
        if "apparent_power_mva" in unit:
            unit["apparent_power_mva"] = unit["real_power_mw"]
    for entry in acbs:
        state.dirty.update(PRODUCTION_DOCS)
        acb_watts = round(watts * _acb_share(state)) if units else round(watts)
        entry["wNow"] = acb_watts
        entry["state"] = (
            "discharging" if acb_watts >= IDLE_W else "charging" if acb_watts <= -IDLE_W else "idle"
        )
    changed = bool(units or acbs)
    if storage_ct:
        readings = state.documents.get(READINGS)
        storage = storage_ct_eids(state)
        for reading in readings if isinstance(readings, list) else []:
            if isinstance(reading, dict) and reading.get("eid") in storage:
                state.dirty.add(READINGS)
                set_ct_power(reading, watts)
                changed = True
    return changed


def _acb_share(state: SimState) -> float:
    acb = _acb_capacity_wh(state)
    total = capacity_wh(state)
    return acb / total if total > 0 else 0.0


def set_battery(state: SimState, soc: float | None = None, power_w: float | None = None) -> None:
    """Set aggregate state of charge (%) and battery power (W, positive = discharging)."""
    changed = False
    if soc is not None:
        changed |= apply_soc(state, soc)
    if power_w is not None:
        changed |= apply_power(state, power_w)
    if not changed:
        raise ValueError(f"capture {state.capture.name} has no battery to set")
