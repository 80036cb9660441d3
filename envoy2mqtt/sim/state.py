"""The mutable side of a simulated gateway: served documents, grid relay, battery."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any, Final

from .capture import Capture, Recorded

INVENTORY: Final = "ivp_ensemble_inventory"
STATUS: Final = "ivp_ensemble_status"
RELAY: Final = "ivp_ensemble_relay"
SECCTRL: Final = "ivp_ensemble_secctrl"
POWER: Final = "ivp_ensemble_power"
METERS: Final = "ivp_meters"
READINGS: Final = "ivp_meters_readings"
GEN_CONFIG: Final = "ivp_ss_gen_config"
_EMPTY_GEN_CONFIG: Final = Recorded(200, "application/json", b"{}", {})


class SimState:
    """Deep copies of a capture's JSON documents, changed by grid, battery and drift."""

    def __init__(self, capture: Capture, *, serve_relay: bool | None = None) -> None:
        """Copy every JSON document that answered 200; derive the relay document."""
        self.capture = capture
        self.documents: dict[str, Any] = {
            name: copy.deepcopy(recorded.document)
            for name, recorded in capture.recordings.items()
            if recorded.is_json and recorded.status == 200
        }
        self.dirty: set[str] = set()
        self.has_enpower = any(True for _ in self.devices("ENPOWER"))
        self.has_collar = any(True for _ in self.devices("COLLAR"))
        if serve_relay is None:
            serve_relay = self.has_enpower
        if serve_relay and RELAY not in self.documents:
            self.documents[RELAY] = self._derived_relay()
            self.dirty.add(RELAY)
        self.grid_on = self._initial_grid()
        self.grid_changes = 0
        self.grid_log: list[tuple[float, bool]] = []

    def reply(self, name: str) -> Recorded | None:
        """What the gateway answers for a capture file name right now."""
        if name in self.dirty:
            document = self.documents[name]
            return Recorded(200, "application/json", json.dumps(document).encode(), document)
        recorded = self.capture.recordings.get(name)
        if recorded is None and name == GEN_CONFIG:
            return _EMPTY_GEN_CONFIG
        return recorded

    def touch(self, name: str) -> Any:
        """The document to change in place; from now on it is served re-serialised."""
        self.dirty.add(name)
        return self.documents[name]

    def devices(self, kind: str) -> Iterator[dict[str, Any]]:
        """Device entries of one type (ENPOWER, ENCHARGE, COLLAR) in the ensemble inventory."""
        inventory = self.documents.get(INVENTORY)
        if not isinstance(inventory, list):
            return
        for item in inventory:
            if isinstance(item, dict) and item.get("type") == kind:
                yield from (d for d in item.get("devices", []) if isinstance(d, dict))

    def set_grid(self, on: bool) -> bool:
        """Close (on grid) or open (off grid) the relay; True if the state changed."""
        if on == self.grid_on:
            return False
        self.grid_on = on
        self.grid_changes += 1
        self.grid_log.append((time.monotonic(), on))
        relay_state = "closed" if on else "open"
        if self.has_enpower or self.has_collar:
            self.dirty.add(INVENTORY)
        for device in self.devices("ENPOWER"):
            device["mains_oper_state"] = relay_state
        for device in self.devices("COLLAR"):
            device["grid_state"] = "on_grid" if on else "off_grid"
        if isinstance(self.documents.get(RELAY), dict):
            self.touch(RELAY)["mains_oper_state"] = relay_state
        status = self.documents.get(STATUS)
        if isinstance(status, dict) and isinstance(status.get("relay"), dict):
            self.touch(STATUS)["relay"]["mains_oper_state"] = relay_state
        return True

    def set_battery(self, soc: float | None = None, power_w: float | None = None) -> None:
        """Set aggregate state of charge (%) and battery power (W, positive = discharging).

        Positive-discharging matches both wire formats: /ivp/ensemble/power reports
        `real_power_mw` negative while charging, and pyenphase reads the storage CT's
        `activePower` as "positive is delivering" (into the house).
        """
        changed = False
        if soc is not None:
            changed |= self.apply_soc(soc)
        if power_w is not None:
            changed |= self.apply_battery_power(power_w)
        if not changed:
            raise ValueError(f"capture {self.capture.name} has no battery to set")

    @property
    def battery_capacity_wh(self) -> float:
        """Usable battery energy from secctrl (0 when unknown)."""
        secctrl = self.documents.get(SECCTRL)
        if not isinstance(secctrl, dict):
            return 0.0
        return float(secctrl.get("Enc_max_available_capacity") or secctrl.get("Max_energy") or 0)

    @property
    def battery_soc(self) -> float | None:
        """Aggregate state of charge as served, if the capture has one."""
        secctrl = self.documents.get(SECCTRL)
        if isinstance(secctrl, dict) and isinstance(secctrl.get("agg_soc"), int | float):
            return float(secctrl["agg_soc"])
        return None

    @property
    def battery_power_w(self) -> float:
        """Battery power as served by /ivp/ensemble/power (W, positive = discharging)."""
        units = self._power_units()
        return sum(float(u.get("real_power_mw", 0)) for u in units) / 1000.0

    def meter_eids(self) -> dict[Any, str]:
        """CT eid -> measurement type, for enabled meters in /ivp/meters."""
        meters = self.documents.get(METERS)
        if not isinstance(meters, list):
            return {}
        return {
            m["eid"]: m["measurementType"]
            for m in meters
            if isinstance(m, dict) and m.get("state") == "enabled" and "eid" in m
        }

    def _power_units(self) -> list[dict[str, Any]]:
        power = self.documents.get(POWER)
        units = power.get("devices:") if isinstance(power, dict) else None
        return [u for u in units if isinstance(u, dict)] if isinstance(units, list) else []

    def apply_soc(self, soc: float) -> bool:
        """Write a state of charge everywhere it is served; False if nowhere."""
        percent = round(min(max(soc, 0.0), 100.0))
        changed = False
        for name, part in ((SECCTRL, None), (STATUS, "secctrl")):
            document = self.documents.get(name)
            section = document.get(part) if part and isinstance(document, dict) else document
            if not isinstance(section, dict) or "agg_soc" not in section:
                continue
            self.dirty.add(name)
            section["agg_soc"] = percent
            if "ENC_agg_soc" in section:
                section["ENC_agg_soc"] = percent
            capacity = section.get("Enc_max_available_capacity") or section.get("Max_energy")
            if "ENC_agg_avail_energy" in section and capacity:
                section["ENC_agg_avail_energy"] = round(capacity * percent / 100)
            changed = True
        for device in self.devices("ENCHARGE"):
            self.dirty.add(INVENTORY)
            device["percentFull"] = percent
            changed = True
        for unit in self._power_units():
            self.dirty.add(POWER)
            unit["soc"] = percent
            changed = True
        return changed

    def apply_battery_power(self, power_w: float) -> bool:
        """Write battery power into units and the storage CT; False if neither exists."""
        changed = False
        units = self._power_units()
        for unit in units:
            self.dirty.add(POWER)
            unit["real_power_mw"] = round(power_w * 1000 / len(units))
            if "apparent_power_mva" in unit:
                unit["apparent_power_mva"] = unit["real_power_mw"]
            changed = True
        storage = [eid for eid, kind in self.meter_eids().items() if kind == "storage"]
        readings = self.documents.get(READINGS)
        for reading in readings if isinstance(readings, list) else []:
            if isinstance(reading, dict) and reading.get("eid") in storage:
                self.dirty.add(READINGS)
                set_ct_power(reading, power_w)
                changed = True
        return changed

    def _initial_grid(self) -> bool:
        for device in self.devices("ENPOWER"):
            return bool(device.get("mains_oper_state", "closed") == "closed")
        for device in self.devices("COLLAR"):
            return bool(device.get("grid_state", "on_grid") == "on_grid")
        return True

    def _derived_relay(self) -> dict[str, Any]:
        status = self.documents.get(STATUS)
        if isinstance(status, dict) and isinstance(status.get("relay"), dict):
            return copy.deepcopy(status["relay"])
        enpower = next(self.devices("ENPOWER"), {})
        return {
            "mains_admin_state": enpower.get("mains_admin_state", "closed"),
            "mains_oper_state": enpower.get("mains_oper_state", "closed"),
            "der1_state": 1,
            "der2_state": 0,
            "der3_state": 0,
            "Enchg_grid_mode": enpower.get("Enchg_grid_mode", "multimode-ongrid"),
            "Solar_grid_mode": "multimode-ongrid",
        }


def set_ct_power(reading: dict[str, Any], watts: float) -> None:
    """Set a CT reading's power, spread over the channels that carry voltage."""
    reading["activePower"] = watts
    if "instantaneousDemand" in reading:
        reading["instantaneousDemand"] = watts
    channels = [c for c in reading.get("channels", []) if isinstance(c, dict)]
    live = [c for c in channels if float(c.get("voltage", 0) or 0) > 1.0] or channels[:1]
    live_ids = {id(c) for c in live}
    for channel in channels:
        share = watts / len(live) if id(channel) in live_ids else 0.0
        channel["activePower"] = share
        if "instantaneousDemand" in channel:
            channel["instantaneousDemand"] = share
