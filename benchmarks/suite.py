"""envoy2mqtt's benchmark suite: one command, Markdown tables on stdout, CSVs in results/.

    python benchmarks/suite.py            # the full suite, about ten minutes on two cores
    python benchmarks/suite.py --quick    # CI: short windows, 10 gateways only

Sections: CPU per snapshot and per message (in-process); a simulated day of MQTT traffic
with change detection against publishing everything, audited; gateway requests per minute
by endpoint; one bridge's steady-state RSS; and fleets of 10, 100 and 500 simulated gateways
in one bridge process against a real Mosquitto. `python benchmarks/chart.py` draws the PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from _cpu import measure, read_stream
from _fleet import PROFILED, BridgeCommand, FleetResult, run_fleet
from _profile import profile_tables
from _report import Table, machine
from _sites import SITES

HERE: Final = Path(__file__).resolve().parent
RESULTS: Final = HERE / "results"
DAY_SITES: Final = ("legacy", "small", "battery")
FLEET_MIX: Final = "legacy,small,battery"
NOMINAL_SHARE: Final = 95.0  # % of the default cadences' requests a bridge must serve
CPU_TARGET: Final = 1.0  # cores, at 500 gateways
RSS_TARGET: Final = 500.0  # MB, at 500 gateways
REDUCTION_TARGET: Final = 80.0  # % fewer messages than publishing everything
WARMUP: Final = 10.0  # minutes: longer than the 300 s heartbeat


@dataclass(frozen=True, slots=True)
class Plan:
    """How much of everything to run."""

    mode: str
    cpu_seconds: float  # virtual seconds of lane reads to time publishing over
    cpu_repetitions: int
    day: tuple[tuple[str, float, float, float], ...]  # site, start hour, hours, warm-up min
    rss_sites: tuple[str, ...]
    rss_window: float
    scale: tuple[tuple[int, float], ...]  # gateways, measuring window (s)
    profile: tuple[int, float]  # the fleet profiled with --profile


FULL = Plan(
    mode="full",
    cpu_seconds=600,
    cpu_repetitions=3,
    day=(  # the longest first, so two at a time finish together
        ("battery", 0, 6, 0),
        ("battery", 6, 6, WARMUP),
        ("battery", 12, 6, WARMUP),
        ("battery", 18, 6, WARMUP),
        ("small", 0, 12, 0),
        ("small", 12, 12, WARMUP),
        ("legacy", 0, 24, 0),
    ),
    rss_sites=("small", "large"),
    rss_window=20,
    scale=((10, 60), (100, 60), (500, 60)),
    profile=(500, 30),
)
QUICK = Plan(
    mode="quick",
    cpu_seconds=120,
    cpu_repetitions=2,
    day=tuple((site, 11.5, 1.0, 0.0) for site in DAY_SITES),
    rss_sites=("small",),
    rss_window=8,
    scale=((10, 12),),
    profile=(10, 10),
)


def show(table: Table) -> Table:
    """Print a table as soon as it is ready."""
    print(table.markdown(), flush=True)
    return table


# -- CPU ------------------------------------------------------------------------------------


async def cpu_section(plan: Plan) -> Table:
    """CPU time per snapshot and per published message, per site."""
    table = Table(
        "cpu",
        "CPU time per snapshot and per published message (in-process, one core)",
        (
            "site",
            "values/snapshot",
            "snapshots timed",
            "messages/snapshot",
            "CPU µs/snapshot",
            "CPU µs/message",
            "full catalog read µs/snapshot",
            "first snapshot ms",
            "first snapshot messages",
        ),
    )
    for site in ("small", "battery", "large"):
        stream = await read_stream(site, plan.cpu_seconds)
        r = measure(site, stream, plan.cpu_repetitions)
        table.add(
            site,
            r.values,
            r.snapshots,
            round(r.messages_per_snapshot, 1),
            round(r.us_per_snapshot, 1),
            round(r.us_per_message, 1),
            round(r.catalog_us, 1),
            round(r.first_ms, 2),
            r.first_messages,
        )
    table.notes += [
        f"Lane reads over {plan.cpu_seconds:.0f} virtual seconds at noon, default cadences, "
        "read over real HTTP(S) from the simulated gateway; then `publish_snapshot` on each "
        f"with a counting link, timed by `time.process_time`, median of "
        f"{plan.cpu_repetitions} fresh publishers. The first snapshot (all values plus Home "
        "Assistant discovery) is timed apart.",
        "CPU µs/message = publishing CPU over the messages it produced (the per-snapshot "
        "work included).",
        "Full catalog read: every source of the catalog read from each snapshot "
        "(`catalog.values`); the publisher re-reads only the sources whose inputs changed, "
        "so a publish costs less than this.",
        *(f"{key}: {site.label}" for key, site in SITES.items() if key != "legacy"),
    ]
    return show(table)


# -- a simulated day ------------------------------------------------------------------------


async def day_job(job: tuple[str, float, float, float], folder: Path) -> dict[str, Any]:
    """One stretch of one site's day, in its own process."""
    site, start, hours, warmup = job
    out = folder / f"day-{site}-{start:g}.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_day.py"),
        "--site",
        site,
        "--start-hour",
        str(start),
        "--hours",
        str(hours),
        "--warmup",
        str(warmup),
        "--out",
        str(out),
    )
    if await process.wait() != 0:
        raise RuntimeError(f"the simulated day of {site} from {start} h failed")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["start"] = start
    return result


