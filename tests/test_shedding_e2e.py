"""Load shedding end to end: simulated gateway (HTTPS) -> bridge -> real mosquitto -> "devices".

The loads' command topics are under `<prefix>/devices/`, so one recorder on `<prefix>/#` sees
the commands, the bridge's events and its states in the order the broker delivered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from envoy2mqtt.app import App
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder, collect
from tests.harness import bridge_settings, running

CAPTURE = "8.2.4286_with_3cts_and_battery_split"  # Enpower relay, Encharge, storage CT
RELAY = "/ivp/ensemble/relay"
QUICK: dict[str, object] = {
    "fast_interval": 0.5,
    "battery_interval": 1.0,
    "poll_interval": 5.0,
    "restore_after": 1.5,
    "restore_stagger": 0.5,
}


def load(prefix: str, name: str, tier: int, **rules: object) -> dict[str, object]:
    """A load whose commands go to `<prefix>/devices/<name>` (OFF / ON, Tasmota style)."""
    topic = f"{prefix}/devices/{name}"
    return {
        "name": name,
        "tier": tier,
        "off": {"topic": topic, "payload": "OFF"},
        "on": {"topic": topic, "payload": "ON"},
        **rules,
    }


@dataclass
class Site:
    """A running bridge with loads, its gateway and a recorder of everything under the prefix."""

    gateway: SimulatedGateway
    app: App
    recorder: Recorder
    prefix: str
    port: int  # the broker's

    @property
    def base(self) -> str:
        """The gateway's topic root."""
        return f"{self.prefix}/{self.gateway.serial}"

    def commands(self, name: str | None = None) -> list[Record]:
        """Commands that reached the devices (all, or one load's)."""
        root = f"{self.prefix}/devices/"
        return [
            r
            for r in self.recorder.records
            if r.topic.startswith(root) and (name is None or r.topic == root + name)
        ]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Event payloads, oldest first."""
        bodies = [json.loads(r.payload) for r in self.recorder.on(f"{self.base}/event")]
        return [b for b in bodies if kind is None or b["type"] == kind]

    def index(self, predicate: Callable[[Record], bool]) -> int:
        """Where the first record that holds arrived."""
        return next(i for i, r in enumerate(self.recorder.records) if predicate(r))

    def state(self, name: str) -> tuple[bytes | None, bytes | None]:
        """A load's latest retained state and reason, as recorded."""
        latest = self.recorder.latest()
        root = f"{self.prefix}/shedding/{name}"
        return latest.get(f"{root}/state"), latest.get(f"{root}/reason")

    async def wait(self, predicate: Callable[[Site], bool], timeout: float = 10) -> None:
        """Until `predicate(site)` holds."""
        await self.recorder.wait_for(lambda _: predicate(self), timeout=timeout)

    async def grid(self, on: bool, events: int, timeout: float = 10) -> float:
        """Flip the grid; wait for its `events`-th grid event; when that event arrived."""
        self.gateway.set_grid(on)
        await self.wait(lambda s: len(s.events("grid")) >= events, timeout)
        return self.recorder.on(f"{self.base}/event")[-1].t if events else 0.0

    async def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        """Publish as a device or a user would."""
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def site(
    broker: Mosquitto,
    prefix: str,
    state_dir: Path,
    loads: list[dict[str, object]],
    *,
    gateway: SimulatedGateway | None = None,
    **overrides: object,
) -> AsyncIterator[Site]:
    """The bridge on the battery capture with these loads, started and ready to shed."""
    async with contextlib.AsyncExitStack() as stack:
        if gateway is None:
            gateway = await stack.enter_async_context(SimulatedGateway(capture=CAPTURE))
            gateway.set_battery(soc=80)  # the house load stays the capture's 1801 W
        options = {**QUICK, **overrides, "loads": json.dumps({"loads": loads})}
        settings = bridge_settings(gateway, broker.port, prefix, state_dir, **options)
        recorder = await stack.enter_async_context(
            Recorder("127.0.0.1", broker.port, f"{prefix}/#")
        )
        app = await stack.enter_async_context(running(settings))
        ready = {f"{prefix}/{gateway.serial}/grid_status", f"{prefix}/shedding/sync"}
        await recorder.wait_for(lambda r: ready <= {x.topic for x in r}, timeout=30)
        await recorder.wait_for(lambda r: bool(r) and r[-1].topic != f"{prefix}/shedding/sync")
        yield Site(gateway, app, recorder, prefix, broker.port)


async def answered(gateway: SimulatedGateway, *, after: float, timeout: float = 5) -> float:
    """Wait until the gateway has answered a relay read begun after `after`; its start."""
    async with asyncio.timeout(timeout):
        while True:
            done = [r for r in gateway.stats.log if r.path == RELAY and r.start > after]
            if done:
                return done[0].start
            await asyncio.sleep(0.002)


