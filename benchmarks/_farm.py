"""Many simulated gateways in one process, for the fleet benchmarks.

    python benchmarks/_farm.py --count 100 --mix legacy,small,battery --dir /tmp/farm

It writes a GATEWAYS_FILE for the bridge, prints one JSON line per happening on stdout, and
takes commands on stdin: `mark` resets the request counters and starts flipping the grid of
the gateways that have an Enpower (each flip printed with its wall-clock time), `report`
stops flipping and prints the requests since `mark`. End of input stops every gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import yaml
from _sites import SITES, with_serial

from envoy2mqtt.sim import SimulatedGateway

SERIAL_BASE = 800_000_000_000
FLIP_EVERY = 8.0  # seconds between two flips of one gateway: well above debounce and cadence
MIN_PAUSE = 0.25


def emit(message: dict[str, object]) -> None:
    """One JSON line to the orchestrator."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def noon_offset() -> float:
    """The UTC offset that puts every simulated house at local noon (the liveliest data)."""
    return 12 * 3600 - time.time() % 86_400


def build(count: int, mix: list[str]) -> dict[str, tuple[str, SimulatedGateway]]:
    """`count` gateways cycling through the families in `mix`, each with its own serial."""
    bases = {key: SITES[key].make() for key in set(mix)}
    offset = noon_offset()
    gateways: dict[str, tuple[str, SimulatedGateway]] = {}
    for index in range(count):
        family = mix[index % len(mix)]
        capture = with_serial(bases[family], str(SERIAL_BASE + index))
        gateway = SimulatedGateway(capture=capture, drift=True, seed=index, utc_offset_s=offset)
        gateways[capture.serial] = (family, gateway)
    return gateways


def write_gateways_file(path: Path, gateways: dict[str, tuple[str, SimulatedGateway]]) -> None:
    """The bridge's GATEWAYS_FILE: host, name and (firmware 7+) token of each gateway."""
    entries = []
    for index, (family, gateway) in enumerate(gateways.values()):
        entry = {"host": gateway.host, "name": f"{family}-{index}"}
        if gateway.uses_tls:
            entry["token"] = gateway.make_token()
        entries.append(entry)
    path.write_text(yaml.safe_dump({"gateways": entries}), encoding="utf-8")


async def flip_grids(gateways: list[SimulatedGateway]) -> None:
    """Flip one Enpower gateway's grid after another, each every FLIP_EVERY seconds or so."""
    if not gateways:
        return
    pause = max(MIN_PAUSE, FLIP_EVERY / len(gateways))
    for gateway in itertools.cycle(gateways):
        await asyncio.sleep(pause)
        on = not gateway.grid_on
        gateway.set_grid(on)
        emit({"flip": gateway.serial, "on": on, "t": time.time()})


def report(gateways: dict[str, tuple[str, SimulatedGateway]], seconds: float) -> None:
    """Requests since `mark`, per family and endpoint."""
    requests: dict[str, Counter[str]] = {}
    families: Counter[str] = Counter()
    for family, gateway in gateways.values():
        requests.setdefault(family, Counter()).update(gateway.stats.requests)
        families[family] += 1
    emit(
        {
            "seconds": seconds,
            "families": dict(families),
            "requests": {family: dict(counts) for family, counts in requests.items()},
        }
    )


async def serve(count: int, mix: list[str], folder: Path) -> None:
    """Run the gateways and obey the orchestrator until stdin closes."""
    gateways = build(count, mix)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    async with AsyncExitStack() as stack:
        for _, gateway in gateways.values():
            await stack.enter_async_context(gateway)
        path = folder / "gateways.yaml"
        write_gateways_file(path, gateways)
        emit({"ready": count, "gateways_file": str(path)})
        flipping: asyncio.Task[None] | None = None
        marked = time.monotonic()
        enpowers = [g for _, g in gateways.values() if g.state.has_enpower]
        while line := await commands.readline():
            command = line.decode().strip()
            if command == "mark":
                for _, gateway in gateways.values():
                    gateway.stats.reset()
                marked = time.monotonic()
                flipping = asyncio.create_task(flip_grids(enpowers))
            elif command == "report":
                if flipping is not None:
                    flipping.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await flipping
                report(gateways, time.monotonic() - marked)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mix", default="legacy,small,battery", help="site keys, cycled")
    parser.add_argument("--dir", type=Path, required=True, help="where to write gateways.yaml")
    args = parser.parse_args()
    asyncio.run(serve(args.count, args.mix.split(","), args.dir))


if __name__ == "__main__":
    main()
