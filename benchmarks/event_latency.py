"""Event latency: the simulated gateway flips the grid and changes the battery; time to arrival.

    python benchmarks/event_latency.py            # instant and field profiles, 60 flips each
    python benchmarks/event_latency.py --profile field       # only the field (~6 min)
    python benchmarks/event_latency.py --quick    # 6 flips, fast lane at 0.2 s (CI smoke)

Profiles: `instant` replays the capture in milliseconds; `field` is the gateway as field
reports describe firmware D8.3.6086 (`envoy2mqtt.sim.Field.current_firmware()`, full scale:
production.json 30-55 s, inventory.json ~20 s, home.json over a minute, /ivp/* ~0.36 s,
answered concurrently; the relay reads `open synchronizing` / `open synchronized` and
recloses 8-15 s after the grid returns), `moderate` the slower pages of 5-9 s. A flip is
timed from the moment the relay's served state changed (the reclose, for a return).

A real mosquitto, the simulated gateway (battery capture, over real HTTPS) and the real bridge
(`App`, default cadences, debounce 2) run on 127.0.0.1; a subscriber timestamps each event on
arrival. Every clock is `time.monotonic()` in this one process: the gateway's log of requests
gives the first read of a new state and the read that confirms it. Prints Markdown tables and
writes them to benchmarks/results/event_latency.csv (and every sample to
event_latency_samples.csv).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a clone: the broker helper is in tests/
    sys.path.insert(0, str(ROOT))

from envoy2mqtt.polling.events import SnapshotSettled  # noqa: E402
from envoy2mqtt.sim import Field, RequestRecord, SimulatedGateway  # noqa: E402
from tests.broker import Mosquitto, Record, Recorder  # noqa: E402
from tests.harness import bridge_settings, in_flight, running  # noqa: E402

CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"  # Enpower relay, storage CT, Encharge
RELAY: Final = "/ivp/ensemble/relay"
TARGET_MARGIN: Final = 0.250  # the target: p99 below the fast interval + 250 ms
POWERS: Final = ((2500, "discharging"), (0, "idle"), (-2000, "charging"))
SOCS: Final = ((15, ((20, "below"),)), (8, ((10, "below"),)), (50, ((10, "above"), (20, "above"))))
RESULTS: Final = ROOT / "benchmarks" / "results"
FLIP: Final = "grid: flip -> arrival"
FIRST_READ: Final = "grid: first read of new state -> arrival"
CONFIRM_READ: Final = "grid: confirming read -> arrival"
LABELS: Final = {
    "grid": FLIP,
    "battery": "battery state: change -> arrival",
    "battery_soc": "battery SOC threshold: change -> arrival",
}
EVERY_PUBLISH: Final = "bridge processing, every publish"
EVENT_PUBLISH: Final = "bridge processing, publishes raising an event"
PROFILES: Final = ("instant", "field", "moderate")


def field_of(profile: str, seed: int, tail: float | None = None) -> Field:
    """The simulator's behaviour for a profile (battery noise off: this measures latency;
    `benchmarks/steady_day.py` measures what the noise does to events). `tail`: how often a
    fast answer takes the field's worst time (default: the simulator's)."""
    if profile == "field":
        field_profile = Field.current_firmware(seed=seed)
    elif profile == "moderate":
        field_profile = Field.moderate(seed=seed)
    else:
        return Field.off()
    field_profile = replace(field_profile, battery_noise=False, housekeeping=False)
    if tail is not None:
        field_profile = replace(field_profile, fast_worst_share=tail)
    return field_profile


@dataclass(frozen=True, slots=True)
class Options:
    """What to run."""

    flips: int = 60
    fast: float = 1.0
    battery: float = 5.0
    debounce: int = 2
    seed: int = 4
    out: Path = RESULTS
    profile: str = "instant"
    tail: float | None = None  # the share of fast answers at the field's worst time


@dataclass(frozen=True, slots=True)
class Change:
    """A change made on the gateway and the events it must raise: (type, `to` or threshold)."""

    kind: str
    at: float
    expect: tuple[tuple[str, object], ...]


@dataclass(slots=True)
class Run:
    """What one run measured."""

    options: Options
    samples: dict[str, list[float]] = field(default_factory=dict)
    rows: list[dict[str, object]] = field(default_factory=list)
    per_minute: dict[str, float] = field(default_factory=dict)
    overlaps: int = 0
    max_in_flight: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)  # bridge's classes: all/fast/slow
    first_grid: float = float("nan")  # seconds from start to the first grid_status
    first_production: float = float("nan")  # ... to the first production_power
    missed: int = 0
    spurious: int = 0


async def drive(gateway: SimulatedGateway, options: Options, rng: random.Random) -> list[Change]:
    """Flip the grid at random moments; between flips, change the battery's state or charge."""
    changes: list[Change] = []
    powers, socs, on = 0, 0, True
    for i in range(options.flips):
        gap = rng.uniform(2.5, 6.0) * options.fast  # debounce 2 confirms within 2 reads
        await asyncio.sleep(gap / 2)
        if i % 3 == 1:  # state of charge: every third gap, so the battery lane reads each
            soc, crossings = SOCS[socs % len(SOCS)]
            socs += 1
            gateway.set_battery(soc=soc)
            expect = tuple(("battery_soc", c) for c in crossings)
            changes.append(Change("battery_soc", time.monotonic(), expect))
        else:
            watts, state = POWERS[powers % len(POWERS)]
            powers += 1
            gateway.set_battery(power_w=watts)
            changes.append(Change("battery", time.monotonic(), (("battery", state),)))
        await asyncio.sleep(gap / 2)
        on = not on
        gateway.set_grid(on)
        flipped = await relay_moved(gateway, on)
        changes.append(Change("grid", flipped, (("grid", "on-grid" if on else "off-grid"),)))
    await asyncio.sleep(options.debounce * options.fast + options.battery + 1.0)
    return changes


