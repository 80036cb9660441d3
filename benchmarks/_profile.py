"""The bridge's cProfile statistics as tables: CPU by area of the code, and the top functions."""

from __future__ import annotations

import pstats
from collections import Counter
from pathlib import Path
from typing import Final

from _report import Table

# (substring of the file or built-in's name, area); the first match wins
AREAS: Final = (
    ("envoy2mqtt/catalog", "catalog: reading every metric of a snapshot"),
    ("envoy2mqtt/metric.py", "catalog: reading every metric of a snapshot"),
    ("envoy2mqtt/derived.py", "catalog: reading every metric of a snapshot"),
    ("envoy2mqtt/publisher.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/changes.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/topics.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/events.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/summary.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/discovery.py", "publisher, change detection, topics, events"),
    ("envoy2mqtt/mqtt.py", "MQTT link (aiomqtt, paho)"),
    ("aiomqtt", "MQTT link (aiomqtt, paho)"),
    ("paho", "MQTT link (aiomqtt, paho)"),
    ("pyenphase", "pyenphase: parsing and models"),
    ("orjson", "pyenphase: parsing and models"),
    ("awesomeversion", "pyenphase: parsing and models"),
    ("sslproto", "TLS (ssl, asyncio sslproto)"),
    ("_ssl.", "TLS (ssl, asyncio sslproto)"),
    ("ssl.py", "TLS (ssl, asyncio sslproto)"),
    ("aiohttp", "HTTP client (aiohttp, yarl, multidict)"),
    ("yarl", "HTTP client (aiohttp, yarl, multidict)"),
    ("multidict", "HTTP client (aiohttp, yarl, multidict)"),
    ("envoy2mqtt/", "bridge lanes and gateway edge"),
    ("asyncio", "asyncio event loop and sockets"),
    ("selectors", "asyncio event loop and sockets"),
    ("socket", "asyncio event loop and sockets"),
    ("dataclasses", "dataclasses.replace and friends"),
)
OTHER: Final = "other (stdlib, builtins)"


def area(filename: str, function: str) -> str:
    """Which part of the bridge a function belongs to."""
    where = f"{filename} {function}"
    return next((name for key, name in AREAS if key in where), OTHER)


def profile_tables(path: Path, gateways: int, top: int = 15) -> list[Table]:
    """CPU share by area and the functions with the most own time."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    by_area: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, own, _cum, callers) in entries.items():
        where = (filename, function)
        if filename == "~" and callers:  # a builtin: count it where it was called from
            caller = max(callers.items(), key=lambda item: item[1][3])[0]
            where = (caller[0], caller[2])
        by_area[area(*where)] += own
    areas = Table(
        "profile_areas",
        f"Where the bridge's CPU goes at {gateways} gateways (cProfile, own time)",
        ("area", "% of CPU"),
    )
    for name, own in by_area.most_common():
        areas.add(name, round(100 * own / total, 1))
    areas.notes.append(
        "cProfile with `time.process_time` over the measuring window only "
        "(benchmarks/_profiled.py); profiling slows the bridge, so shares, not seconds, count."
    )
    functions = Table(
        "profile_functions",
        f"The {top} functions with the most own CPU time at {gateways} gateways",
        ("function", "where", "% of CPU (own)", "% of CPU (with callees)", "calls"),
    )
    ranked = sorted(entries.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, function), (_cc, calls, own, cumulative, _callers) in ranked:
        functions.add(
            function,
            f"{_short(filename)}:{line}" if line else _short(filename),
            round(100 * own / total, 1),
            round(100 * cumulative / total, 1),
            calls,
        )
    return [areas, functions]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/envoy2mqtt/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
