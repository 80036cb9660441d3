"""What a capture says about the house: its phases, PV peak, load and battery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from . import ensemble
from .state import METERS, READINGS, SimState
from .storage import Battery

V1: Final = "api_v1_production"
V1_INVERTERS: Final = "api_v1_production_inverters"
PRODUCTION_JSON: Final = "production.json"
DEFAULT_LOAD_W: Final = 800.0
MIN_BASE_LOAD_W: Final = 150.0
DEFAULT_SOC: Final = 50.0


@dataclass(frozen=True, slots=True)
class Site:
    """The simulated house, sized from the capture's own numbers."""

    phases: int
    production_shares: tuple[float, ...]  # each phase's part of the PV, summing to 1
    house_shares: tuple[float, ...]
    battery_shares: tuple[float, ...]
    peak_w: float
    base_load_w: float


def survey(state: SimState) -> Site:
    """The house a capture recorded (read from the capture, not from what is served now)."""
    docs = {name: rec.document for name, rec in state.capture.recordings.items() if rec.is_json}
    production = _entry(docs, "production", "production")
    consumption = _entry(docs, "consumption", "total-consumption")
    phases = len(production.get("lines") or []) or _meter_phases(docs) or 1
    return Site(
        phases=phases,
        production_shares=_shares(
            [line.get("wNow") for line in production.get("lines") or []]
            or _channel_powers(docs, state, "production", phases),
            phases,
        ),
        house_shares=_shares([line.get("wNow") for line in consumption.get("lines") or []], phases),
        battery_shares=_shares(_channel_powers(docs, state, "storage", phases), phases),
        peak_w=_peak_w(docs),
        base_load_w=_base_load_w(state, consumption),
    )


def battery(state: SimState) -> Battery | None:
    """The site's batteries as one, if it has any with a known size."""
    capacity = ensemble.capacity_wh(state)
    if not ensemble.has_battery(state) or capacity <= 0:
        return None
    soc = ensemble.soc(state)
    return Battery(
        capacity_wh=capacity,
        max_w=ensemble.rating_w(state),
        soc=DEFAULT_SOC if soc is None else soc,
    )


def _entry(docs: dict[str, Any], section: str, kind: str) -> dict[str, Any]:
    """An active metered entry of production.json, or {}."""
    document = docs.get(PRODUCTION_JSON)
    entries = document.get(section) if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if (
            isinstance(entry, dict)
            and entry.get("measurementType") == kind
            and entry.get("activeCount")
        ):
            return entry
    return {}


def _meter_phases(docs: dict[str, Any]) -> int:
    meters = docs.get(METERS)
    counts = [
        int(m.get("phaseCount") or 1)
        for m in (meters if isinstance(meters, list) else [])
        if isinstance(m, dict) and m.get("state") == "enabled"
    ]
    return max(counts, default=0)


def _channel_powers(docs: dict[str, Any], state: SimState, kind: str, phases: int) -> list[Any]:
    """The first `phases` channels' power of a CT (the later ones measure nothing)."""
    eids = {eid for eid, k in state.meter_eids().items() if k == kind}
    readings = docs.get(READINGS)
    for reading in readings if isinstance(readings, list) else []:
        if isinstance(reading, dict) and reading.get("eid") in eids:
            channels = reading.get("channels") or []
            return [c.get("activePower") for c in channels[:phases] if isinstance(c, dict)]
    return []


def _shares(values: list[Any], phases: int) -> tuple[float, ...]:
    """Each phase's part by the recorded power; equal parts if the capture cannot tell."""
    weights = [abs(float(v)) if isinstance(v, int | float) else 0.0 for v in values[:phases]]
    total = sum(weights)
    if len(weights) != phases or total <= 0:
        return (1.0 / phases,) * phases
    return tuple(w / total for w in weights)


def _peak_w(docs: dict[str, Any]) -> float:
    """The larger of the inverters' nameplate sum and what the capture itself saw."""
    inverters = docs.get(V1_INVERTERS)
    nameplate = sum(
        float(i.get("maxReportWatts", 0) or 0)
        for i in (inverters if isinstance(inverters, list) else [])
        if isinstance(i, dict) and i.get("devType", 1) == 1
    )
    v1 = docs.get(V1)
    seen = [
        float(_entry(docs, "production", "production").get("wNow", 0) or 0),
        float(v1.get("wattsNow", 0) or 0) if isinstance(v1, dict) else 0.0,
    ]
    return max(nameplate, 1.3 * max(seen), 1000.0)


def _base_load_w(state: SimState, consumption: dict[str, Any]) -> float:
    """The house's own load when captured: total consumption plus battery power.

    The gateway's total consumption counts battery charging as consumption (it is
    production + net), so a capture taken while charging hard overstates the house.
    """
    total = float(consumption.get("wNow", 0) or 0)
    if not total:
        return DEFAULT_LOAD_W
    house = total + _recorded_battery_w(state)
    # some captures' storage CT disagrees with everything else; then trust consumption
    return house if house >= MIN_BASE_LOAD_W else max(total, MIN_BASE_LOAD_W)


def _recorded_battery_w(state: SimState) -> float:
    readings = state.capture.recordings.get(READINGS)
    storage = ensemble.storage_ct_eids(state)
    if readings is not None and isinstance(readings.document, list):
        for reading in readings.document:
            if isinstance(reading, dict) and reading.get("eid") in storage:
                return float(reading.get("activePower", 0) or 0)
    power = state.capture.recordings.get("ivp_ensemble_power")
    units = power.document.get("devices:") if power and isinstance(power.document, dict) else None
    return sum(
        float(u.get("real_power_mw", 0) or 0) / 1000
        for u in (units if isinstance(units, list) else [])
        if isinstance(u, dict)
    )
