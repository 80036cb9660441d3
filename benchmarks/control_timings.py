"""Controls at full field scale: command -> `pending` -> confirmed, per control and path.

    python benchmarks/control_timings.py              # reserve (Enlighten), relay open/close,
                                                      # a dry contact; about 3 minutes
    python benchmarks/control_timings.py --seed 8     # another draw of the field's timings

Real mosquitto, the simulated gateway behaving as firmware D8.3.6086 does at `time_scale` 1.0
(`Field.current_firmware()`: production.json 30-55 s, the relay opening ~27 s after the command
and closing in 8-15 s, local battery writes ignored) and the simulated Enlighten (a battery
write reaches the gateway 15 s later), the bridge with the service's default control timeouts.
Each line: the answers on `<base>/<serial>/response` and when they came after the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from envoy2mqtt.app import App
from envoy2mqtt.sim import Field, SimulatedGateway
from envoy2mqtt.sim.battery_cloud import CloudSite, storage_applier
from envoy2mqtt.sim.enlighten import SimulatedEnlighten

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clone: the broker helper is in tests/
    sys.path.insert(0, str(ROOT))

import tests.test_control_battery_paths as paths  # noqa: E402
from tests.broker import Mosquitto, Recorder  # noqa: E402
from tests.harness import bridge_settings, running  # noqa: E402

PREFIX = "e2m-controls"
STEPS = (
    ("set/reserve_soc", "40", "reserve 40, Enlighten"),
    ("set/grid_enabled", "off", "grid relay open (the battery tops up first)"),
    ("set/grid_enabled", "on", "grid relay close"),
    ("dry_contact/NC1/set/status", "open", "dry contact NC1 open"),
)


def answers(recorder: Recorder, root: str, label: str, sent: float) -> str:
    """`label: pending/enlighten 1.9 s, ok/enlighten 20.0 s`: each answer since `sent`."""
    parts = []
    for record in recorder.on(f"{root}/response"):
        if record.t >= sent:
            body = json.loads(record.payload)
            how = "/".join(str(x) for x in (body["status"], body.get("via")) if x)
            parts.append(f"{how} {record.t - sent:.1f} s")
    return f"{label}: " + ", ".join(parts)


async def measure(seed: int) -> None:
    """Run every step once and print its answers' times."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch, Mosquitto(Path(scratch) / "mqtt") as broker:
        field = Field.current_firmware(time_scale=1.0, seed=seed)
        async with SimulatedGateway(capture=paths.BATTERY, field=field) as gateway:
            gateway.set_storage(optimised_schedules=False)
            site_of = CloudSite(site_id=paths.SITE, serials=(gateway.serial,), owner=paths.ACCOUNT)
            cloud = SimulatedEnlighten(
                accounts={paths.ACCOUNT: paths.PASSWORD},
                sites=[site_of],
                time_scale=1.0,
                apply=storage_applier([gateway]),
            )
            async with cloud:
                settings = bridge_settings(
                    gateway,
                    broker.port,
                    PREFIX,
                    Path(scratch) / "state",
                    controls="all",
                    battery_control_path="enlighten",
                    envoy_username=paths.ACCOUNT,
                    envoy_password=SecretStr(paths.PASSWORD),
                    enlighten_login_url=cloud.login_url,
                    entrez_token_url=cloud.token_url,
                )
                async with (
                    Recorder("127.0.0.1", broker.port, f"{PREFIX}/#") as recorder,
                    running(App(settings)),
                ):
                    marker = "/control_battery_reserve_soc/config"
                    async with Recorder("127.0.0.1", broker.port, f"{PREFIX}-ha/#") as configs:
                        await configs.wait_for(
                            lambda r: any(x.topic.endswith(marker) for x in r), 240
                        )
                    print(f"controls announced {time.monotonic() - began:.0f} s after start")
                    site = paths.Site(gateway, cloud, recorder, broker.port, PREFIX)
                    for answered, (suffix, value, label) in enumerate(STEPS, start=1):
                        sent = time.monotonic()
                        await site.send(suffix, value)
                        await site.final(answered, timeout=200)
                        print(answers(recorder, f"{PREFIX}/{gateway.serial}", label, sent))
    print(f"total {time.monotonic() - began:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    asyncio.run(measure(args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