async def relay_moved(gateway: SimulatedGateway, on: bool, timeout: float = 60.0) -> float:
    """When the relay's served state last turned to `on` (a field reclose takes 8-15 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.grid_log and gateway.grid_log[-1][1] == on:
            return gateway.grid_log[-1][0]
        await asyncio.sleep(0.01)
    raise TimeoutError(f"the simulated relay did not turn {'on' if on else 'off'}")


def match(
    changes: list[Change], events: list[tuple[float, dict[str, object]]]
) -> tuple[list[tuple[Change, float]], int]:
    """Pair each expected event with the first unused one arriving after its change."""
    used: set[int] = set()
    pairs: list[tuple[Change, float]] = []
    for change in changes:
        for kind, detail in change.expect:
            for index, (arrived, body) in enumerate(events):
                if index not in used and arrived > change.at and describes(body, kind, detail):
                    used.add(index)
                    pairs.append((change, arrived))
                    break
    return pairs, len(events) - len(used)


def describes(body: dict[str, object], kind: str, detail: object) -> bool:
    """Whether an event is of this type and names this new state (or threshold crossing)."""
    if body["type"] != kind:
        return False
    if kind == "battery_soc":
        return (body["threshold"], body["direction"]) == detail
    return body["to"] == detail


def grid_reads(log: Sequence[RequestRecord], after: float) -> list[RequestRecord]:
    """The gateway's answers to relay reads begun after `after`, oldest first."""
    return sorted((r for r in log if r.path == RELAY and r.start >= after), key=lambda r: r.start)


async def measure(options: Options) -> Run:
    """Run the broker, the gateway, the bridge and a subscriber; drive changes; collect."""
    run = Run(options)
    processed: list[tuple[float, float]] = []  # (time.time() when done, seconds taken)
    field_profile = field_of(options.profile, options.seed, options.tail)
    with tempfile.TemporaryDirectory() as scratch, Mosquitto(Path(scratch) / "mqtt") as broker:
        async with SimulatedGateway(capture=CAPTURE, field=field_profile) as gateway:
            gateway.set_battery(soc=50, power_w=-2000)
            settings = bridge_settings(
                gateway,
                broker.port,
                "bench",
                Path(scratch) / "state",
                fast_interval=options.fast,
                battery_interval=options.battery,
                grid_debounce=options.debounce,
                # latency of the battery event itself: the dwell that keeps the field's noise
                # from raising events (BATTERY_STATE_DWELL) would only add its 30 s
                battery_state_dwell=0,
            )
            base = f"bench/{gateway.serial}"
            ready = {f"{base}/grid_status", f"{base}/battery_state"}
            # the timing subscriber wants only events, as a load-shedding automation does
            async with (
                Recorder("127.0.0.1", broker.port, f"{base}/event") as recorder,
                Recorder("127.0.0.1", broker.port, f"{base}/+") as states,
            ):
                started = time.monotonic()
                async with running(settings) as app:
                    # the gateway's public event stream: when each snapshot was settled, and
                    # how long reading it into values took since it was taken
                    app.bridges[0].events.subscribe().on(
                        SnapshotSettled,
                        lambda s: processed.append(
                            (time.time(), time.time() - s.taken_at.timestamp())
                        ),
                    )
                    await states.wait_for(lambda r: ready <= {x.topic for x in r}, timeout=240)
                    production = f"{base}/production_power"
                    await states.wait_for(lambda r: any(x.topic == production for x in r), 240)
                    run.first_grid = first_at(states.records, f"{base}/grid_status") - started
                    run.first_production = first_at(states.records, production) - started
                    began = time.monotonic()
                    changes = await drive(gateway, options, random.Random(options.seed))
                    ended = time.monotonic()
            log = list(gateway.stats.log)
            run.overlaps = gateway.stats.overlaps
            run.max_in_flight = gateway.stats.max_in_flight
            run.in_flight = in_flight(log)
    collect(run, changes, recorder.on(f"{base}/event"), log, processed)
    minutes = (ended - began) / 60
    counts = Counter(r.path for r in log if began <= r.start <= ended)
    run.per_minute = {path: n / minutes for path, n in counts.most_common()}
    return run


