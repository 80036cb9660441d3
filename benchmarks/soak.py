"""Soak: 24 simulated hours of a battery site, with faults, in a few minutes of wall time.

    python benchmarks/soak.py              # 24 simulated hours in ~4 minutes
    python benchmarks/soak.py --quick      # 2 simulated hours in ~20 s (the CI smoke test)

Time is accelerated on the gateway's side: the simulated gateway (battery capture, HTTPS) and
the simulated Enlighten run on a clock `--speed` times faster than the wall (sunrise, sunset,
battery cycles and midnight go by in minutes), and the bridge polls at short cadences (fast
lane 0.25 s, normal 1 s, inverters 3 s) so that a simulated day is read as densely as a real
one at the default cadences. The bridge's own calendar stays real time: "today" counters that
the gateway resets at its simulated midnight are held by the counter guard, as designed.

Faults, on a fixed schedule in simulated time: the real mosquitto killed or stopped and
restarted, the gateway down (refusing connections) or hanging, every token revoked (the bridge
renews it from the simulated Enlighten), and the grid failing (grid events). A subscriber with
a persistent session counts the events that arrive; every event the bridge raised must arrive.

Reported: RSS of this process (bridge, simulated gateway and subscriber together) and its
asyncio tasks after the first simulated hour and at the end, messages published, events
raised, received and lost. Targets: RSS growth under 5 MB, no task leak, nothing lost.
Writes benchmarks/results/soak.csv (or --out) and soak.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

import aiomqtt
import psutil
from pydantic import SecretStr

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a clone: the broker helper is in tests/
    sys.path.insert(0, str(ROOT))

from envoy2mqtt.app import App  # noqa: E402
from envoy2mqtt.settings import Cadence, GatewaySettings, Settings  # noqa: E402
from envoy2mqtt.sim import Fault, SimulatedEnlighten, SimulatedGateway  # noqa: E402
from tests.broker import HOST, Mosquitto  # noqa: E402

CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"
ACCOUNT: Final = "owner@example.com"
PASSWORD: Final = "soak-secret"  # noqa: S105 - the simulated cloud's test account
RESULTS: Final = ROOT / "benchmarks" / "results"
HOUR: Final = 3600.0
RSS_TARGET_MB: Final = 5.0
Fault_ = Callable[[], Awaitable[None]]
CADENCE: Final = Cadence.model_construct(  # below the settings' floors on purpose: time is fast
    fast=0.25, battery=0.5, normal=1.0, inverters=3.0, quiet_start=None, quiet_end=None
)


@dataclass(frozen=True, slots=True)
class Options:
    """What to run."""

    hours: float
    minutes: float  # wall time
    out: Path
    seed: int
    quick: bool

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self.hours * HOUR / (self.minutes * 60)


@dataclass(slots=True)
class Figures:
    """What the run measured."""

    speed: float = 0.0
    simulated_hours: float = 0.0
    wall_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    tasks_start: int = 0
    tasks_end: int = 0
    tasks_after_stop: int = 0
    new_tasks: list[str] = field(default_factory=list)
    published: int = 0
    events_raised: int = 0
    events_received: int = 0
    events_lost: int = 0
    events_dropped: int = 0
    duplicates: int = 0
    grid_changes: int = 0
    grid_events: int = 0
    broker_restarts: int = 0
    gateway_outages: int = 0
    token_revocations: int = 0
    mqtt_connects: int = 0
    token_requests: int = 0
    faults: list[str] = field(default_factory=list)

    @property
    def rss_growth_mb(self) -> float:
        """RSS at the end minus RSS after warm-up."""
        return self.rss_end_mb - self.rss_start_mb

    def passed(self, *, check_rss: bool) -> bool:
        """Every target met."""
        return (
            self.events_lost == 0
            and self.events_dropped == 0
            and self.grid_events == self.grid_changes
            and self.tasks_end <= self.tasks_start
            and self.tasks_after_stop == 0
            and (not check_rss or self.rss_growth_mb < RSS_TARGET_MB)
        )


class SimClock:
    """Seconds since the epoch, running `speed` times faster than the wall from `start`."""

    def __init__(self, speed: float) -> None:
        """Start now."""
        self.speed = speed
        self.start = time.time()

    def __call__(self) -> float:
        """The simulated time now."""
        return self.start + (time.time() - self.start) * self.speed

    def hours(self) -> float:
        """Simulated hours since the start."""
        return (self() - self.start) / HOUR

    async def until(self, hours: float) -> None:
        """Sleep until `hours` simulated hours have passed."""
        await asyncio.sleep(max(0.0, hours * HOUR / self.speed - (time.time() - self.start)))


class EventWatcher:
    """A subscriber with a persistent session: the broker keeps its QoS 1 events for it."""

    def __init__(self, port: int, topic: str, identifier: str) -> None:
        """Prepare; `run()` subscribes and keeps reconnecting."""
        self.ids: list[str] = []
        self.connected = asyncio.Event()
        self._port, self._topic, self._identifier = port, topic, identifier

    async def run(self) -> None:
        """Record every event's id, reconnecting after each broker restart."""
        while True:
            try:
                async with aiomqtt.Client(
                    HOST, self._port, identifier=self._identifier, clean_session=False, timeout=5
                ) as client:
                    await client.subscribe(self._topic, qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        if isinstance(message.payload, bytes):
                            self.ids.append(str(json.loads(message.payload)["id"]))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)


