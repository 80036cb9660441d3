"""CPU time per snapshot and per published message, measured in-process.

A stream of snapshots is read first (ten virtual minutes at noon at the default cadences, over
real HTTP from the simulated gateway); then fresh publishers publish that stream to a
counting link while `time.process_time` runs. Only the publishing is timed.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

from _replay import Replay, Tick, midnight_utc
from _sites import SITES

from envoy2mqtt import catalog
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.mqtt.publisher import GatewayPublisher, PublishOptions
from envoy2mqtt.mqtt.topics import Topics

NOON = 12 * 3600


class CountingLink:
    """The publisher's link, counting instead of sending."""

    def __init__(self) -> None:
        """Start at zero."""
        self.messages = 0
        self.bytes = 0

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        """Count a state."""
        del qos, retain, urgent  # every kind of message counts the same
        self.messages += 1
        self.bytes += len(topic) + len(payload)

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        """Count an event."""
        self.messages += 1
        self.bytes += len(topic) + len(payload)


@dataclass(frozen=True, slots=True)
class CpuResult:
    """Publishing cost for one site."""

    site: str
    values: int  # readings in one snapshot
    snapshots: int  # timed per repetition
    messages_per_snapshot: float
    us_per_snapshot: float
    us_per_message: float
    catalog_us: float  # reading every source of the catalog (catalog.values), uncached
    first_ms: float  # the first snapshot: every value plus discovery
    first_messages: int


async def read_stream(site: str, seconds: float) -> list[Tick]:
    """Lane reads as the bridge would make them over `seconds` of virtual time at noon."""
    stream: list[Tick] = []
    replay = Replay(SITES[site].make(), start=midnight_utc(time.time()) + NOON)
    await replay.run(seconds, stream.append)
    return stream


class StreamClock:
    """The publisher's clock: the virtual time of the snapshot being published."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """The current virtual time."""
        return self.now


def measure(site: str, stream: list[Tick], repetitions: int) -> CpuResult:
    """Time publishing `stream` with fresh publishers, `repetitions` times; take the median."""
    steady: list[float] = []
    first: list[float] = []
    messages = first_messages = 0
    snapshots = [tick.snapshot for tick in stream]
    for _ in range(repetitions):
        link = CountingLink()
        clock = StreamClock()
        publisher = GatewayPublisher(
            link, Topics(), snapshots[0].gateway, PublishOptions(), clock=Clock(monotonic=clock)
        )
        gc.collect()
        clock.now = stream[0].at
        started = time.process_time()
        publisher.publish_snapshot(snapshots[0], grid_read=stream[0].grid_read)
        first.append(time.process_time() - started)
        first_messages = link.messages
        started = time.process_time()
        for tick in stream[1:]:
            clock.now = tick.at
            publisher.publish_snapshot(tick.snapshot, grid_read=tick.grid_read)
        steady.append(time.process_time() - started)
        messages = link.messages - first_messages
    started = time.process_time()
    for snapshot in snapshots[1:]:
        catalog.values(snapshot)
    catalog_s = time.process_time() - started
    timed = len(stream) - 1
    total = statistics.median(steady)
    return CpuResult(
        site=site,
        values=len(catalog.values(snapshots[-1])),
        snapshots=timed,
        messages_per_snapshot=messages / timed,
        us_per_snapshot=total / timed * 1e6,
        us_per_message=total / max(messages, 1) * 1e6,
        catalog_us=catalog_s / timed * 1e6,
        first_ms=statistics.median(first) * 1e3,
        first_messages=first_messages,
    )