def first_at(records: Sequence[Record], topic: str) -> float:
    """When the first message on `topic` arrived (time.monotonic)."""
    return min(r.t for r in records if r.topic == topic)


def collect(
    run: Run,
    changes: list[Change],
    records: list[Record],
    log: list[RequestRecord],
    processed: list[tuple[float, float]],
) -> None:
    """Turn changes, arrivals, the gateway's log and processing times into samples."""
    events = [(r.t, json.loads(r.payload)) for r in records]
    pairs, run.spurious = match(changes, events)
    run.missed = sum(len(c.expect) for c in changes) - len(pairs)
    samples = run.samples = {
        name: [] for name in (FLIP, FIRST_READ, CONFIRM_READ, *list(LABELS.values())[1:])
    }
    for change, arrived in pairs:
        row: dict[str, object] = {"kind": change.kind, "change_ms": ms(arrived - change.at)}
        samples[LABELS[change.kind]].append(arrived - change.at)
        reads = grid_reads(log, change.at) if change.kind == "grid" else []
        if change.kind == "grid":
            row |= catching_read(log, change.at, arrived)
        if reads and reads[0].end <= arrived:
            first = reads[0].end
            samples[FIRST_READ].append(arrived - first)
            row |= {"first_read_ms": ms(arrived - first)}
            # a plain new state is believed on its confirming read; the relay's own
            # transitional states (field firmware) on the first: no confirming read to time
            confirms = [r for r in reads[1 : run.options.debounce] if r.end <= arrived]
            if len(confirms) == run.options.debounce - 1 and confirms:
                samples[CONFIRM_READ].append(arrived - confirms[-1].end)
                row |= {"confirm_read_ms": ms(arrived - confirms[-1].end)}
        run.rows.append(row)
    samples[EVENT_PUBLISH] = [
        took for done, took in processed if any(raised(body, done, took) for _, body in events)
    ]
    samples[EVERY_PUBLISH] = [took for _, took in processed]


def catching_read(log: Sequence[RequestRecord], flipped: float, arrived: float) -> dict[str, float]:
    """The relay read whose answer raised the event (the last to end before it arrived): how
    long after the flip it began (negative: before, its answer came after) and how long the
    gateway took to answer it. The rest of a flip's time is the bridge's."""
    ended = [r for r in log if r.path == RELAY and r.status and r.end <= arrived]
    if not ended:
        return {}
    read = max(ended, key=lambda r: r.end)
    if read.end < flipped:
        return {}
    return {"relay_wait_ms": ms(read.start - flipped), "relay_answer_ms": ms(read.end - read.start)}


def raised(body: dict[str, object], done: float, took: float) -> bool:
    """Whether the event was raised by the publish that ended at `done` (wall clock)."""
    at = datetime.fromisoformat(str(body["at"])).timestamp()  # taken just before publishing
    return done - took - 0.005 <= at <= done


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for tables."""
    return round(seconds * 1000, 1)


def percentiles(values: list[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 and max, in milliseconds."""
    if len(values) == 1:
        return (ms(values[0]),) * 4
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return ms(cuts[49]), ms(cuts[94]), ms(cuts[98]), ms(max(values))


