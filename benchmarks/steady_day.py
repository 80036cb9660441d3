"""Events worth acting on: a day of field-like battery noise through the bridge's settling stage.

    python benchmarks/steady_day.py                  # one day, 1 Hz battery lane, seed 1
    python benchmarks/steady_day.py --days 7 --seed 3

Real IQ Batteries in self-consumption do not sit at 0 W: the controller tracks the house's
deficit or surplus with an error of ±50-300 W, so the battery power hovers around zero
whenever there is little to do (full at midday, at the reserve before dawn, PV about equal to
the load). This script models such a day (PV bell with clouds, a base load with noise and
appliances, a 10 kWh / 3.84 kW battery above a 20 % reserve, a 15-minute grid outage at 18:30)
at the battery lane's 1 s cadence, and feeds every reading through the bridge's own stages:
the catalog's metrics, `Roles.of`, the `Settler` and the `EventDetector`. "before" is the
bridge as it was (the catalog's ±50 W idle, the runway as computed); "after" has the defaults.
It prints the `battery` events per day and their worst hour, the runway's published changes
per hour, and checks that every grid event arrives on the very reading it did before.
"""

from __future__ import annotations

import argparse
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from envoy2mqtt.catalog.battery import BATTERY, battery_state
from envoy2mqtt.catalog.derived import RUNWAY_CAP_MIN
from envoy2mqtt.catalog.metric import Entity, Metric, Reading
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.catalog.sources import GATEWAY
from envoy2mqtt.core.changes import ChangeDetector
from envoy2mqtt.core.events import EventDetector
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.mqtt.settle import Settler

CAPACITY_WH: Final = 10_000.0
MAX_W: Final = 3_840.0
RESERVE: Final = 20.0
OUTAGE: Final = (18.5 * 3600, 18.75 * 3600)
KEYS: Final = (
    "grid_status",
    "battery_power",
    "battery_state",
    "house_load_power",
    "backup_runway",
)
START: Final = datetime(2026, 6, 21, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Sample:
    """One battery-lane reading of the modelled house."""

    at: float  # seconds since midnight
    battery_w: float  # + discharging
    house_w: float
    soc: float
    grid_on: bool


def house(rng: random.Random, days: int) -> Iterator[Sample]:
    """The modelled house, one sample a second."""
    soc, wander, cloud = 40.0, 0.0, 1.0
    appliances: list[tuple[float, float]] = []  # (until, watts)
    for second in range(days * 86_400):
        t = second % 86_400
        hour = t / 3600
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
        if rng.random() < 1 / 900:
            cloud = rng.uniform(0.3, 1.0)
        cloud += (1.0 - cloud) / 600
        pv = 5_000 * sun * cloud
        if rng.random() < 14 / 86_400:  # kettles, ovens, a dryer: ~14 a day
            appliances.append((second + rng.uniform(120, 2_700), rng.choice((1_200, 2_000, 2_500))))
        appliances = [(until, w) for until, w in appliances if until > second]
        load = max(150.0, 450 * (1 + rng.gauss(0, 0.05)) + sum(w for _, w in appliances))
        grid_on = not OUTAGE[0] <= t < OUTAGE[1]
        setpoint = load - pv
        if (setpoint < 0 and soc >= 100) or (setpoint > 0 and soc <= RESERVE and grid_on):
            setpoint = 0.0
        # the controller's tracking error: a slow wander plus fast noise, ±50-300 W
        wander = max(-200.0, min(200.0, wander + rng.gauss(0, 15)))
        battery = max(-MAX_W, min(MAX_W, setpoint + wander + rng.gauss(0, 60)))
        soc = max(0.0, min(100.0, soc - battery / 3600 / CAPACITY_WH * 100))
        yield Sample(t + 86_400 * (second // 86_400), battery, load, soc, grid_on)


def runway(sample: Sample) -> int:
    """`derived.backup_runway` for this sample."""
    above = CAPACITY_WH * (sample.soc - RESERVE) / 100
    if above <= 0:
        return 0
    if sample.house_w * RUNWAY_CAP_MIN <= above * 60:
        return RUNWAY_CAP_MIN
    return math.floor(above * 60 / sample.house_w)


def entities() -> dict[str, Entity]:
    """The catalog's own metrics for the values this script follows."""
    metrics: dict[str, Metric[object]] = {}
    for source in (GATEWAY, BATTERY.source):
        for metric in source.metrics:
            metrics[metric.key] = metric  # type: ignore[assignment]
    return {key: Entity(key, metrics[key]) for key in KEYS}


@dataclass(slots=True)
class Run:
    """One configuration of the settler, and what it published."""

    roles: Roles
    settler: Settler
    events: EventDetector
    changes: ChangeDetector
    battery_events: Counter[int]
    runway_changes: int = 0
    grid_events: tuple[tuple[float, Value], ...] = ()

    def feed(self, readings: dict[str, Reading], at: float) -> None:
        """Settle one reading, detect its events and count the runway's publishes."""
        roles = self.roles
        taken = START + timedelta(seconds=at)
        values = self.settler.settle(readings, roles, taken)
        for event in self.events.detect(values, taken):
            if event.type == "battery":
                self.battery_events[int(at // 3600)] += 1
            elif event.type == "grid":
                self.grid_events = (*self.grid_events, (at, event.after))
        sent = self.changes.diff(values, at, roles.deadbands, roles.pacing)
        self.runway_changes += "backup_runway" in sent


def main() -> None:
    """Entry point: run the modelled days before and after, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    bound = entities()
    roles = Roles.of(bound.values())
    runs = {
        "before": Run(  # no held state, no smoothing: the catalog's ±50 W, every second
            replace(roles, held={}, smoothed={}),
            Settler(),
            EventDetector(watch=roles.watch),
            ChangeDetector(heartbeat=math.inf),
            Counter(),
        ),
        "after": Run(
            roles,
            Settler(),
            EventDetector(watch=roles.watch),
            ChangeDetector(heartbeat=math.inf),
            Counter(),
        ),
    }
    raw_runway_changes, last_runway = 0, None
    for sample in house(random.Random(args.seed), args.days):
        raw = {
            "grid_status": "on-grid" if sample.grid_on else "off-grid",
            "battery_power": round(sample.battery_w),
            "battery_state": battery_state(sample.battery_w) or "idle",
            "house_load_power": round(sample.house_w),
            "backup_runway": runway(sample),
        }
        raw_runway_changes += last_runway is not None and raw["backup_runway"] != last_runway
        last_runway = raw["backup_runway"]
        readings = {key: Reading(bound[key], value) for key, value in raw.items()}
        for run in runs.values():
            run.feed(readings, sample.at)
    hours = args.days * 24
    print(f"{args.days} day(s), seed {args.seed}, 1 Hz battery lane")
    print("| | battery events/day | worst hour | runway publishes/hour |")
    print("|---|---|---|---|")
    for name, run in runs.items():
        per_day = sum(run.battery_events.values()) / args.days
        worst = max(run.battery_events.values(), default=0)
        print(f"| {name} | {per_day:.0f} | {worst} | {run.runway_changes / hours:.0f} |")
    print(f"raw runway changes/hour (before rounding): {raw_runway_changes / hours:.0f}")
    before, after = runs["before"].grid_events, runs["after"].grid_events
    print(f"grid events: {len(after)}, on the same readings as before: {before == after}")


if __name__ == "__main__":
    main()
