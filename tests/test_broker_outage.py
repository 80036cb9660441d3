"""Broker outages lose nothing: the real mosquitto killed and restarted under a running bridge.

Events are checked by a subscriber with a persistent session on a broker with persistence, so
the broker keeps the subscriber's QoS 1 messages while either of them is away: what the test
then misses, the bridge lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiomqtt
import pytest

from envoy2mqtt.mqtt.link import MqttLink, MqttOptions
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import HOST, Mosquitto, MosquittoFactory, collect
from tests.harness import bridge_settings, running

BATTERY_SITE = "8.2.4286_with_3cts_and_battery_split"  # Enpower relay: the grid in the fast lane
RESTARTS = 22
FAST = {"fast_interval": 0.2, "battery_interval": 1, "poll_interval": 5, "inverter_interval": 30}


@dataclass(frozen=True, slots=True)
class Seen:
    """One message as the watcher received it."""

    at: float  # time.time() on arrival
    topic: str
    payload: bytes
    qos: int


class Watcher:
    """A subscriber with a persistent session (clean_session=False, a fixed client id)."""

    def __init__(self, port: int, topic_filter: str, identifier: str) -> None:
        self.seen: list[Seen] = []
        self.connections = 0
        self._port, self._filter, self._identifier = port, topic_filter, identifier
        self._changed = asyncio.Condition()
        self._connected = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="watcher")
        await self.wait(lambda: self._connected)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def connected(self) -> bool:
        """Subscribed right now."""
        return self._connected

    async def wait(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `predicate()` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    HOST, self._port, identifier=self._identifier, clean_session=False, timeout=5
                ) as client:
                    await client.subscribe(self._filter, qos=1)
                    async with self._changed:
                        self.connections += 1
                        self._connected = True
                        self._changed.notify_all()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        async with self._changed:
                            self.seen.append(
                                Seen(time.time(), message.topic.value, payload, int(message.qos))
                            )
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                self._connected = False
                await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Flip:
    """One grid change the simulated gateway made."""

    at: float  # time.time()
    on: bool


async def flip_grid(gateway: SimulatedGateway, flips: list[Flip]) -> None:
    """Flip the grid every 0.7-1.1 s, long enough for the debounce (2 reads at 0.2 s)."""
    rng = random.Random(6)
    while True:
        await asyncio.sleep(rng.uniform(0.7, 1.1))
        on = not gateway.grid_on
        gateway.set_grid(on)
        flips.append(Flip(time.time(), on))


async def test_events_survive_twenty_broker_restarts(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(persistence=True)
    rng = random.Random(20)
    flips: list[Flip] = []
    async with SimulatedGateway(capture=BATTERY_SITE) as gateway:
        settings = bridge_settings(gateway, broker.port, unique_prefix, tmp_path, **FAST)
        events = f"{unique_prefix}/{gateway.serial}/event"
        async with Watcher(broker.port, events, f"{unique_prefix}-watch") as watcher:
            await asyncio.sleep(1.5)  # the broker's autosave (1 s) now holds the session
            async with running(settings) as app, asyncio.TaskGroup() as tasks:
                await asyncio.wait_for(app.link.connected.wait(), 15)
                flipper = tasks.create_task(flip_grid(gateway, flips))
                for restart in range(RESTARTS):
                    await asyncio.sleep(rng.uniform(0.3, 0.8))
                    # the next kill only once both sides are back and the outbox is empty, so
                    # the broker never holds the only copy of an event it has not saved yet
                    down = rng.uniform(0.3, 1.2)
                    await broker.restart_async(hard=restart % 2 == 0, down_for=down)
                    await watcher.wait(lambda: watcher.connected)
                    await eventually(lambda: app.link.connected.is_set() and not app.link.pending)
                flipper.cancel()
                expected = len(flips)
                await watcher.wait(lambda: len(unique_events(watcher.seen)) >= expected, 15)
                connects, dropped = app.link.stats.connects, app.link.stats.events_dropped
    assert connects == RESTARTS + 1
    assert dropped == 0
    received = unique_events(watcher.seen)
    assert [e["to"] for e in received] == [
        "on-grid" if flip.on else "off-grid" for flip in flips
    ], "every grid change arrives once, in order"
    assert all(seen.qos == 1 for seen in watcher.seen)
    late = 0
    for flip, event in zip(flips, received, strict=True):
        raised = parse_time(event["at"])
        # the event keeps the moment the bridge saw the change, however late it is delivered
        assert flip.at - 0.05 <= raised <= flip.at + 2.5, (flip, event)
        late += float(str(event["arrived"])) - raised > 0.5
    assert late >= 3, "some changes happened while the broker was down"


def unique_events(seen: list[Seen]) -> list[dict[str, object]]:
    """Events by first arrival; a repeat must be the very same message (same id, same body)."""
    first: dict[str, Seen] = {}
    out: list[dict[str, object]] = []
    for message in seen:
        body = json.loads(message.payload)
        earlier = first.setdefault(str(body["id"]), message)
        if earlier is message:
            out.append({**body, "arrived": message.at})
        else:
            assert earlier.payload == message.payload, "a duplicate is provably the same event"
    return out


def parse_time(text: object) -> float:
    """An event's ISO 8601 `at` as seconds since the epoch."""
    return datetime.fromisoformat(str(text)).timestamp()