async def day_runs(plan: Plan, folder: Path) -> dict[str, dict[str, Any]]:
    """Every stretch, as many at a time as there are CPUs; merged per site."""
    slots = asyncio.Semaphore(os.cpu_count() or 2)

    async def one(job: tuple[str, float, float, float]) -> dict[str, Any]:
        async with slots:
            return await day_job(job, folder)

    parts = await asyncio.gather(*(one(job) for job in plan.day))
    return {site: merge([p for p in parts if p["site"] == site]) for site in DAY_SITES}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Stretches of one site's day as one."""
    parts.sort(key=lambda p: p["start"])
    merged: dict[str, Any] = {
        "site": parts[0]["site"],
        "start": parts[0]["start"],
        "hours": sum(p["hours"] for p in parts),
        "max_gap_s": max(p["max_gap_s"] for p in parts),
        "requests": dict(sum((Counter(p["requests"]) for p in parts), Counter())),
        "groups": dict(sum((Counter(p["groups"]) for p in parts), Counter())),
    }
    for key in ("snapshots", "discovery", "changes", "violations"):
        merged[key] = sum(p[key] for p in parts)
    merged["modes"] = {
        mode: {
            "messages": sum(p["modes"][mode]["messages"] for p in parts),
            "bytes": sum(p["modes"][mode]["bytes"] for p in parts),
            "hourly": [h for p in parts for h in p["modes"][mode]["hourly"]],
        }
        for mode in parts[0]["modes"]
    }
    return merged


def day_tables(days: dict[str, dict[str, Any]]) -> list[Table]:
    """Messages and bytes per hour, the busiest metrics, and requests per minute."""
    messages = Table(
        "messages",
        "MQTT traffic over a simulated day: change detection against publishing everything",
        (
            "site",
            "hours",
            "lane reads",
            "msgs/h change detection",
            "msgs/h everything",
            "msgs/h on any change",
            "fewer messages %",
            "kB/h change detection",
            "kB/h everything",
            "fewer bytes %",
            "changes beyond deadband",
            "left outside deadband",
            "longest silence s",
            "discovery messages",
        ),
    )
    hourly = Table(
        "messages_hourly",
        "Messages per hour of the simulated day",
        ("site", "hour", "change detection", "everything", "on any change"),
    )
    top = Table(
        "top_metrics",
        "Where the change-detected messages come from (busiest metrics)",
        ("site", "metric", "msgs/h", "share %"),
    )
    requests = Table(
        "requests",
        "Gateway requests per minute by endpoint, default cadences (from the simulator)",
        ("site", "endpoint", "requests/min"),
    )
    for site, day in days.items():
        hours = day["hours"]
        modes = day["modes"]
        bridge, everything, anything = (modes[m] for m in ("bridge", "everything", "any_change"))
        messages.add(
            site,
            hours,
            day["snapshots"],
            round(bridge["messages"] / hours),
            round(everything["messages"] / hours),
            round(anything["messages"] / hours),
            round(100 * (1 - bridge["messages"] / everything["messages"]), 1),
            round(bridge["bytes"] / hours / 1000, 1),
            round(everything["bytes"] / hours / 1000, 1),
            round(100 * (1 - bridge["bytes"] / everything["bytes"]), 1),
            day["changes"],
            day["violations"],
            round(day["max_gap_s"]),
            day["discovery"],
        )
        for offset, counts in enumerate(
            zip(bridge["hourly"], everything["hourly"], anything["hourly"], strict=True)
        ):
            hourly.add(site, int(day["start"]) + offset, *counts)
        states = sum(day["groups"].values()) or 1
        for metric, count in list(day["groups"].items())[:5]:
            top.add(site, metric, round(count / hours), round(100 * count / states, 1))
        minutes = hours * 60
        rates = sorted(day["requests"].items(), key=lambda item: -item[1])
        for endpoint, count in rates:
            requests.add(site, endpoint, round(count / minutes, 2))
        requests.add(site, "all", round(sum(day["requests"].values()) / minutes, 2))
    messages.notes += [
        "Change detection: the bridge as shipped (deadbands, 300 s heartbeat). Everything: "
        "every value on every lane read. On any change: a value whenever its text changes, "
        "no deadband, no heartbeat. Events, summary and availability count alike in all "
        "three; discovery is counted apart.",
        "The gateway is read lane by lane at the default cadences in virtual time over real "
        "HTTP(S); the simulator's day has sun, clouds, load noise, a battery and a "
        "quarter-hour grid outage at 18:30 (sites with an Enpower).",
        "Audit: after every lane read, each value a subscriber last received must be within "
        "its deadband of the value just read; 'left outside deadband' counts the failures. "
        "Zero means every change beyond the deadband was delivered by the read that saw it, "
        "within one cadence.",
        "Longest silence: the most time a topic went without a message. The heartbeat is "
        "300 s; lanes other than the fast one also sit out the 8-minute quiet window at 23:00.",
        f"Target: at least {REDUCTION_TARGET:.0f}% fewer messages than publishing everything.",
    ]
    requests.notes.append(
        "Steady-state polling only (connect and probe excluded); a simulated day, so the "
        "300 s inverter lane and the nightly quiet window are counted in proportion."
    )
    for table in (messages, top, requests):
        show(table)
    return [messages, hourly, top, requests]


