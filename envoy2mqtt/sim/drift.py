"""Write the physics into the served documents, keeping every counter consistent."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

from .physics import Energy, Physics, PowerSample
from .state import READINGS, SimState

INVERTER_REPORT_S: Final = 300
PRODUCTION_DOCS: Final = ("production.json", "production")
V1: Final = "api_v1_production"
V1_INVERTERS: Final = "api_v1_production_inverters"
DEVICE_DATA: Final = "ivp_pdm_device_data"


class Drift:
    """Moves a gateway's numbers over time; call `advance` before serving a reply."""

    def __init__(
        self,
        state: SimState,
        *,
        clock: Callable[[], float],
        utc_offset_s: float,
        seed: int | None = None,
    ) -> None:
        """Derive the house (peak, load, battery) from the capture's own numbers."""
        self._state = state
        self._clock = clock
        self._original = {
            name: rec.document for name, rec in state.capture.recordings.items() if rec.is_json
        }
        self.physics = Physics(
            peak_w=self._peak_w(),
            base_load_w=self._base_load_w(),
            battery_w=state.battery_power_w,
            capacity_wh=state.battery_capacity_wh,
            soc=state.battery_soc,
            utc_offset_s=utc_offset_s,
            rng=random.Random(seed),
        )
        self._report_slots: dict[str, int] = {}

    def advance(self) -> None:
        """Step the physics to clock() and rewrite every affected document."""
        now = self._clock()
        sample = self.physics.step(now, grid_on=self._state.grid_on)
        energy = self.physics.energy
        for name in PRODUCTION_DOCS:
            self._write_production(name, sample, energy, now)
        self._write_v1(sample, energy)
        self._write_inverters(sample, now)
        self._write_readings(sample, energy, now)
        if self.physics.soc is not None:
            self._state.apply_soc(self.physics.soc)
        self._state.apply_battery_power(sample.battery_w)

    def _today(self, original: float, accumulated: float) -> float:
        return accumulated if self.physics.energy.past_midnight else original + accumulated

    def _write_production(self, name: str, s: PowerSample, e: Energy, now: float) -> None:
        original = self._original.get(name)
        if not isinstance(original, dict) or name not in self._state.documents:
            return
        document = self._state.touch(name)
        for entry, orig in _pairs(document.get("production"), original.get("production")):
            if orig.get("type") == "inverters":
                _set_counters(
                    entry, orig, power=s.inverters_w, added_wh=e.produced, today_wh=None, now=now
                )
                entry["wNow"] = round(s.inverters_w)
            elif orig.get("activeCount"):
                today = self._today(orig.get("whToday", 0.0), e.produced_today)
                _set_counters(
                    entry, orig, power=s.production_w, added_wh=e.produced, today_wh=today, now=now
                )
        for entry, orig in _pairs(document.get("consumption"), original.get("consumption")):
            if not orig.get("activeCount"):
                continue
            if orig.get("measurementType") == "net-consumption":
                _set_counters(
                    entry,
                    orig,
                    power=s.net_w,
                    added_wh=e.imported - e.exported,
                    today_wh=None,
                    now=now,
                )
            else:
                today = self._today(orig.get("whToday", 0.0), e.consumed_today)
                _set_counters(
                    entry, orig, power=s.consumption_w, added_wh=e.consumed, today_wh=today, now=now
                )

    def _write_v1(self, s: PowerSample, e: Energy) -> None:
        original = self._original.get(V1)
        if not isinstance(original, dict) or V1 not in self._state.documents:
            return
        document = self._state.touch(V1)
        document["wattsNow"] = round(s.inverters_w)
        document["wattHoursToday"] = round(
            self._today(original.get("wattHoursToday", 0), e.produced_today)
        )
        for key in ("wattHoursSevenDays", "wattHoursLifetime"):
            document[key] = round(original.get(key, 0) + e.produced)

    def _write_inverters(self, s: PowerSample, now: float) -> None:
        """Each inverter reports once per five minutes, at its own offset in the slot."""
        original = self._original.get(V1_INVERTERS)
        if isinstance(original, list) and V1_INVERTERS in self._state.documents:
            micro = [(i, o) for i, o in enumerate(original) if o.get("devType", 1) == 1]
            total = sum(o.get("maxReportWatts", 0) for _, o in micro) or 1
            document = self._state.documents[V1_INVERTERS]
            for i, orig in micro:
                slot_start = self._report(orig["serialNumber"], i, now)
                if slot_start is not None:
                    self._state.dirty.add(V1_INVERTERS)
                    watts = s.inverters_w * orig.get("maxReportWatts", 0) / total
                    document[i]["lastReportWatts"] = min(round(watts), orig["maxReportWatts"])
                    document[i]["lastReportDate"] = slot_start
        data = self._original.get(DEVICE_DATA)
        if isinstance(data, dict) and DEVICE_DATA in self._state.documents:
            pcus = [k for k, v in data.items() if isinstance(v, dict) and v.get("devName") == "pcu"]
            document = self._state.documents[DEVICE_DATA]
            for i, key in enumerate(pcus):
                slot_start = self._report(f"pcu{key}", i, now)
                channel = document[key].get("channels", [{}])[0]
                if slot_start is not None and "watts" in channel:
                    self._state.dirty.add(DEVICE_DATA)
                    share = s.inverters_w / max(len(pcus), 1)
                    channel["watts"]["now"] = min(round(share), channel["watts"].get("max", share))
                    channel.setdefault("lastReading", {})["endDate"] = slot_start

    def _report(self, key: str, index: int, now: float) -> int | None:
        """Start of the report slot if this inverter reported since we last looked."""
        offset = (index * 37) % INVERTER_REPORT_S
        slot = int((now - offset) // INVERTER_REPORT_S)
        previous = self._report_slots.setdefault(key, slot)
        if slot == previous:
            return None
        self._report_slots[key] = slot
        return slot * INVERTER_REPORT_S + offset

    def _write_readings(self, s: PowerSample, e: Energy, now: float) -> None:
        original = self._original.get(READINGS)
        if not isinstance(original, list) or READINGS not in self._state.documents:
            return
        flows = {
            "production": (s.production_w, e.produced, e.night_draw),
            "net-consumption": (s.net_w, e.imported, e.exported),
            "total-consumption": (s.consumption_w, e.consumed, 0.0),
            "storage": (s.battery_w, e.discharged, e.charged),
        }
        kinds = self._state.meter_eids()
        document = self._state.touch(READINGS)
        for reading, orig in _pairs(document, original):
            flow = flows.get(kinds.get(orig.get("eid"), ""))
            if flow is None:
                continue
            power, delivered, received = flow
            parts = [(reading, orig, 1.0)]
            parts += [
                (ch, och, share)
                for (ch, och), share in zip(
                    _pairs(reading.get("channels"), orig.get("channels")),
                    _shares(orig.get("channels"), "activePower"),
                    strict=False,
                )
            ]
            for part, opart, share in parts:
                part["activePower"] = power * share
                if "instantaneousDemand" in opart:
                    part["instantaneousDemand"] = power * share
                part["actEnergyDlvd"] = opart.get("actEnergyDlvd", 0.0) + delivered * share
                part["actEnergyRcvd"] = opart.get("actEnergyRcvd", 0.0) + received * share
                if "timestamp" in opart:
                    part["timestamp"] = int(now)

    def _peak_w(self) -> float:
        """The larger of the inverters' nameplate sum and what the capture itself saw."""
        inverters = self._original.get(V1_INVERTERS)
        nameplate = sum(
            float(i.get("maxReportWatts", 0) or 0)
            for i in (inverters if isinstance(inverters, list) else [])
            if isinstance(i, dict) and i.get("devType", 1) == 1
        )
        v1 = self._original.get(V1)
        seen = [
            float(_entry(self._original, "production", "production").get("wNow", 0) or 0),
            float(v1.get("wattsNow", 0) or 0) if isinstance(v1, dict) else 0.0,
        ]
        return max(nameplate, 1.3 * max(seen), 1000.0)

    def _base_load_w(self) -> float:
        consumption = _entry(self._original, "consumption", "total-consumption")
        return float(consumption.get("wNow", 0) or 0) or 800.0


def _entry(docs: dict[str, Any], section: str, kind: str) -> dict[str, Any]:
    document = docs.get("production.json")
    entries = document.get(section) if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("measurementType") == kind:
            return entry
    return {}


def _pairs(current: Any, original: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if not isinstance(current, list) or not isinstance(original, list):
        return []
    return [
        (c, o)
        for c, o in zip(current, original, strict=False)
        if isinstance(c, dict) and isinstance(o, dict)
    ]


def _shares(items: Any, key: str) -> list[float]:
    """Each item's part of the total, by its recorded `key`; equal parts among live ones."""
    rows = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    weights = [abs(float(r.get(key, 0) or 0)) for r in rows]
    if sum(weights) > 0:
        return [w / sum(weights) for w in weights]
    live = [any(bool(v) for v in r.values()) for r in rows]
    count = sum(live) or len(rows) or 1
    return [1.0 / count if is_live or not any(live) else 0.0 for is_live in live]


def _set_counters(
    entry: dict[str, Any],
    original: dict[str, Any],
    *,
    power: float,
    added_wh: float,
    today_wh: float | None,
    now: float,
) -> None:
    """Set power and advance lifetime-style counters, on the entry and its per-phase lines."""
    parts = [(entry, original, 1.0)]
    lines = _pairs(entry.get("lines"), original.get("lines"))
    parts += [
        (line, oline, share)
        for (line, oline), share in zip(lines, _shares(original.get("lines"), "wNow"), strict=False)
    ]
    for part, opart, share in parts:
        part["wNow"] = power * share
        for key in ("whLifetime", "whLastSevenDays"):
            if opart.get(key):
                part[key] = opart[key] + added_wh * share
        if today_wh is not None and "whToday" in opart:
            part["whToday"] = today_wh * share
        if opart.get("readingTime"):
            part["readingTime"] = int(now)