def rss_mb() -> float:
    """This process's resident set size, after a full collection."""
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def task_names() -> list[str]:
    """Names of the asyncio tasks alive now, but this one."""
    current = asyncio.current_task()
    return sorted(t.get_name() for t in asyncio.all_tasks() if t is not current)


async def eventually(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether `predicate()` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def settings_for(
    gateway: SimulatedGateway, cloud: SimulatedEnlighten, port: int, state: Path
) -> Settings:
    """The bridge on the simulated gateway, tokens from the simulated Enlighten."""
    entry = GatewaySettings(
        host=gateway.host, username=ACCOUNT, password=SecretStr(PASSWORD), cadence=CADENCE
    )
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        gateways=[entry],
        mqtt_host=HOST,
        mqtt_port=port,
        mqtt_base_topic="soak",
        ha_discovery_prefix="soak-ha",
        ha_status_topic="soak-ha/status",
        state_dir=state,
        enlighten_login_url=cloud.login_url,
        entrez_token_url=cloud.token_url,
        cloud_timeout=2,
        heartbeat_interval=10,
        request_timeout=2,
    )


@dataclass(slots=True)
class Faults:
    """The fault schedule and what it did."""

    broker: Mosquitto
    gateway: SimulatedGateway
    app: App
    watcher: EventWatcher
    clock: SimClock
    figures: Figures
    rng: random.Random

    async def restart_broker(self, hard: bool) -> None:
        """Kill (or stop) and restart the broker; a kill only once nothing is in flight."""
        link = self.app.link
        idle = await eventually(
            lambda: (
                self.watcher.connected.is_set() and link.connected.is_set() and not link.pending
            ),
            timeout=5,
        )
        hard = hard and idle  # SIGKILL may lose what the broker has not saved: not ours to count
        if hard:
            self.broker.kill()
        else:
            self.broker.stop()
        # the grid fails while the broker is away: its events wait in the bridge's outbox
        self.gateway.set_grid(False)
        await asyncio.sleep(self.rng.uniform(1.0, 2.5))
        await self.broker.start_async()
        self.figures.broker_restarts += 1
        self.note(f"broker {'killed' if hard else 'stopped'}, grid down meanwhile; restarted")
        await self.recovered()
        self.gateway.set_grid(True)
        self.figures.grid_changes += 2
        await asyncio.sleep(2.0)  # read twice (the debounce) before the next fault

    async def gateway_outage(self, fault: Fault, sim_minutes: float) -> None:
        """The gateway refuses connections (DOWN) or hangs (TIMEOUT) for a while."""
        self.gateway.set_fault(fault)
        self.note(f"gateway {fault.value} for {sim_minutes:.0f} simulated minutes")
        await asyncio.sleep(sim_minutes * 60 / self.clock.speed)
        self.gateway.set_fault(Fault.NONE)
        self.figures.gateway_outages += 1
        await self.recovered()

    async def revoke_tokens(self) -> None:
        """Every token invalid at once, as a firmware update does."""
        self.gateway.revoke_tokens()
        self.figures.token_revocations += 1
        self.note("tokens revoked")
        await asyncio.sleep(1.0)  # the next read meets the refusal
        await self.recovered()

    async def grid_outage(self, sim_minutes: float) -> None:
        """The grid fails and comes back."""
        self.gateway.set_grid(False)
        self.note(f"grid down for {sim_minutes:.0f} simulated minutes")
        await asyncio.sleep(sim_minutes * 60 / self.clock.speed)
        self.gateway.set_grid(True)
        self.figures.grid_changes += 2
        await asyncio.sleep(2.0)  # read twice (the debounce) before the next fault

    async def recovered(self) -> None:
        """Wait until the bridge is connected, the gateway online and the outbox empty."""
        link, publisher = self.app.link, self.app.bridges[0].publisher
        ok = await eventually(
            lambda: (
                link.connected.is_set()
                and publisher is not None
                and publisher.available is True
                and not link.pending
            ),
            timeout=30,
        )
        if not ok:
            raise RuntimeError("the bridge did not recover: connected, online and flushed")

    def note(self, what: str) -> None:
        """Remember a fault with its simulated time."""
        self.figures.faults.append(f"{self.clock.hours():5.2f} h  {what}")