async def test_tier1_loads_are_shed_ahead_of_the_grid_event_and_not_on_a_glitch(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    loads = [load(unique_prefix, "dryer", 1, watts=3000), load(unique_prefix, "aircon", 1)]
    async with site(mosquitto_session, unique_prefix, tmp_path, loads) as s:
        last = await answered(s.gateway, after=time.monotonic())
        for _ in range(2):  # a glitch: exactly one grid read says off-grid
            s.gateway.set_grid(False)
            glitch = await answered(s.gateway, after=last)
            s.gateway.set_grid(True)
            last = await answered(s.gateway, after=glitch)
        await answered(s.gateway, after=last)
        assert s.commands() == []
        assert s.events("grid") == []

        await s.grid(False, events=1)
        await s.wait(lambda s: s.state("dryer") == s.state("aircon") == (b"shed", b"grid"))

    dryer, aircon = s.commands("dryer"), s.commands("aircon")
    assert [(r.payload, r.retain, r.qos) for r in dryer + aircon] == [(b"OFF", False, 1)] * 2
    grid_event = s.index(lambda r: r.topic == f"{s.base}/event" and b'"grid"' in r.payload)
    assert s.index(lambda r: r in dryer + aircon) < grid_event  # ahead of the event itself
    assert s.recorder.records.index(aircon[0]) < grid_event
    shed = s.events("shed")
    assert [(e["load"], e["tier"], e["reason"], e["from"], e["to"]) for e in shed] == [
        ("dryer", 1, "grid", "on", "shed"),
        ("aircon", 1, "grid", "on", "shed"),
    ]
    assert shed[0]["context"]["grid_status"] == "off-grid"
    assert "dry_run" not in shed[0]
    (outage,) = s.events("grid")
    assert outage["context"]["backup_runway"] > 0  # the runway rides along in grid events


async def test_restore_waits_for_a_stable_grid_then_goes_most_important_first(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    loads = [
        load(unique_prefix, "dryer", 1),
        load(unique_prefix, "heat-pump", 2, shed_below_soc=90),  # soc 80: shed off grid
        load(unique_prefix, "fridge", 3, shed_below_runway_min=5000),  # always, off grid
    ]
    async with site(
        mosquitto_session, unique_prefix, tmp_path, loads, restore_after=2.0, restore_stagger=0.6
    ) as s:
        await s.grid(False, events=1)
        await s.wait(lambda s: len(s.commands()) == 3)
        await s.grid(True, events=2)
        await asyncio.sleep(0.6)  # back for less than RESTORE_AFTER ...
        await s.grid(False, events=3)  # ... and gone again: the wait starts over
        back = await s.grid(True, events=4)
        await s.wait(lambda s: len(s.commands()) == 6)

    offs, ons = s.commands()[:3], s.commands()[3:]
    assert {r.payload for r in offs} == {b"OFF"}  # each shed once, the flicker shed nothing new
    assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in ons] == [
        ("fridge", b"ON"),
        ("heat-pump", b"ON"),
        ("dryer", b"ON"),
    ]
    assert ons[0].t - back >= 2.0 - 0.05  # RESTORE_AFTER after the grid came back for good
    gaps = [later.t - earlier.t for earlier, later in itertools.pairwise(ons)]
    assert min(gaps) >= 0.6 - 0.05  # RESTORE_STAGGER apart
    restores = s.events("restore")
    assert [(e["load"], e["reason"]) for e in restores] == [
        ("fridge", "grid"),
        ("heat-pump", "grid"),
        ("dryer", "grid"),
    ]
    assert s.state("fridge") == (b"on", b"none")


async def test_charge_and_runway_tiers_shed_and_return_off_grid_with_hysteresis(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    loads = [
        load(unique_prefix, "heat-pump", 2, shed_below_soc=40, restore_above_soc=50),
        load(
            unique_prefix,
            "fridge",
            3,
            shed_below_runway_min=60,
            restore_above_runway_min=90,
            watts=200,
        ),
    ]
    async with site(mosquitto_session, unique_prefix, tmp_path, loads) as s:
        soc_topic = f"{s.base}/battery_soc"

        async def charge(percent: int) -> None:
            s.gateway.set_battery(soc=percent)
            await s.wait(lambda s: s.recorder.latest().get(soc_topic) == str(percent).encode())
            await asyncio.sleep(1.2)  # a battery read or two more: time for a decision

        await s.grid(False, events=1)
        await charge(80)
        assert s.commands() == []  # off grid, but charge and runway are fine
        await charge(35)  # runway (8750 - 5000) Wh at 1801 W = 124 min: the fridge stays
        assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in s.commands()] == [
            ("heat-pump", b"OFF")
        ]
        assert s.state("heat-pump") == (b"shed", b"soc")
        await charge(45)  # above 40, below 50: stays off
        await charge(22)  # runway 16 min
        await charge(28)  # runway 66 min: above 60, below 90 (and 59 with the fridge's 200 W)
        assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in s.commands()] == [
            ("heat-pump", b"OFF"),
            ("fridge", b"OFF"),
        ]
        assert s.state("fridge") == (b"shed", b"runway")
        await charge(55)  # 50 % and 262 min with the fridge: both come back, fridge first
        await s.wait(lambda s: len(s.commands()) == 4)
    assert [(r.topic.rsplit("/", 1)[1], r.payload) for r in s.commands()[2:]] == [
        ("fridge", b"ON"),
        ("heat-pump", b"ON"),
    ]
    assert [(e["load"], e["reason"]) for e in s.events("restore")] == [
        ("fridge", "runway"),
        ("heat-pump", "soc"),
    ]
    assert s.events("shed")[1]["context"]["backup_runway"] < 60


