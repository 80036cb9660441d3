"""The shedding actor against a recording link: its timing, its queue, what it never sends.

These drive the actor directly (no gateway, no broker) where the end-to-end tests cannot
hold one condition still: no further snapshot after the grid returns, a broker that stays away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.core.stream import EventStream
from envoy2mqtt.features.extension import Hub
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.settings import Settings
from envoy2mqtt.shedding.actor import Shedder
from envoy2mqtt.shedding.plan import Load, Plan, Switch
from envoy2mqtt.shedding.policy import Rule

Handler = Callable[[str, bytes], Awaitable[None]]
RetainHandler = Callable[[str, bytes, bool], Awaitable[None]]
OFF_GRID: dict[str, Value] = {"grid_status": "off-grid", "battery_soc": 50}
ON_GRID: dict[str, Value] = {"grid_status": "on-grid", "battery_soc": 50}


@dataclass
class Link:
    """Keeps what is published (with the time), and lets the test deliver messages."""

    connected: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[tuple[float, str, bytes, bool, bool]] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    flagged: dict[str, RetainHandler] = field(default_factory=dict)

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.sent.append((time.monotonic(), topic, data, retain, urgent))

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        self.publish(topic, payload)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers[topic] = handler

    def subscribe_with_retain(self, topic: str, handler: RetainHandler) -> None:
        self.flagged[topic] = handler

    def commands(self) -> list[tuple[str, bytes]]:
        return [(t, p) for _, t, p, _, urgent in self.sent if urgent]

    async def deliver(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """A message from the broker, as the link hands it on to every matching filter."""
        for pattern, handler in self.handlers.items():
            if matches(topic, pattern):
                await handler(topic, payload)
        for pattern, flagged in self.flagged.items():
            if matches(topic, pattern):
                await flagged(topic, payload, retained)

    async def sync(self) -> None:
        """The broker returns the bridge's marker: every retained message has arrived."""
        marker = next(p for _, t, p, _, _ in reversed(self.sent) if t == "t/shedding/sync")
        await self.deliver("t/shedding/sync", marker)


def matches(topic: str, pattern: str) -> bool:
    """MQTT filter matching (`+` one level, `#` the rest)."""
    parts, wanted = topic.split("/"), pattern.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(parts) or level not in ("+", parts[i]):
            return False
    return len(parts) == len(wanted)


def plan(**options: object) -> Plan:
    loads = tuple(
        Load(Rule(name=name, tier=1), Switch(f"dev/{name}", "OFF"), Switch(f"dev/{name}", "ON"))
        for name in ("dryer", "aircon")
    )
    values: dict[str, object] = {"restore_after": 0.3, "stagger": 0.1, **options}
    return Plan(loads=loads, **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def entered(link: Link, **options: object) -> AsyncIterator[Shedder]:
    """A Shedder extension entered with a hub around the test's link (its timer running)."""
    async with asyncio.TaskGroup() as tasks:
        hub = Hub(
            settings=Settings.model_construct(),
            link=link,
            topics=Topics("t"),
            events=EventStream("test"),
            bridges=(),
            tasks=tasks,
        )
        async with Shedder(hub, plan(**options)) as shedder:
            yield shedder


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the actor's own state, no event to wait on
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def ready(**options: object) -> AsyncIterator[tuple[Link, Shedder]]:
    link = Link()
    async with entered(link, **options) as shedder:
        link.connected.set()
        shedder.connected()
        await link.sync()
        yield link, shedder


async def test_restores_on_time_with_no_snapshot_after_the_grid_returns() -> None:
    async with ready() as (link, shedder):
        shedder.observe(OFF_GRID)
        await until(lambda: len(link.commands()) == 2)
        await asyncio.sleep(0.05)  # the actor idles: nothing is due while the grid is down
        shedder.observe(ON_GRID)  # then the gateway goes quiet: only the timer is left
        back = time.monotonic()
        await until(lambda: len(link.commands()) == 4)
    ons = [(t, topic) for t, topic, payload, _, urgent in link.sent if urgent and payload == b"ON"]
    assert [topic for _, topic in ons] == ["dev/dryer", "dev/aircon"]
    assert ons[0][0] - back >= 0.3
    assert ons[1][0] - ons[0][0] >= 0.1


async def test_commands_wait_for_the_broker_and_an_off_and_on_that_waited_cancel() -> None:
    async with ready(restore_after=0, stagger=0) as (link, shedder):
        link.connected.clear()  # the broker went away
        shedder.observe(OFF_GRID)
        shedder.observe(ON_GRID)  # dryer back at once (no wait configured)
        assert link.commands() == []
        assert set(shedder.policy.shed_loads()) == {"aircon"}  # its restore waits a stagger of 0
        shedder.observe(ON_GRID)
        assert list(shedder.policy.shed_loads()) == []
        shedder.observe(OFF_GRID)  # the grid fails again: this time the OFFs stand
        link.connected.set()
        shedder.connected()
        assert link.commands() == [("dev/dryer", b"OFF"), ("dev/aircon", b"OFF")]


async def test_a_retained_override_command_is_never_replayed_and_is_cleared() -> None:
    link = Link()
    async with entered(link) as shedder:
        link.connected.set()
        shedder.connected()
        await link.deliver("t/shedding/dryer/state", b"shed", retained=True)  # from before
        await link.deliver("t/shedding/dryer/reason", b"grid", retained=True)
        await link.deliver("t/shedding/dryer/set", b"on", retained=True)  # someone left it there
        await link.sync()
        assert shedder.policy.states["dryer"].shed
        assert link.commands() == []
        assert ("t/shedding/dryer/set", b"", True) in [(t, p, r) for _, t, p, r, _ in link.sent]
        await link.deliver("t/shedding/dryer/set", b"on")  # live: an override
        assert link.commands() == [("dev/dryer", b"ON")]
        assert not shedder.policy.states["dryer"].shed


async def test_no_decision_before_the_retained_state_is_known() -> None:
    link = Link()
    async with entered(link) as shedder:
        link.connected.set()
        shedder.connected()
        shedder.observe(OFF_GRID)  # the gateway was quicker than the broker
        await asyncio.sleep(0.1)
        assert link.commands() == []
        await link.deliver("t/shedding/aircon/state", b"shed")  # it knew this one was off
        await link.sync()
        await until(lambda: len(link.commands()) == 1)
    assert link.commands() == [("dev/dryer", b"OFF")]


async def test_dry_run_publishes_states_and_commands_nothing() -> None:
    async with ready(dry_run=True) as (link, shedder):
        shedder.observe(OFF_GRID)
        await until(lambda: retained(link).get("t/shedding/dryer/state") == b"shed")
    assert link.commands() == []
    assert retained(link)["t/shedding/dryer/reason"] == b"grid"
    assert retained(link)["t/shedding/dry_run"] == b"on"


def retained(link: Link) -> dict[str, bytes]:
    return {t: p for _, t, p, retain, _ in link.sent if retain}