async def test_reconnect_republishes_discovery_availability_and_state(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=BATTERY_SITE) as gateway:
        settings = bridge_settings(gateway, mosquitto.port, unique_prefix, tmp_path, **FAST)
        base = f"{unique_prefix}/{gateway.serial}"
        wanted = {
            f"{unique_prefix}/bridge/state": b"online",
            f"{base}/availability": b"online",
            f"{base}/grid_status": b"on-grid",
        }
        config = f"{unique_prefix}-ha/binary_sensor/{gateway.serial}/grid_status/config"
        power = f"{base}/production_power"

        def complete(seen: dict[str, bytes]) -> bool:
            return (
                all(seen.get(t) == p for t, p in wanted.items())
                and config in seen
                and power in seen
                and f"{unique_prefix}/bridge/info" in seen
            )

        async with running(settings) as app:
            before = await collect(HOST, mosquitto.port, "#", until=complete, timeout=20)
            assert complete(before), sorted(before)
            await eventually(lambda: not app.link.pending)
            sent = app.link.stats.published
            # without persistence a killed broker forgets every retained message: whatever a
            # new subscriber finds afterwards, the bridge published again
            await mosquitto.restart_async(hard=True, down_for=0.5)
            after = await collect(HOST, mosquitto.port, "#", until=complete, timeout=15)
            resent = app.link.stats.published - sent
    assert complete(after), sorted(after)
    assert resent >= len(before) - 1, (resent, len(before))  # all but bridge/state (the LWT's)
    assert json.loads(after[config])["payload_on"] == "on-grid"
    assert after[power] == before[power]


async def test_a_full_event_buffer_drops_the_oldest_and_keeps_order_and_time(
    make_mosquitto: MosquittoFactory, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_mosquitto(persistence=True)
    topic = f"{unique_prefix}/g/event"
    options = MqttOptions(
        mqtt_host=HOST,
        mqtt_port=broker.port,
        mqtt_event_buffer=10,
        will_topic=f"{unique_prefix}/bridge/state",
        reconnect_max=1.0,
    )
    link = MqttLink(options)
    async with Watcher(broker.port, topic, f"{unique_prefix}-watch") as watcher:
        await asyncio.sleep(1.5)  # saved with the session
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            broker.stop()
            raised = []
            for n in range(25):
                raised.append(time.time())
                link.publish_event(topic, json.dumps({"id": n, "at": raised[-1]}))
                await asyncio.sleep(0.01)
            await broker.start_async()
            await watcher.wait(lambda: len(watcher.seen) >= 10)
            await asyncio.sleep(0.5)  # nothing else is coming
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    bodies = [json.loads(seen.payload) for seen in watcher.seen]
    assert [b["id"] for b in bodies] == list(range(15, 25))  # the newest 10, in order
    assert [b["at"] for b in bodies] == raised[15:]
    assert link.stats.events_dropped == 15
    # the broker's death raced aiomqtt's writer registration: no asyncio traceback for it
    assert not [r for r in caplog.records if "Exception in callback" in r.getMessage()]


async def eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until `predicate()` holds (polled: the link has no event for "outbox empty")."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls counters that have no event
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("hard", [True, False], ids=["kill", "stop"])
async def test_what_was_queued_when_the_broker_died_goes_out_after_reconnect(
    make_mosquitto: MosquittoFactory, unique_prefix: str, hard: bool
) -> None:
    broker = make_mosquitto(persistence=True)
    topic = f"{unique_prefix}/e"
    link = MqttLink(MqttOptions(mqtt_host=HOST, mqtt_port=broker.port, reconnect_max=1.0))
    async with Watcher(broker.port, topic, f"{unique_prefix}-watch") as watcher:
        await asyncio.sleep(1.5)  # saved with the session
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            for n in range(200):
                link.publish_event(topic, json.dumps({"id": n}))
            await asyncio.sleep(0.005)  # a few go out before the broker dies mid-stream
            await broker.restart_async(hard=hard, down_for=0.3)
            # nothing new is published: the backlog must go out on its own after reconnecting
            await watcher.wait(lambda: len(unique_events(watcher.seen)) >= 200, 15)
            assert not task.done()
            assert link.stats.connects == 2
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [e["id"] for e in unique_events(watcher.seen)] == list(range(200))
