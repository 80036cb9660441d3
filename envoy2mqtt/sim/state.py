"""The mutable side of a simulated gateway: served documents and the grid relay."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any, Final

from .capture import Capture, Recorded
from .storage import StorageSettings

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

    def __init__(
        self, capture: Capture, *, serve_relay: bool | None = None, serve_schedule: bool = True
    ) -> None:
        """Copy every JSON document that answered 200; derive the relay document.

        `serve_schedule=False`: firmware without /ivp/sc/sched (`ensemble.show_controller`).
        """
        self.capture = capture
        self.serve_schedule = serve_schedule
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
        # What the battery controller obeys when it no longer follows the tariff file
        # (firmware that ignores local writes); None: it follows the tariff.
        self.obeyed: StorageSettings | None = None

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
        self.set_oper("closed" if on else "open")
        return True

    def set_oper(self, oper: str) -> None:
        """Serve a relay operating state; its first word ("open"/"closed") is the grid state.

        The field's states ("open synchronizing", "open synchronized") count as off grid.
        """
        on = oper.split(" ", 1)[0] == "closed"
        if on != self.grid_on:
            self.grid_on = on
            self.grid_changes += 1
            self.grid_log.append((time.monotonic(), on))
        if self.has_enpower or self.has_collar:
            self.dirty.add(INVENTORY)
        for device in self.devices("ENPOWER"):
            device["mains_oper_state"] = oper
        for device in self.devices("COLLAR"):
            device["grid_state"] = "on_grid" if on else "off_grid"
        if isinstance(self.documents.get(RELAY), dict):
            self.touch(RELAY)["mains_oper_state"] = oper
        status = self.documents.get(STATUS)
        if isinstance(status, dict) and isinstance(status.get("relay"), dict):
            self.touch(STATUS)["relay"]["mains_oper_state"] = oper

    def set_admin(self, admin: str) -> None:
        """Serve the relay's commanded position ("open"/"closed")."""
        if isinstance(self.documents.get(RELAY), dict):
            self.touch(RELAY)["mains_admin_state"] = admin
        for device in self.devices("ENPOWER"):
            self.dirty.add(INVENTORY)
            device["mains_admin_state"] = admin

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