def nominal_rates(requests: Table) -> dict[str, float]:
    """Requests per minute of one gateway of each family, from the requests table."""
    return {str(row[0]): float(row[2] or 0) for row in requests.rows if row[1] == "all"}


# -- fleets ---------------------------------------------------------------------------------


def rss_table(results: dict[str, FleetResult]) -> Table:
    """One gateway, one bridge: what a Raspberry Pi owner pays."""
    table = Table(
        "rss",
        "One bridge, one gateway: steady-state memory and CPU",
        (
            "site",
            "RSS MB",
            "peak RSS MB",
            "bridge CPU % of a core",
            "MQTT msgs/s",
            "gateway requests/min",
        ),
    )
    for site, r in results.items():
        table.add(
            site,
            round(r.bridge_rss_mb, 1),
            round(r.bridge_peak_mb, 1),
            round(100 * r.bridge_cpu, 2),
            round(r.messages_per_s, 1),
            round(sum(r.requests_per_min.values()), 1),
        )
    window = next(iter(results.values())).window if results else 0
    table.notes.append(
        f"The real bridge process (`python -m envoy2mqtt.cli run`), psutil, over a {window:.0f} s "
        "window after start-up; RSS at the end of the window, peak = VmHWM."
    )
    return show(table)


def scale_table(
    results: list[tuple[str, FleetResult]], nominal: dict[str, float], mix: str
) -> Table:
    """Fleets through one bridge."""
    table = Table(
        "scale",
        "Many gateways in one bridge process (default cadences, one real Mosquitto)",
        (
            "gateways",
            "variant",
            "bridge CPU % of a core",
            "bridge RSS MB",
            "peak RSS MB",
            "broker CPU %",
            "simulators CPU %",
            "MQTT msgs/s",
            "MQTT kB/s",
            "gateway requests/s",
            "% of nominal",
            "grid flips",
            "grid latency p50 s",
            "grid latency p99 s",
            "grid latency max s",
            "missed",
            "all online after s",
            "start-up done after s",
            "window s",
        ),
    )
    for variant, r in results:
        share = served(r, nominal, mix)
        table.add(
            r.gateways,
            variant,
            round(100 * r.bridge_cpu, 1),
            round(r.bridge_rss_mb),
            round(r.bridge_peak_mb),
            round(100 * r.broker_cpu, 1),
            round(100 * r.farm_cpu, 1),
            round(r.messages_per_s),
            round(r.kbytes_per_s, 1),
            round(r.requests_total_per_s, 1),
            round(share) if share is not None else None,
            r.flips,
            _seconds(r.latency(0.5)),
            _seconds(r.latency(0.99)),
            _seconds(r.latency(1.0)),
            r.missed,
            round(r.startup, 1),
            round(r.settled, 1),
            round(r.window),
        )
    table.notes += [
        f"Gateways cycle through the families {mix} (a third each); every simulated house is "
        "at local noon. The simulators run in a process of their own, so the bridge's CPU "
        "and RSS (psutil, over the measuring window after start-up and discovery) are its "
        "own. QUIET_WINDOW=off so the figures do not depend on the time of day; everything "
        "else is at its default.",
        "Grid latency: a simulator opens or closes one Enpower relay at a time (each gateway "
        "every 8 s or so); latency is wall-clock time until the new `grid_status` reaches a "
        "subscriber. It includes the 1 s fast lane and GRID_DEBOUNCE=2 agreeing reads.",
        "% of nominal: requests served against what the default cadences ask for (from the "
        "requests table); below 100 means the bridge could not keep up.",
        "% of nominal needs a window of 60 s or more: shorter ones miss the 60 s normal lane "
        "of some gateways. Start-up done: every gateway's discovery and first states are on "
        "the broker (its retained-topic count stopped growing).",
        f"Targets at 500 gateways: under {CPU_TARGET:.0f} core and under {RSS_TARGET:.0f} MB.",
    ]
    return show(table)


