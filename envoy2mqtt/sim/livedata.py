"""/ivp/livedata/status built from the simulator's state, and the stream switch that feeds it.

The shape is [M] Matthew1471/Enphase-API IVP/LiveData/Status.adoc with the per-phase fields a
2023 reply shows (grzegorz914/homebridge-enphase-envoy#85): powers in milliwatts, storage
negative while charging [F "Battery power / SoC / grid"]. Without an enabled stream the
gateway serves the last values it collected with an `info` line (home-assistant/core#123216);
POST or PUT /ivp/livedata/stream {"enable": 1} [M Stream.adoc] makes them flow for a while
(about 15 minutes, grzegorz914/homebridge-enphase-envoy#80).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from . import ensemble
from .state import READINGS, SimState

STREAM_PATH: Final = "/ivp/livedata/stream"
STATUS_NAME: Final = "ivp_livedata_status"
NOT_STREAMING: Final = (
    "Last available status data shown. Live stream not enabled. "
    "Enable using /ivp/livedata/stream/ API"
)
PHASES: Final = ("a", "b", "c")
MAIN_RELAY_CLOSED: Final = 1  # [M] main_relay_state in a grid-tied example
MAIN_RELAY_OPEN: Final = 0
GEN_RELAY_STATE: Final = 5  # [M] the value every published example shows


class LiveData:
    """The live status document: live while the stream is enabled, frozen otherwise."""

    def __init__(
        self, state: SimState, *, stream_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        """`stream_s`: how long (in run seconds) values flow after an enable."""
        self._state = state
        self._stream_s = stream_s
        self._clock = clock
        self._until = 0.0  # monotonic end of the enabled stream
        self._last: dict[str, Any] | None = None
        self.enables = 0

    @property
    def streaming(self) -> bool:
        """Whether values flow now."""
        return time.monotonic() < self._until

    def enable(self, on: bool) -> dict[str, str]:
        """The stream switch; returns the gateway's answer."""
        self._until = time.monotonic() + self._stream_s if on else 0.0
        self.enables += on
        return {"sc_stream": "enabled" if on else "disabled"}

    def stop_streaming(self) -> None:
        """Disable the stream (a reboot does)."""
        self._until = 0.0

    def document(self) -> dict[str, Any]:
        """What GET /ivp/livedata/status answers now."""
        streaming = self.streaming
        if streaming or self._last is None:
            self._last = self._meters()
        document: dict[str, Any] = {}
        if not streaming:
            document["info"] = NOT_STREAMING
        document["connection"] = {
            "mqtt_state": "connected",
            "prov_state": "configured",
            "auth_state": "ok",
            "sc_stream": "enabled" if streaming else "disabled",
            "sc_debug": "disabled",
        }
        document["meters"] = self._last
        document["tasks"] = {"task_id": 0, "timestamp": int(self._clock())}
        document["counters"] = {"sc_SendStreamCtrl": self.enables}
        return document

    def _meters(self) -> dict[str, Any]:
        state = self._state
        pv = _ct(state, "production")
        grid = _ct(state, "net-consumption")
        storage = _ct(state, "storage") or _battery(state)
        load = {
            key: pv.get(key, 0) + grid.get(key, 0) + storage.get(key, 0)
            for key in pv.keys() | grid.keys() | storage.keys()
        }
        soc = ensemble.soc(state)
        reserve = ensemble.storage_settings(state).reserve_soc
        phases = _phase_count(state)
        return {
            "last_update": int(self._clock()),
            "soc": round(soc or 0),
            "main_relay_state": MAIN_RELAY_CLOSED if state.grid_on else MAIN_RELAY_OPEN,
            "gen_relay_state": GEN_RELAY_STATE,
            "backup_bat_mode": 1,
            "backup_soc": round(reserve),
            "is_split_phase": int(phases == 2),
            "phase_count": phases,
            "enc_agg_soc": round(soc or 0),
            "enc_agg_energy": round(ensemble.capacity_wh(state) * (soc or 0) / 100),
            "acb_agg_soc": 0,
            "acb_agg_energy": 0,
            "pv": _section(pv),
            "storage": _section(storage),
            "grid": _section(grid),
            "load": _section(load),
            "generator": _section({}),
        }


def _section(milliwatts: dict[str, float]) -> dict[str, int]:
    section = {
        "agg_p_mw": round(milliwatts.get("p", 0)),
        "agg_s_mva": round(milliwatts.get("s", 0)),
    }
    for phase in PHASES:
        section[f"agg_p_ph_{phase}_mw"] = round(milliwatts.get(f"p_{phase}", 0))
    for phase in PHASES:
        section[f"agg_s_ph_{phase}_mva"] = round(milliwatts.get(f"s_{phase}", 0))
    return section


def _ct(state: SimState, kind: str) -> dict[str, float]:
    """A CT reading in milliwatts, total and per phase; {} if the site has no such CT."""
    readings = state.documents.get(READINGS)
    eids = [eid for eid, measured in state.meter_eids().items() if measured == kind]
    for reading in readings if isinstance(readings, list) else []:
        if not isinstance(reading, dict) or reading.get("eid") not in eids:
            continue
        watts = {"p": _num(reading.get("activePower")), "s": _num(reading.get("apparentPower"))}
        channels = [c for c in reading.get("channels", []) if isinstance(c, dict)]
        for phase, channel in zip(PHASES, channels, strict=False):
            watts[f"p_{phase}"] = _num(channel.get("activePower"))
            watts[f"s_{phase}"] = _num(channel.get("apparentPower"))
        return {key: value * 1000 for key, value in watts.items()}
    return {}


def _battery(state: SimState) -> dict[str, float]:
    """Battery power from /ivp/ensemble/power where no storage CT measures it."""
    milliwatts = sum(_num(unit.get("real_power_mw")) for unit in ensemble.power_units(state))
    return {"p": milliwatts, "s": milliwatts, "p_a": milliwatts, "s_a": milliwatts}


def _phase_count(state: SimState) -> int:
    readings = state.documents.get(READINGS)
    for reading in readings if isinstance(readings, list) else []:
        if isinstance(reading, dict):
            return sum(
                1
                for c in reading.get("channels", [])
                if isinstance(c, dict) and _num(c.get("voltage")) > 1.0
            )
    return 1


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
