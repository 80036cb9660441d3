"""Home Assistant's database load: recorder `states` rows a gateway's entities cause.

    python benchmarks/ha_recorder.py                   # battery site, 180 s after warm-up
    python benchmarks/ha_recorder.py --seconds 600 --capture 7.6.175_with_cts

A real Home Assistant Core 2024.3.3 (installed once into its cached virtualenv by tests/ha),
its MQTT integration on a Mosquitto of its own, the simulated gateway (values drifting as in
the demo, around local noon so the sun is up) and the real bridge as a process with default
settings. After a warm-up (discovery and the first full states), the recorder's `states`
rows of the gateway's entities are counted over the window. Prints a Markdown table: rows per
hour in total, against what a 60 s poll would write (one row a minute per changing entity),
and the busiest entities.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a clone: the harness is in tests/
    sys.path.insert(0, str(ROOT))

from tests.ha.recorder import RecorderRows, states_rows  # noqa: E402
from tests.ha.site import HaSite  # noqa: E402

BATTERY_CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"
WARM_UP_S: Final = 30.0
COMMIT_S: Final = 2.0  # the recorder commits every second here; wait that out


async def measure(capture: str, seconds: float, top: int) -> RecorderRows:
    """Run Home Assistant and the bridge on `capture`; count rows over `seconds`."""
    with tempfile.TemporaryDirectory(prefix="ha-recorder-") as workdir:
        async with HaSite(Path(workdir)) as site:
            gateway = await site.add_gateway(capture, "e2m-bench")
            settled = await site.settled(gateway)
            print(f"{len(settled.configs)} discovery configs, {len(settled.entities)} entities")
            since = gateway.started + WARM_UP_S
            await asyncio.sleep(max(0.0, since + seconds + COMMIT_S - time.time()))
            assert site.ha is not None
            rows = states_rows(site.ha.database, gateway.serial, since, since + seconds)
    print(rows.report(f"Recorder rows, {capture}, {seconds:.0f} s after {WARM_UP_S:.0f} s", top))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", default=BATTERY_CAPTURE)
    parser.add_argument("--seconds", type=float, default=180.0, help="measurement window")
    parser.add_argument("--top", type=int, default=10, help="busiest entities to list")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.capture, args.seconds, args.top))
    return 0 if rows.total else 1


if __name__ == "__main__":
    sys.exit(main())