def served(r: FleetResult, nominal: dict[str, float], mix: str) -> float | None:
    """Requests the fleet got, as % of what the default cadences ask for."""
    families = mix.split(",")
    fleet = Counter(families[i % len(families)] for i in range(r.gateways))
    expected = sum(n * nominal.get(f, 0.0) for f, n in fleet.items()) / 60
    return 100 * r.requests_total_per_s / expected if expected else None


def _seconds(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def targets_table(
    days: dict[str, dict[str, Any]],
    scale: list[tuple[str, FleetResult]],
    nominal: dict[str, float],
) -> Table:
    """Each target, what was measured, and whether it is met."""
    table = Table("targets", "Targets", ("target", "measured", "met"))
    if days:
        for site, day in days.items():
            modes = day["modes"]
            reduction = 100 * (1 - modes["bridge"]["messages"] / modes["everything"]["messages"])
            table.add(
                f"≥ {REDUCTION_TARGET:.0f}% fewer messages than everything ({site})",
                f"{reduction:.2f}%",
                "yes" if reduction >= REDUCTION_TARGET else "no",
            )
        left = sum(day["violations"] for day in days.values())
        table.add(
            "every change beyond the deadband delivered within one cadence",
            f"{left} values left outside their deadband",
            "yes" if left == 0 else "no",
        )
    shipped = [r for variant, r in scale if variant == "as shipped" and r.gateways == 500]
    if shipped:
        r = shipped[0]
        share = served(r, nominal, FLEET_MIX) or 0.0
        table.add(
            "500 gateways under one core, keeping the default cadences",
            f"{r.bridge_cpu:.2f} cores, {share:.0f}% of the requests the cadences ask for",
            "yes" if r.bridge_cpu < CPU_TARGET and share >= NOMINAL_SHARE else "no",
        )
        table.add(
            "500 gateways under 500 MB",
            f"{r.bridge_rss_mb:.0f} MB",
            "yes" if r.bridge_rss_mb < RSS_TARGET else "no",
        )
    else:
        table.add("500 gateways under one core and 500 MB", "not run (--quick)", "-")
    return show(table)


# -- the whole suite ------------------------------------------------------------------------


async def run(
    plan: Plan, out: Path, work: Path, sections: set[str], *, profile: bool = False
) -> list[Table]:
    """Run the chosen sections (and the profile) and write every table as CSV into `out`."""
    tables = [show(machine(plan.mode))]
    if "cpu" in sections:
        tables.append(await cpu_section(plan))
    merged: dict[str, dict[str, Any]] = {}
    nominal: dict[str, float] = {}
    days: asyncio.Task[dict[str, dict[str, Any]]] | None = None
    if "day" in sections:
        days = asyncio.create_task(day_runs(plan, work))
    if "rss" in sections:  # memory does not mind sharing the CPUs with the simulated days
        single = {
            site: await run_fleet(1, site, plan.rss_window, work / f"rss-{site}")
            for site in plan.rss_sites
        }
        tables.append(rss_table(single))
    if days is not None:
        merged = await days
        day = day_tables(merged)
        nominal = nominal_rates(day[3])
        tables += day
    scale: list[tuple[str, FleetResult]] = []
    if "scale" in sections:
        for count, window in plan.scale:
            result = await run_fleet(count, FLEET_MIX, window, work / f"fleet-{count}")
            scale.append(("as shipped", result))
        tables.append(scale_table(scale, nominal, FLEET_MIX))
    if profile:
        count, window = plan.profile
        stats = work / "bridge.prof"
        await run_fleet(
            count,
            FLEET_MIX,
            window,
            work / f"profile-{count}",
            bridge=BridgeCommand(PROFILED, profile=stats),
        )
        tables += [show(t) for t in profile_tables(stats, count)]
    tables.append(targets_table(merged, scale, nominal))
    for table in tables:
        table.write_csv(out)
    return tables


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows, 10 gateways only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the CSVs go")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the largest fleet with the bridge under cProfile (about 2 minutes)",
    )
    parser.add_argument(
        "--only",
        default="cpu,day,rss,scale",
        help="comma-separated sections to run (cpu, day, rss, scale)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="envoy2mqtt-bench-") as work:
        sections = set(args.only.split(","))
        asyncio.run(run(plan, args.out, Path(work), sections, profile=args.profile))
    print(f"CSVs in {args.out}; {time.monotonic() - started:.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