def schedule(faults: Faults, options: Options) -> list[tuple[float, Fault_]]:
    """(simulated hour, fault) for the whole run, in order, after the warm-up."""
    plan: list[tuple[float, Fault_]] = []
    step = 0
    hour = warm_up(options) + 0.1
    while hour < options.hours - 0.3:
        match step % 6:
            case 0 | 3:
                plan.append((hour, partial(faults.restart_broker, hard=step % 4 == 0)))
            case 1:
                plan.append((hour, partial(faults.gateway_outage, Fault.DOWN, 20)))
            case 2:
                plan.append((hour, partial(faults.grid_outage, 15)))
            case 4:
                plan.append((hour, faults.revoke_tokens))
            case _:
                plan.append((hour, partial(faults.gateway_outage, Fault.TIMEOUT, 10)))
        step += 1
        hour += 0.15 if options.quick else 0.9
    return plan


def warm_up(options: Options) -> float:
    """Simulated hours before the first measurement (caches, token, first readings)."""
    return 0.5 if options.quick else 1.0


async def soak(options: Options) -> Figures:
    """Run the bridge through the simulated hours and measure it."""
    figures = Figures(speed=options.speed, simulated_hours=options.hours)
    rng = random.Random(options.seed)
    clock = SimClock(options.speed)
    # start the simulated day at 05:00 local, so it has a sunrise, a sunset and a midnight
    offset = 5 * HOUR - clock.start % 86_400
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        work = Path(folder)
        broker = Mosquitto(work / "mosquitto", persistence=True).start()
        try:
            async with (
                SimulatedEnlighten(accounts={ACCOUNT: PASSWORD}, clock=clock) as cloud,
                SimulatedGateway(
                    capture=CAPTURE, drift=True, clock=clock, seed=options.seed, utc_offset_s=offset
                ) as gateway,
            ):
                await run_bridge(options, figures, rng, clock, broker, cloud, gateway, work)
                figures.token_requests = cloud.token_requests
        finally:
            broker.stop()
    return figures


