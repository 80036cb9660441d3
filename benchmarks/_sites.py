"""The sites the benchmarks read: bundled captures, and a large one synthesised from them."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from envoy2mqtt.sim import Capture, load_capture
from envoy2mqtt.sim.capture import Recorded

LEGACY: Final = "3.9.36"
SMALL: Final = "7.6.175_with_cts"
BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"

LARGE_INVERTERS: Final = 60
INVERTERS: Final = "api_v1_production_inverters"
METERS: Final = "ivp_meters"
READINGS: Final = "ivp_meters_readings"
PRODUCTION: Final = "production.json"


@dataclass(frozen=True, slots=True)
class Site:
    """A kind of installation: a short key for tables and how to make its capture."""

    key: str
    label: str
    make: Callable[[], Capture]


def with_documents(capture: Capture, documents: dict[str, Any]) -> Capture:
    """The capture with some JSON recordings replaced (served as recorded: 200, JSON)."""
    recordings = dict(capture.recordings)
    for name, document in documents.items():
        recordings[name] = Recorded(
            200, "application/json", json.dumps(document).encode(), document
        )
    return dataclasses.replace(capture, recordings=recordings)


def with_serial(capture: Capture, serial: str) -> Capture:
    """The capture as if read from a gateway with another serial (fleets need distinct ones)."""
    info = capture.recordings["info"]
    body = info.body.replace(f"<sn>{capture.serial}</sn>".encode(), f"<sn>{serial}</sn>".encode())
    recordings = {**capture.recordings, "info": dataclasses.replace(info, body=body)}
    return dataclasses.replace(capture, serial=serial, recordings=recordings)


@functools.cache
def large_capture() -> Capture:
    """60 microinverters, 5 batteries, three-phase CTs: the battery capture, extended."""
    base = load_capture(BATTERY)
    inverters = base.recordings[INVERTERS].document
    grown = [
        {**inverters[i % len(inverters)], "serialNumber": f"90{i:010d}"}
        for i in range(LARGE_INVERTERS)
    ]
    meters = [
        {**m, "phaseMode": "three", "phaseCount": 3} for m in base.recordings[METERS].document
    ]
    readings = copy.deepcopy(base.recordings[READINGS].document)
    for reading in readings:
        first, _, third = reading["channels"]
        reading["channels"][2] = {**first, "eid": third["eid"]}  # the third phase, live
    production = copy.deepcopy(base.recordings[PRODUCTION].document)
    for section in ("production", "consumption"):
        for entry in production.get(section, []):
            if lines := entry.get("lines"):
                entry["lines"] = [*lines[:2], copy.deepcopy(lines[0])]
    return with_documents(
        base, {INVERTERS: grown, METERS: meters, READINGS: readings, PRODUCTION: production}
    )


SITES: Final = {
    "small": Site(
        "small", f"7 inverters, 2 CTs, no battery ({SMALL})", lambda: load_capture(SMALL)
    ),
    "battery": Site(
        "battery",
        f"35 inverters, 5 batteries, Enpower, 3 split-phase CTs ({BATTERY})",
        lambda: load_capture(BATTERY),
    ),
    "large": Site(
        "large",
        "60 inverters, 5 batteries, Enpower, 3 three-phase CTs (synthesised)",
        large_capture,
    ),
    "legacy": Site(
        "legacy", f"12 inverters, no CTs, HTTP + Digest ({LEGACY})", lambda: load_capture(LEGACY)
    ),
}
