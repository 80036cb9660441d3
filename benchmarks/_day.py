"""A simulated day of one site: MQTT traffic with change detection against publishing all.

    python benchmarks/_day.py --site battery --hours 24 --out day-battery.json

The gateway is polled lane by lane at the default cadences in virtual time (see _replay), the
real publisher publishes every lane read to a counting link, and an audit checks the claim:
after every lane read, each value a subscriber last received is within its deadband of the
value just read, so any change beyond the deadband is delivered by the read that saw it,
within one cadence. Publishing "everything" (every value on every read) and "on any change"
(no deadband, no heartbeat) are counted from the same values for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from _replay import Action, Replay, Tick, midnight_utc
from _sites import SITES

from envoy2mqtt.core.changes import ChangeDetector
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.mqtt.publisher import GatewayPublisher, PublishOptions, format_value
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.sim import SimulatedGateway

HOUR = 3600.0
OUTAGE_HOUR = 18.5  # a quarter-hour grid outage at 18:30, where the site reports the grid
OUTAGE_MINUTES = 15.0
TOPICS = Topics()


@dataclass(slots=True)
class WatchedChanges(ChangeDetector):
    """The bridge's change detector, keeping the last values and deadbands it was shown."""

    shown: tuple[dict[str, Value], dict[str, float]] = ({}, {})

    def diff(
        self,
        values: Mapping[str, Value],
        now: float,
        deadbands: Mapping[str, float] | None = None,
        pacing: Mapping[str, tuple[float, float]] | None = None,
    ) -> dict[str, Value]:
        """Remember the settled values, then decide as the bridge does."""
        self.shown = (dict(values), dict(deadbands or {}))
        return ChangeDetector.diff(self, values, now, deadbands, pacing)


@dataclass(slots=True)
class Outbox:
    """The publisher's link: keeps what one lane read sent."""

    sent: list[tuple[str, str | bytes]] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        """Keep a state."""
        del qos, retain, urgent  # every kind of message counts the same
        self.sent.append((topic, payload))

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        """Keep an event."""
        self.sent.append((topic, payload))

    def take(self) -> list[tuple[str, str | bytes]]:
        """What was sent since the last take."""
        sent, self.sent = self.sent, []
        return sent


@dataclass(slots=True)
class Tally:
    """Messages and bytes, in total and by hour of the day."""

    messages: int = 0
    bytes: int = 0
    hourly: Counter[int] = field(default_factory=Counter)

    def add(self, hour: int, count: int, size: int) -> None:
        """Count `count` messages of `size` bytes in all."""
        self.messages += count
        self.bytes += size
        self.hourly[hour] += count