async def test_a_load_switched_back_on_by_hand_is_not_fought(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    stat = f"{unique_prefix}/devices/dryer-stat"
    dryer = load(unique_prefix, "dryer", 1, state={"topic": stat, "on": "ON", "off": "OFF"})
    loads = [dryer, load(unique_prefix, "aircon", 1)]
    async with site(mosquitto_session, unique_prefix, tmp_path, loads, restore_after=30) as s:
        await s.publish(stat, "ON", retain=True)  # the plug's retained state, from before
        await s.grid(False, events=1)
        await s.wait(lambda s: len(s.commands()) == 3)  # the stat message and two OFFs
        await s.publish(stat, "OFF")  # the plug did as told ...
        await s.publish(stat, "ON")  # ... and then someone switched it back on by hand
        await s.wait(lambda s: s.state("dryer") == (b"on", b"manual"))
        await s.publish(f"{unique_prefix}/shedding/aircon/set", "on")  # the override command
        await s.wait(lambda s: s.state("aircon") == (b"on", b"manual"))
        await s.grid(True, events=2)
        await asyncio.sleep(0.8)
        await s.grid(False, events=3)  # the same outage flickering: neither is shed again
        await asyncio.sleep(1.0)
    sent = [(r.topic.rsplit("/", 1)[1], r.payload) for r in s.commands() if r.topic != stat]
    assert sent == [("dryer", b"OFF"), ("aircon", b"OFF"), ("aircon", b"ON")]
    assert [(e["load"], e["reason"]) for e in s.events("restore")] == [
        ("dryer", "manual"),
        ("aircon", "manual"),
    ]


async def test_dry_run_publishes_what_it_would_do_and_commands_nothing(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    loads = [load(unique_prefix, "dryer", 1)]
    async with site(
        mosquitto_session, unique_prefix, tmp_path, loads, shedding_dry_run=True, restore_after=1
    ) as s:
        await s.grid(False, events=1)
        await s.wait(lambda s: s.state("dryer") == (b"shed", b"grid"))
        await s.grid(True, events=2)
        await s.wait(lambda s: len(s.events("restore")) == 1)
        await asyncio.sleep(0.5)
    assert s.commands() == []
    assert s.recorder.latest()[f"{unique_prefix}/shedding/dry_run"] == b"on"
    assert [(e["type"], e["dry_run"]) for e in s.events() if e["type"] != "grid"] == [
        ("shed", "on"),
        ("restore", "on"),
    ]
    assert s.state("dryer") == (b"on", b"none")


async def test_the_arm_switch_is_a_retained_setting_and_a_home_assistant_switch(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    loads = [load(unique_prefix, "dryer", 1)]
    async with SimulatedGateway(capture=CAPTURE) as gateway:
        async with site(mosquitto_session, unique_prefix, tmp_path, loads, gateway=gateway) as s:
            ha = f"{unique_prefix}-ha"
            configs = await collect(
                "127.0.0.1",
                mosquitto_session.port,
                f"{ha}/+/{gateway.serial}/+/config",
                until=lambda seen: len(seen) > 40,
            )
            switch = json.loads(configs[f"{ha}/switch/{gateway.serial}/shedding_armed/config"])
            sensor = json.loads(configs[f"{ha}/sensor/{gateway.serial}/shedding_dryer/config"])
            assert s.app.ghosts.sweep() == []  # ours: the ghost sweep keeps them
            await s.publish(switch["command_topic"], "off")  # as Home Assistant does
            await s.wait(lambda s: s.recorder.latest().get(switch["state_topic"]) == b"off")
        async with site(mosquitto_session, unique_prefix, tmp_path, loads, gateway=gateway) as s:
            await s.grid(False, events=1)  # disarmed, and still after a restart
            await asyncio.sleep(1.0)
            assert s.commands() == []
            await s.publish(switch["command_topic"], "on")  # armed during the outage: at once
            await s.wait(lambda s: len(s.commands()) == 1)
    assert switch["state_topic"] == f"{unique_prefix}/shedding/armed"
    assert (switch["payload_on"], switch["payload_off"]) == ("on", "off")
    assert switch["unique_id"] == f"envoy2mqtt_{gateway.serial}_shedding_armed"
    assert switch["device"]["identifiers"] == [f"envoy2mqtt_{gateway.serial}"]
    assert sensor["state_topic"] == f"{unique_prefix}/shedding/dryer/state"
    assert sensor["options"] == ["on", "shed"]
