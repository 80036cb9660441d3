"""The metered documents, written from the ledger: production.json, /production, v1, CTs.

Every power is the one the ledger holds for its flow and phase, and every energy counter
is the capture's own value plus what the ledger booked, so the counters integrate the
powers served and never run backwards (except the net meter's lifetime, which is import
minus export, as the gateway keeps it).
"""

from __future__ import annotations

from typing import Any, Final

from .ledger import Ledger

# /ivp/meters measurementType -> the ledger's flow
FLOWS: Final = {
    "production": "production",
    "net-consumption": "net",
    "total-consumption": "consumption",
    "storage": "storage",
}
NET: Final = "net"


def write_production(
    document: dict[str, Any], original: dict[str, Any], ledger: Ledger, *, now: float
) -> None:
    """production.json or /production: the inverters, the production and consumption CTs."""
    for entry, orig in pairs(document.get("production"), original.get("production")):
        if orig.get("type") == "inverters":
            counter = ledger.counter(("production", None))
            entry["wNow"] = round(max(ledger.power(("production", None)), 0.0))
            if "whLifetime" in orig:
                entry["whLifetime"] = round(orig["whLifetime"] + counter.delivered)
            if orig.get("readingTime"):
                entry["readingTime"] = int(now)
        elif orig.get("activeCount"):
            _write_entry(entry, orig, ledger, "production", now)
    for entry, orig in pairs(document.get("consumption"), original.get("consumption")):
        if orig.get("activeCount"):
            flow = NET if orig.get("measurementType") == "net-consumption" else "consumption"
            _write_entry(entry, orig, ledger, flow, now)


def _write_entry(
    entry: dict[str, Any], original: dict[str, Any], ledger: Ledger, flow: str, now: float
) -> None:
    """One metered entry and its per-phase lines."""
    lines = pairs(entry.get("lines"), original.get("lines"))
    parts = [(entry, original, None), *((p, o, i) for i, (p, o) in enumerate(lines))]
    for part, opart, phase in parts:
        key = (flow, phase)
        counter = ledger.counter(key)
        part["wNow"] = ledger.power(key)
        lifetime = float(opart.get("whLifetime") or 0) + counter.delivered
        if flow == NET:
            lifetime -= counter.received
        if "whLifetime" in opart:
            part["whLifetime"] = lifetime
        # the gateway keeps no daily or weekly count of net energy (the capture's are 0)
        if flow != NET and "whToday" in opart:
            part["whToday"] = min(counter.today, lifetime)
        if flow != NET and opart.get("whLastSevenDays"):
            part["whLastSevenDays"] = min(counter.seven_days, lifetime)
        if opart.get("readingTime"):
            part["readingTime"] = int(now)


def write_v1(document: dict[str, Any], original: dict[str, Any], ledger: Ledger) -> None:
    """/api/v1/production: the production counters, rounded to whole Wh as the gateway does."""
    counter = ledger.counter(("production", None))
    lifetime = float(original.get("wattHoursLifetime", 0) or 0) + counter.delivered
    document["wattsNow"] = round(max(ledger.power(("production", None)), 0.0))
    document["wattHoursToday"] = round(min(counter.today, lifetime))
    document["wattHoursSevenDays"] = round(min(counter.seven_days, lifetime))
    document["wattHoursLifetime"] = round(lifetime)


def write_readings(
    document: list[Any],
    original: list[Any],
    ledger: Ledger,
    *,
    kinds: dict[Any, str],
    phases: int,
    now: float,
) -> None:
    """/ivp/meters/readings: each CT and its first `phases` channels; the rest read 0 W."""
    for reading, orig in pairs(document, original):
        flow = FLOWS.get(kinds.get(orig.get("eid"), ""))
        if flow is None:
            continue
        channels = pairs(reading.get("channels"), orig.get("channels"))
        parts = [(reading, orig, None), *((p, o, i) for i, (p, o) in enumerate(channels))]
        for part, opart, phase in parts:
            live = phase is None or phase < phases
            key = (flow, phase)
            watts = ledger.power(key) if live else 0.0
            part["activePower"] = watts
            if "instantaneousDemand" in opart:
                part["instantaneousDemand"] = watts
            if live:
                counter = ledger.counter(key)
                part["actEnergyDlvd"] = float(opart.get("actEnergyDlvd", 0.0)) + counter.delivered
                part["actEnergyRcvd"] = float(opart.get("actEnergyRcvd", 0.0)) + counter.received
            if "timestamp" in opart:
                part["timestamp"] = int(now)


def pairs(current: Any, original: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Served entries side by side with the capture's, where both are objects."""
    if not isinstance(current, list) or not isinstance(original, list):
        return []
    return [
        (c, o)
        for c, o in zip(current, original, strict=False)
        if isinstance(c, dict) and isinstance(o, dict)
    ]