def table(run: Run) -> tuple[str, list[list[object]]]:
    """The Markdown report, and the latency table as CSV rows."""
    rows: list[list[object]] = [["measure (ms)", "n", "p50", "p95", "p99", "max"]]
    for name, values in run.samples.items():
        if values:
            rows.append([name, len(values), *percentiles(values)])
    lines = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|---|--:|--:|--:|--:|--:|")
    target = ms(run.options.fast + (TARGET_MARGIN if run.options.profile == "instant" else 0.5))
    for name in (FLIP, FIRST_READ):
        values = run.samples.get(name) or [float("nan")]
        p99 = percentiles(values)[2]
        verdict = "met" if p99 < target else "NOT met"
        lines.append(f"\n{name}: p99 {p99} ms, target {target} ms: **{verdict}**")
    lines += ["", "| endpoint | requests per minute |", "|---|--:|"]
    lines += [f"| `{path}` | {n:.1f} |" for path, n in run.per_minute.items()]
    lines += [f"| all | {sum(run.per_minute.values()):.1f} |", ""]
    lines += [
        "| check | value |",
        "|---|--:|",
        f"| start -> first grid_status (s) | {run.first_grid:.1f} |",
        f"| start -> first production_power (s) | {run.first_production:.1f} |",
        f"| most requests in flight at once | {run.in_flight.get('all', 0)} |",
        f"| most fast (/ivp/*) requests in flight at once | {run.in_flight.get('fast', 0)} |",
        f"| most slow pages in flight at once | {run.in_flight.get('slow', 0)} |",
        f"| expected events that never arrived | {run.missed} |",
        f"| events nobody caused | {run.spurious} |",
    ]
    options = run.options
    lines.insert(
        0,
        f"**{options.profile}** profile: {options.flips} grid flips, fast lane {options.fast} s, "
        f"battery lane {options.battery} s, grid debounce {options.debounce}, "
        f"seed {options.seed}"
        + (f", {options.tail:.0%} of fast answers at the worst time" if options.tail else "")
        + "\n",
    )
    return "\n".join(lines), rows


def write(run: Run, rows: list[list[object]]) -> None:
    """The latency table and every sample, as CSV under `options.out`."""
    out = run.options.out
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if run.options.profile == "instant" else f"_{run.options.profile}"
    if run.options.tail is not None:
        suffix += f"_tail{run.options.tail:g}"
    with (out / f"event_latency{suffix}.csv").open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    fields = ["kind", "change_ms", "first_read_ms", "confirm_read_ms"]
    fields += ["relay_wait_ms", "relay_answer_ms"]
    samples = out / f"event_latency{suffix}_samples.csv"
    with samples.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(run.rows)


def parse(argv: Sequence[str] | None) -> list[Options]:
    """Options from the command line: one per profile to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="6 flips, fast lane 0.2 s (smoke)")
    parser.add_argument("--flips", type=int, help="grid flips (default 60, quick 6)")
    parser.add_argument("--fast", type=float, help="fast lane interval, s (default 1)")
    parser.add_argument("--debounce", type=int, default=2, help="grid debounce reads")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--tail",
        type=float,
        help="share of /ivp/* answers at the field's worst time (1.58 s; default: the "
        "simulator's, 0.01)",
    )
    parser.add_argument(
        "--profile",
        choices=(*PROFILES, "both"),
        help="the simulated gateway: instant, field, moderate, or both instant and field "
        "(default both; instant with --quick)",
    )
    args = parser.parse_args(argv)
    quick = Options(flips=6, fast=0.2, battery=1.0) if args.quick else Options()
    profile = args.profile or ("instant" if args.quick else "both")
    profiles = ("instant", "field") if profile == "both" else (profile,)
    return [
        Options(
            flips=args.flips or quick.flips,
            fast=args.fast or quick.fast,
            battery=quick.battery,
            debounce=args.debounce,
            seed=args.seed,
            out=args.out,
            profile=name,
            tail=args.tail,
        )
        for name in profiles
    ]


def side_by_side(runs: Sequence[Run]) -> str:
    """The headline figures of every profile, one column each."""
    names = [run.options.profile for run in runs]
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "--:|" * len(runs)]

    def row(label: str, cell: Callable[[Run], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(run) for run in runs) + " |")

    def pct(name: str, index: int) -> Callable[[Run], str]:
        return lambda run: str(percentiles(run.samples.get(name) or [float("nan")])[index])

    row("start -> first grid_status (s)", lambda run: f"{run.first_grid:.1f}")
    row("start -> first production_power (s)", lambda run: f"{run.first_production:.1f}")
    row("grid flips", lambda run: str(len(run.samples.get(FLIP, []))))
    for index, label in enumerate(("p50", "p95", "p99", "max")):
        row(f"grid flip -> event {label} (ms)", pct(FLIP, index))
    row("most requests in flight", lambda run: str(run.in_flight.get("all", 0)))
    row(
        "most fast / slow in flight",
        lambda run: f"{run.in_flight.get('fast', 0)} / {run.in_flight.get('slow', 0)}",
    )
    row("events missed / spurious", lambda run: f"{run.missed} / {run.spurious}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the report; 1 if requests piled up or events went missing."""
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for options in parse(argv):
        run = asyncio.run(measure(options))
        report, rows = table(run)
        write(run, rows)
        print(report, "\n", flush=True)
        runs.append(run)
    if len(runs) > 1:
        print(side_by_side(runs))
    piled = any(max(run.in_flight.get("fast", 0), run.in_flight.get("slow", 0)) > 1 for run in runs)
    return 1 if piled or any(run.missed or run.spurious for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
