"""One bridge process, many simulated gateways in another, one real broker: measured.

The bridge is the real command (`python -m envoy2mqtt.cli run`) reading a GATEWAYS_FILE.
psutil reads the CPU time and RSS of the bridge, the broker and the gateway farm separately,
so the bridge's figures are its own. Grid-event latency is wall-clock time from the farm
flipping a relay to this process receiving the new `grid_status` from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiomqtt
import psutil
from _broker import HOST, Broker

FARM: Final = Path(__file__).with_name("_farm.py")
BASE: Final = "bench"
RETAINED: Final = "$SYS/broker/retained messages/count"
RECEIVED: Final = "$SYS/broker/messages/received"  # publish/... misses retained QoS 0
BYTES: Final = "$SYS/broker/bytes/received"
GRACE: Final = 5.0  # seconds after the last flip for its news to arrive
SETTLED_AFTER: Final = 3.0  # seconds without a new retained topic: start-up is over


@dataclass(slots=True)
class FleetResult:
    """What one run measured."""

    gateways: int
    mix: str
    window: float
    startup: float  # bridge start -> every gateway `online`
    settled: float  # bridge start -> the retained topics stop growing (discovery done)
    bridge_cpu: float  # share of one core over the window
    bridge_rss_mb: float  # at the end of the window
    bridge_peak_mb: float  # VmHWM: the most it ever held, start-up included
    broker_cpu: float
    farm_cpu: float
    messages_per_s: float  # PUBLISH packets the broker received
    kbytes_per_s: float
    requests_per_min: dict[str, float]  # per gateway, by family
    requests_total_per_s: float
    flips: int
    latencies: list[float] = field(default_factory=list)
    missed: int = 0

    def latency(self, quantile: float) -> float | None:
        """Nearest-rank quantile of the grid-event latency, in seconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


@dataclass(slots=True)
class Watch:
    """What the benchmark sees on the broker."""

    online: set[str] = field(default_factory=set)
    grid: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))
    sys: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))

    async def run(self, port: int, ready: asyncio.Event) -> None:
        """Subscribe and record until cancelled."""
        async with aiomqtt.Client(HOST, port, identifier="bench-watch") as client:
            for topic in (f"{BASE}/+/availability", f"{BASE}/+/grid_status"):
                await client.subscribe(topic, qos=1)
            for topic in (RETAINED, RECEIVED, BYTES):
                await client.subscribe(topic)
            ready.set()
            async for message in client.messages:
                self._record(str(message.topic), message.payload, time.time())

    def _record(self, topic: str, payload: object, at: float) -> None:
        text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload)
        if topic.startswith("$SYS/"):
            self.sys[topic].append((at, float(text)))
            return
        serial = topic.split("/")[1]
        if topic.endswith("/availability"):
            if text == "online":
                self.online.add(serial)
            else:
                self.online.discard(serial)
        else:
            self.grid[serial].append((at, text))

    def rate(self, topic: str, start: float, end: float) -> float:
        """Per-second growth of a $SYS counter between two wall-clock times."""
        points = [(t, v) for t, v in self.sys[topic] if start <= t <= end]
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return 0.0
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])

    async def settle(self, started: float, limit: float) -> float:
        """Wait until the retained-message count stops growing; return when (since start).

        Mosquitto publishes a $SYS value only when it changes, so "settled" means no new
        count for SETTLED_AFTER seconds.
        """
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            counts = self.sys[RETAINED]
            if counts and time.time() - counts[-1][0] >= SETTLED_AFTER:
                return time.monotonic() - started - SETTLED_AFTER
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the broker's retained topics still grew after {limit:.0f} s")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _peak_rss_mb(pid: int) -> float:
    """VmHWM from /proc: the process's high-water mark of resident memory."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _appears(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written")
        await asyncio.sleep(0.2)


def bridge_environment(
    gateways_file: Path, port: int, state_dir: Path, profile: Path | None = None
) -> dict[str, str]:
    """The bridge's settings, at their defaults except where to connect and the quiet window.

    The quiet window is switched off so the figures do not depend on the time of day the
    suite happens to run at (it slows the lanes for 8 minutes a night).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ENVOY_", "MQTT_", "GATEWAYS", "HA_"))
    }
    env.update(
        GATEWAYS_FILE=str(gateways_file),
        MQTT_HOST=HOST,
        MQTT_PORT=str(port),
        MQTT_BASE_TOPIC=BASE,
        HA_DISCOVERY_PREFIX=f"{BASE}-ha",
        HA_STATUS_TOPIC=f"{BASE}-ha/status",
        STATE_DIR=str(state_dir),
        LOG_LEVEL="WARNING",
        QUIET_WINDOW="off",
    )
    if profile is not None:
        env["E2M_PROFILE"] = str(profile)
    return env


