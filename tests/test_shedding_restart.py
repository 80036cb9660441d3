"""Load shedding across restarts of the bridge and outages of the broker, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import aiomqtt

from envoy2mqtt.shedding.actor import Shedder
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, MosquittoFactory, Record, collect
from tests.harness import bridge_settings, running
from tests.test_shedding_e2e import CAPTURE, Site, load, site


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Poll until `predicate()` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the bridge's own state, no event to wait on
            await asyncio.sleep(0.02)


def shedder(s: Site) -> Shedder:
    assert s.app.shedding is not None
    return s.app.shedding


class Devices:
    """The loads' side: a persistent session on a persistent broker, so a command published
    while it was reconnecting waits for it instead of being lost (as a real plug's would)."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.port, self.filter = port, topic_filter
        self.records: list[Record] = []
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def commands(self) -> list[tuple[str, bytes]]:
        """(load, payload) of every command received."""
        sent = [r for r in self.records if "/devices/" in r.topic]
        return [(r.topic.rsplit("/", 1)[1], r.payload) for r in sent]

    def events(self) -> list[bytes]:
        """Every event received, as sent."""
        return [r.payload for r in self.records if r.topic.endswith("/event")]

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="plugs", clean_session=False
                ) as client:
                    await client.subscribe(self.filter, qos=1)
                    self._subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.records.append(
                            Record(time.monotonic(), message.topic.value, payload, False, 1)
                        )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)


async def test_restart_during_an_outage_restores_nothing_prematurely(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    broker, prefix = mosquitto_session, unique_prefix
    loads = [load(prefix, "dryer", 1), load(prefix, "aircon", 1)]
    options: dict[str, object] = {"restore_after": 3.0, "restore_stagger": 0.5}
    async with SimulatedGateway(capture=CAPTURE) as gateway:
        gateway.set_battery(soc=80)
        async with site(broker, prefix, tmp_path, loads, gateway=gateway, **options) as first:
            await first.grid(False, events=1)
            await first.wait(lambda s: s.state("aircon") == (b"shed", b"grid"))
        # the bridge is down; someone leaves a retained override command behind
        await first.publish(f"{prefix}/shedding/dryer/set", "on", retain=True)
        async with site(broker, prefix, tmp_path, loads, gateway=gateway, **options) as second:
            await asyncio.sleep(1.5)  # still off grid: a dozen snapshots to decide on
            assert second.commands() == []  # nothing shed twice, no retained command replayed
            assert shedder(second).learned
            assert set(shedder(second).policy.shed_loads()) == {"dryer", "aircon"}
            left = await collect("127.0.0.1", broker.port, f"{prefix}/shedding/dryer/set")
            assert left == {}  # the retained command was cleared
        gateway.set_grid(True)  # the grid comes back while the bridge is down
        started = time.monotonic()
        async with site(broker, prefix, tmp_path, loads, gateway=gateway, **options) as third:
            await third.wait(lambda s: len(s.commands()) == 2, timeout=15)
    assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in first.commands()] == [
        ("dryer", b"OFF"),
        ("aircon", b"OFF"),
    ]
    ons = third.commands()
    assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in ons] == [
        ("dryer", b"ON"),
        ("aircon", b"ON"),
    ]
    # how long the grid had been back when the bridge started is unknown: the full
    # RESTORE_AFTER is counted from the start
    assert ons[0].t - started >= 3.0
    assert third.state("dryer") == (b"on", b"none")


async def test_commands_wait_out_a_broker_outage_in_order_and_stale_ones_cancel(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(persistence=True)
    prefix = unique_prefix
    loads = [load(prefix, "dryer", 1), load(prefix, "aircon", 1)]
    async with (
        Devices(broker.port, f"{prefix}/#") as devices,
        site(broker, prefix, tmp_path, loads, restore_after=1.0, restore_stagger=0.3) as s,
    ):
        policy = shedder(s).policy

        # the grid fails while the broker is away: the commands wait, then go first
        broker.stop()
        s.gateway.set_grid(False)
        await until(lambda: set(policy.shed_loads()) == {"dryer", "aircon"})
        await asyncio.sleep(0.5)
        await broker.start_async()
        await until(lambda: len(devices.commands()) == 2, timeout=40)
        await until(lambda: any(b'"grid"' in e for e in devices.events()), timeout=20)

        s.gateway.set_grid(True)
        await until(lambda: len(devices.commands()) == 4)

        # an outage that comes and goes while the broker is away: nothing left to send
        broker.stop()
        s.gateway.set_grid(False)
        await until(lambda: set(policy.shed_loads()) == {"dryer", "aircon"})
        s.gateway.set_grid(True)
        await until(lambda: not set(policy.shed_loads()))
        await broker.start_async()
        await until(lambda: sum(b'"restore"' in e for e in devices.events()) == 4, timeout=40)
        await asyncio.sleep(0.5)

    assert devices.commands() == [
        ("dryer", b"OFF"),
        ("aircon", b"OFF"),
        ("dryer", b"ON"),
        ("aircon", b"ON"),
    ]
    topics = [(r.topic, r.payload) for r in devices.records]
    grid = next(i for i, (t, p) in enumerate(topics) if t.endswith("/event") and b'"grid"' in p)
    assert next(i for i, (t, _) in enumerate(topics) if t.endswith("/devices/aircon")) < grid
    kinds = [json.loads(e)["type"] for e in devices.events()]
    assert [kind for kind in kinds if kind != "grid"] == [
        "shed",
        "shed",
        "restore",
        "restore",
        "shed",
        "shed",
        "restore",
        "restore",
    ]
    retained = await collect(
        "127.0.0.1", broker.port, f"{prefix}/shedding/+/state", until=lambda x: len(x) == 2
    )
    assert set(retained.values()) == {b"on"}


async def test_a_bridge_up_before_the_broker_in_an_outage_still_sheds(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(persistence=True)  # after a blackout the broker may boot last
    prefix = unique_prefix
    loads = {"loads": [load(prefix, "dryer", 1), load(prefix, "aircon", 1)]}
    async with (
        Devices(broker.port, f"{prefix}/#") as devices,
        SimulatedGateway(capture=CAPTURE) as gateway,
    ):
        gateway.set_grid(False)
        broker.stop()
        settings = bridge_settings(
            gateway, broker.port, prefix, tmp_path, fast_interval=0.5, loads=json.dumps(loads)
        )
        async with running(settings) as app:
            assert app.shedding is not None
            policy = app.shedding.policy
            # no retained state can come: after LEARN_TIMEOUT it decides without it
            await until(lambda: set(policy.shed_loads()) == {"dryer", "aircon"}, timeout=30)
            await broker.start_async()
            await until(lambda: len(devices.commands()) == 2, timeout=40)
    assert devices.commands() == [("dryer", b"OFF"), ("aircon", b"OFF")]