@dataclass(slots=True)
class Audit:
    """Everything one simulated day showed."""

    start: float  # counting starts here; lane reads before it only warm the publisher up
    on_counting: Callable[[], object] | None = None
    serial: str = ""
    at: float = 0.0  # virtual time of the lane read being published
    publisher: GatewayPublisher | None = None
    outbox: Outbox = field(default_factory=Outbox)
    bridge: Tally = field(default_factory=Tally)
    everything: Tally = field(default_factory=Tally)
    any_change: Tally = field(default_factory=Tally)
    discovery: int = 0
    snapshots: int = 0
    changes: int = 0  # deliveries because a value moved beyond its deadband
    violations: int = 0  # a subscriber's value left outside the deadband after a read
    max_gap: float = 0.0  # longest time a topic went without a message
    groups: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)  # by type
    _topic: dict[str, str] = field(default_factory=dict)
    _delivered: dict[str, tuple[Value, float]] = field(default_factory=dict)
    _last_text: dict[str, str] = field(default_factory=dict)

    def on_tick(self, tick: Tick) -> None:
        """Publish one lane read and check what subscribers now hold."""
        snapshot = tick.snapshot
        if self.publisher is None:
            self.serial = snapshot.gateway.serial
            self.publisher = GatewayPublisher(
                self.outbox,
                TOPICS,
                snapshot.gateway,
                PublishOptions(),
                clock=Clock(monotonic=self.now),
            )
            self.publisher.changes = WatchedChanges(
                heartbeat=self.publisher.options.heartbeat_interval
            )
        self.at = tick.at
        self.publisher.publish_snapshot(snapshot, grid_read=tick.grid_read)
        assert isinstance(self.publisher.changes, WatchedChanges)
        values, bands = self.publisher.changes.shown
        self._account(tick.at, values, bands, self.outbox.take())

    def now(self) -> float:
        """The publisher's clock: virtual time."""
        return self.at

    def _account(
        self,
        at: float,
        values: dict[str, Value],
        bands: dict[str, float],
        sent: list[tuple[str, str | bytes]],
    ) -> None:
        counting = at >= self.start
        if counting and not self.snapshots and self.on_counting is not None:
            self.on_counting()
        hour = int((at - self.start) // HOUR)
        self.snapshots += counting
        states: dict[str, str | bytes] = {}
        shared = shared_bytes = 0  # events and the summary: the same in every mode
        for topic, payload in sent:
            if topic.startswith(TOPICS.discovery_prefix + "/"):
                self.discovery += counting
            elif topic.endswith(("/event", "/summary", "/availability")):
                if counting and topic.endswith("/event"):
                    self.events[json.loads(payload)["type"]] += 1
                shared += 1
                shared_bytes += len(topic) + len(payload)
            else:
                states[topic] = payload
        if counting:
            self.bridge.add(
                hour,
                len(states) + shared,
                shared_bytes + sum(len(t) + len(p) for t, p in states.items()),
            )
        everything = changed = 0
        everything_bytes = changed_bytes = 0
        for path, value in values.items():
            topic = self._topic.get(path) or self._topic.setdefault(
                path, TOPICS.state(self.serial, path)
            )
            text = format_value(value)
            size = len(topic) + len(text)
            everything += 1
            everything_bytes += size
            if self._last_text.get(path) != text:
                self._last_text[path] = text
                changed += 1
                changed_bytes += size
            self._check(path, value, bands.get(path, 0.0), at, sent=topic in states)
        if counting:
            self.everything.add(hour, everything + shared, everything_bytes + shared_bytes)
            self.any_change.add(hour, changed + shared, changed_bytes + shared_bytes)

    def _check(self, path: str, value: Value, band: float, at: float, *, sent: bool) -> None:
        counting = at >= self.start
        before = self._delivered.get(path)
        if sent:
            if before is not None and counting:
                self.max_gap = max(self.max_gap, at - before[1])
                self.changes += not _within(value, before[0], band)
            if counting:
                self.groups[_group(path)] += 1
            self._delivered[path] = (value, at)
        elif before is None or not _within(value, before[0], band):
            self.violations += counting

    def result(self, site: str, hours: float, requests: Mapping[str, int]) -> dict[str, object]:
        """The day as JSON-ready data."""
        return {
            "site": site,
            "hours": hours,
            "snapshots": self.snapshots,
            "discovery": self.discovery,
            "changes": self.changes,
            "violations": self.violations,
            "max_gap_s": self.max_gap,
            "modes": {
                name: {
                    "messages": tally.messages,
                    "bytes": tally.bytes,
                    "hourly": [tally.hourly.get(h, 0) for h in range(int(hours + 0.999))],
                }
                for name, tally in (
                    ("bridge", self.bridge),
                    ("everything", self.everything),
                    ("any_change", self.any_change),
                )
            },
            "groups": dict(self.groups.most_common()),
            "events": dict(self.events.most_common()),
            "requests": dict(requests),
        }


def _within(value: Value, delivered: Value, band: float) -> bool:
    """Whether a subscriber holding `delivered` is within the deadband of `value`."""
    if isinstance(value, str) or isinstance(delivered, str):
        return value == delivered
    return abs(value - delivered) <= band if band > 0 else value == delivered


def _group(path: str) -> str:
    """A metric with its device id blanked: `inverter/123/power` -> `inverter/*/power`."""
    parts = path.split("/")
    return "/".join([parts[0], "*", *parts[2:]]) if len(parts) > 2 else path


def outage(at: float, minutes: float) -> list[tuple[float, Action]]:
    """A grid outage starting `at` seconds into the run (only where a relay reports it)."""

    def off(gateway: SimulatedGateway) -> None:
        if gateway.state.has_enpower or gateway.state.has_collar:
            gateway.set_grid(False)

    def on(gateway: SimulatedGateway) -> None:
        gateway.set_grid(True)

    return [(at, off), (at + minutes * 60, on)]


async def simulate(
    site: str, start_hour: float, hours: float, warmup_minutes: float = 0.0
) -> dict[str, object]:
    """One site from `start_hour` for `hours`, after `warmup_minutes` not counted, audited.

    A warm-up of at least one heartbeat lets a run that starts mid-day count as if the
    bridge had been running all along, so a day can be split across processes.
    """
    count_from = midnight_utc(time.time()) + start_hour * HOUR
    begin = count_from - warmup_minutes * 60
    replay = Replay(SITES[site].make(), start=begin)
    audit = Audit(start=count_from, on_counting=replay.stats.reset)
    outage_at = midnight_utc(time.time()) + OUTAGE_HOUR * HOUR
    if not count_from <= outage_at < count_from + hours * HOUR - OUTAGE_MINUTES * 60:
        outage_at = count_from + hours * HOUR / 2  # a short run gets its outage halfway
    minutes = min(OUTAGE_MINUTES, hours * 60 / 10)
    script = outage(outage_at - begin, minutes)
    await replay.run(hours * HOUR + warmup_minutes * 60, audit.on_tick, script)
    return audit.result(site, hours, replay.stats.requests)


def main() -> None:
    """Entry point: simulate and write the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site", required=True, choices=sorted(SITES))
    parser.add_argument("--start-hour", type=float, default=0.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--warmup", type=float, default=0.0, help="minutes before, not counted")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(simulate(args.site, args.start_hour, args.hours, args.warmup))
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