class Farm:
    """The gateway farm process and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        """Wrap a started farm process."""
        self.process = process
        self.flips: list[tuple[str, str, float]] = []  # serial, expected payload, wall time
        self.ready: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self.reports: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    @classmethod
    async def start(cls, count: int, mix: str, folder: Path) -> Farm:
        """Start the farm and read its output in the background."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FARM),
            "--count",
            str(count),
            "--mix",
            mix,
            "--dir",
            str(folder),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        return cls(process)

    async def read(self) -> None:
        """Dispatch the farm's JSON lines until it exits."""
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "flip" in message:
                payload = "on-grid" if message["on"] else "off-grid"
                self.flips.append((message["flip"], payload, message["t"]))
            elif "ready" in message:
                self.ready.set_result(Path(message["gateways_file"]))
            else:
                self.reports.put_nowait(message)
        if not self.ready.done():
            self.ready.set_exception(RuntimeError("the gateway farm exited before it was ready"))

    async def send(self, command: str) -> None:
        """One command line to the farm."""
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        """Close its input (it stops every gateway) and wait for it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _latencies(watch: Watch, flips: list[tuple[str, str, float]]) -> tuple[list[float], int]:
    """Match each flip with the first matching `grid_status` published after it."""
    latencies: list[float] = []
    missed = 0
    for serial, payload, flipped in flips:
        arrival = next(
            (t for t, seen in watch.grid.get(serial, []) if seen == payload and t >= flipped),
            None,
        )
        if arrival is None:
            missed += 1
        else:
            latencies.append(arrival - flipped)
    return latencies, missed


BRIDGE: Final = ("-m", "envoy2mqtt.cli", "run")
PROFILED: Final = (str(Path(__file__).with_name("_profiled.py")),)


@dataclass(frozen=True, slots=True)
class BridgeCommand:
    """How to start the bridge: its command line after the interpreter, and profiling.

    With `profile` set, the command must be _profiled.py: it is told by signal when the
    measuring window starts and ends, and writes cProfile statistics there.
    """

    args: tuple[str, ...] = BRIDGE
    profile: Path | None = None


async def run_fleet(
    count: int,
    mix: str,
    window: float,
    folder: Path,
    bridge: BridgeCommand = BridgeCommand(),
) -> FleetResult:
    """Run `count` gateways (families cycled from `mix`) through one bridge for `window` s."""
    with Broker(folder / "broker") as broker:  # makes `folder` too
        watch = Watch()
        watching_ready = asyncio.Event()
        farm = await Farm.start(count, mix, folder)
        async with asyncio.TaskGroup() as tasks:
            watching = tasks.create_task(watch.run(broker.port, watching_ready))
            reading = tasks.create_task(farm.read())
            try:
                await asyncio.wait_for(watching_ready.wait(), 10)
                gateways_file = await asyncio.wait_for(farm.ready, 60 + count * 0.1)
                result = await _measure(
                    count, mix, window, folder, (broker, farm, watch), gateways_file, bridge
                )
            finally:
                watching.cancel()
                await farm.stop()
                reading.cancel()
    return result


async def _measure(
    count: int,
    mix: str,
    window: float,
    folder: Path,
    parts: tuple[Broker, Farm, Watch],
    gateways_file: Path,
    command: BridgeCommand,
) -> FleetResult:
    broker, farm, watch = parts
    log = (folder / "bridge.log").open("wb")
    started = time.monotonic()
    bridge = await asyncio.create_subprocess_exec(
        sys.executable,
        *command.args,
        env=bridge_environment(gateways_file, broker.port, folder / "state", command.profile),
        cwd=folder,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = started + 60 + count * 0.3
        while len(watch.online) < count:
            if bridge.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(watch.online)} of {count} gateways online; see {folder}/bridge.log"
                )
            await asyncio.sleep(0.2)
        startup = time.monotonic() - started
        settled = await watch.settle(started, limit=120 + count * 0.5)

        processes = {
            "bridge": psutil.Process(bridge.pid),
            "broker": psutil.Process(broker.pid),
            "farm": psutil.Process(farm.process.pid),
        }
        before = {name: _cpu(p) for name, p in processes.items()}
        await farm.send("mark")
        if command.profile is not None:
            bridge.send_signal(signal.SIGUSR1)
        wall_start, mono_start = time.time(), time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - mono_start
        wall_end = time.time()
        used = {name: (_cpu(p) - before[name]) / elapsed for name, p in processes.items()}
        if command.profile is not None:
            bridge.send_signal(signal.SIGUSR2)
            await _appears(command.profile, timeout=60)
        rss_mb = processes["bridge"].memory_info().rss / 2**20
        peak_mb = _peak_rss_mb(bridge.pid)
        await farm.send("report")
        report = await asyncio.wait_for(farm.reports.get(), 30)
        await asyncio.sleep(GRACE)
    finally:
        if bridge.returncode is None:
            bridge.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(bridge.wait(), 20)
            except TimeoutError:
                bridge.kill()
                await bridge.wait()
        log.close()

    flips = [f for f in farm.flips if wall_start <= f[2] <= wall_end]
    latencies, missed = _latencies(watch, flips)
    requests = report["requests"]
    families = report["families"]
    seconds = float(report["seconds"])  # type: ignore[arg-type]
    assert isinstance(requests, dict)
    assert isinstance(families, dict)
    per_minute = {
        family: sum(Counter(counts).values()) / families[family] / (seconds / 60)
        for family, counts in requests.items()
    }
    total = sum(sum(Counter(counts).values()) for counts in requests.values()) / seconds
    return FleetResult(
        gateways=count,
        mix=mix,
        window=elapsed,
        startup=startup,
        settled=settled,
        bridge_cpu=used["bridge"],
        bridge_rss_mb=rss_mb,
        bridge_peak_mb=peak_mb,
        broker_cpu=used["broker"],
        farm_cpu=used["farm"],
        messages_per_s=watch.rate(RECEIVED, wall_start, wall_end),
        kbytes_per_s=watch.rate(BYTES, wall_start, wall_end) / 1000,
        requests_per_min=per_minute,
        requests_total_per_s=total,
        flips=len(flips),
        latencies=latencies,
        missed=missed,
    )