async def run_bridge(
    options: Options,
    figures: Figures,
    rng: random.Random,
    clock: SimClock,
    broker: Mosquitto,
    cloud: SimulatedEnlighten,
    gateway: SimulatedGateway,
    work: Path,
) -> None:
    """The bridge, the watcher and the fault schedule, start to end."""
    watcher = EventWatcher(broker.port, f"soak/{gateway.serial}/event", "soak-watcher")
    watching = asyncio.create_task(watcher.run(), name="soak watcher")
    await asyncio.wait_for(watcher.connected.wait(), 10)
    await asyncio.sleep(1.5)  # mosquitto's autosave (1 s) now holds the watcher's session
    app = App(settings_for(gateway, cloud, broker.port, work / "state"))
    raised: list[str] = []
    publish_event = app.link.publish_event

    def counted(topic: str, payload: str | bytes) -> None:
        event = json.loads(payload)
        raised.append(str(event["id"]))
        figures.grid_events += event["type"] == "grid"
        publish_event(topic, payload)

    app.link.publish_event = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    started = time.monotonic()
    running = asyncio.create_task(app.run(stop), name="soak app")
    faults = Faults(broker, gateway, app, watcher, clock, figures, rng)

    await clock.until(warm_up(options))
    await eventually(lambda: app.bridges[0].publisher is not None, 30)
    await faults.recovered()
    figures.rss_start_mb, before = rss_mb(), task_names()
    figures.tasks_start = len(before)
    for hour, fault in schedule(faults, options):
        await clock.until(hour)
        await fault()
    await clock.until(options.hours)
    await faults.recovered()
    figures.simulated_hours = clock.hours()
    figures.rss_end_mb, after = rss_mb(), task_names()
    figures.tasks_end = len(after)
    figures.new_tasks = sorted(set(after) - set(before))
    await eventually(lambda: set(raised) <= set(watcher.ids), 15)
    figures.wall_s = time.monotonic() - started
    stop.set()
    await asyncio.wait_for(running, 10)
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    figures.tasks_after_stop = len(task_names())
    figures.published = app.link.stats.published
    figures.mqtt_connects = app.link.stats.connects
    figures.events_dropped = app.link.stats.events_dropped
    figures.events_raised = len(raised)
    figures.events_received = len(set(watcher.ids))
    figures.duplicates = len(watcher.ids) - len(set(watcher.ids))
    figures.events_lost = len(set(raised) - set(watcher.ids))


def table(figures: Figures, options: Options) -> str:
    """The report, in Markdown."""
    rows = [
        ("simulated time", f"{figures.simulated_hours:.1f} h at {figures.speed:.0f}x"),
        ("wall time", f"{figures.wall_s:.0f} s"),
        ("RSS after warm-up / end", f"{figures.rss_start_mb:.1f} / {figures.rss_end_mb:.1f} MB"),
        ("RSS growth", f"{figures.rss_growth_mb:+.2f} MB (target < {RSS_TARGET_MB:g} MB)"),
        ("asyncio tasks after warm-up / end", f"{figures.tasks_start} / {figures.tasks_end}"),
        ("asyncio tasks left after stop", str(figures.tasks_after_stop)),
        ("messages published", str(figures.published)),
        ("events raised / received", f"{figures.events_raised} / {figures.events_received}"),
        ("events lost / dropped", f"{figures.events_lost} / {figures.events_dropped}"),
        ("duplicate deliveries (same id)", str(figures.duplicates)),
        ("broker restarts / MQTT connects", f"{figures.broker_restarts} / {figures.mqtt_connects}"),
        ("gateway outages", str(figures.gateway_outages)),
        (
            "token revocations / tokens issued",
            f"{figures.token_revocations} / {figures.token_requests}",
        ),
        ("grid changes / grid events", f"{figures.grid_changes} / {figures.grid_events}"),
    ]
    lines = ["| soak | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if figures.new_tasks:
        lines.append(f"\nnew tasks at the end: {', '.join(figures.new_tasks)}")
    verdict = "PASS" if figures.passed(check_rss=not options.quick) else "FAIL"
    lines.append(f"\n{verdict}")
    return "\n".join(lines)


def write(figures: Figures, options: Options) -> None:
    """The figures as one CSV row per measure."""
    options.out.mkdir(parents=True, exist_ok=True)
    with (options.out / "soak.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["measure", "value"])
        for name in Figures.__slots__:
            value = getattr(figures, name)
            if not isinstance(value, list):
                writer.writerow([name, round(value, 3) if isinstance(value, float) else value])


def parse(argv: Sequence[str] | None) -> Options:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 simulated hours in ~20 s")
    parser.add_argument("--hours", type=float, help="simulated hours (default 24, quick 2)")
    parser.add_argument("--minutes", type=float, help="wall minutes (default 4, quick 0.35)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    return Options(
        hours=args.hours or (2.0 if args.quick else 24.0),
        minutes=args.minutes or (0.35 if args.quick else 4.0),
        out=args.out,
        seed=args.seed,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; print the report; 1 if a target was missed."""
    options = parse(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        filename=options.out / "soak.log",
        filemode="w",
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    figures = asyncio.run(soak(options))
    write(figures, options)
    print(table(figures, options))
    print("\nfaults (simulated time):\n" + "\n".join(figures.faults))
    return 0 if figures.passed(check_rss=not options.quick) else 1


if __name__ == "__main__":
    sys.exit(main())
