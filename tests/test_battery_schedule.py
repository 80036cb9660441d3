"""The battery mode and charge from grid as the battery controller runs them (/ivp/sc/sched).

On firmware D8.3 the tariff file's storage settings are a stale copy the controller ignores;
the normal read takes /ivp/sc/sched where the gateway has it (asked once on firmware without
it), the catalog publishes from it, and garbage there falls back to the tariff. The parser is
the controls' too (`writes.read_live_battery`). End to end: real broker, the simulated gateway
over HTTPS.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Final

import aiomqtt
import pytest

from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.catalog import battery as battery_catalog
from envoy2mqtt.core.snapshot import (
    SCHEDULE_PATH,
    StorageSchedule,
    Value,
    storage_mode,
    storage_schedule,
)
from envoy2mqtt.gateway import writes
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.sim import Fault, Field, SimulatedGateway
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running
from tests.test_catalog import encharge_site, values
from tests.test_polling import until

BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"  # IQ Batteries, Enpower, dry contacts
SCHEDULE: Final = "ivp_sc_sched"  # the simulator's name for /ivp/sc/sched
TARIFF: Final = "/admin/lib/tariff"
PAGE: Final = "/production.json"  # every full read's first page
HOST: Final = "127.0.0.1"
SCALE: Final = 0.05  # the field's seconds: production.json's 30-55 s in 1.5-2.75 s
MODE: Final = "battery_mode"
CHARGE: Final = "storage_charge_from_grid"

pytestmark = pytest.mark.timeout(120)


# -- the parser: one for the lanes and the controls ---------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "Self Consumption",
        ["Battery Mode", "backup"],
        {},
        {"Charge From Grid Allowed": True},  # no mode: not a schedule this bridge knows
        {"Battery Mode": None, "Charge From Grid Allowed": True},
        {"Battery Mode": 2},
        {"Battery Mode": True},
        {"Battery Mode": ""},
        {"Battery Mode": "   "},
        {"Battery Mode": ["backup"]},
        {"battery mode": "backup"},
    ],
    ids=repr,
)
def test_garbage_is_no_schedule(answer: object) -> None:
    assert storage_schedule(answer) is None


@pytest.mark.parametrize("flag", [None, 2, -1, 0.5, "maybe", "", [], {}, [True]], ids=repr)
def test_a_flag_that_is_not_plain_is_not_guessed(flag: object) -> None:
    answer = {"Battery Mode": "backup", "Charge From Grid Allowed": flag}
    assert storage_schedule(answer) == StorageSchedule("backup", None)


@pytest.mark.parametrize(
    ("flag", "allowed"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("Disabled", False)],
)
def test_plain_flags(flag: object, allowed: bool) -> None:
    answer = {"Battery Mode": "backup", "Charge From Grid Allowed": flag}
    assert storage_schedule(answer) == StorageSchedule("backup", allowed)


@pytest.mark.parametrize(
    ("said", "mode"),
    [
        ("self-consumption", "self-consumption"),
        ("Self Consumption", "self-consumption"),
        ("SELF_CONSUMPTION", "self-consumption"),
        ("backup", "backup"),
        ("Full Backup", "backup"),
        ("economy", "economy"),
        ("Savings", "economy"),
        ("savings-mode", "economy"),
    ],
)
def test_modes_are_the_ones_the_select_offers(said: str, mode: str) -> None:
    assert storage_schedule({"Battery Mode": said}) == StorageSchedule(mode, None)


def test_an_unknown_mode_is_published_as_said_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    said = "AI  Optimization (test 7f3a)"  # unique: the warning is once per process
    with caplog.at_level(logging.WARNING):
        assert storage_mode(said) == "AI Optimization (test 7f3a)"
        assert storage_mode(said) == "AI Optimization (test 7f3a)"
    warned = [r for r in caplog.records if "not seen before" in r.getMessage()]
    assert len(warned) == 1
    assert "AI Optimization (test 7f3a)" in warned[0].getMessage()


def test_an_unknown_mode_is_a_state_home_assistant_takes() -> None:
    """Home Assistant refuses an enum sensor's state outside its options: the mode sensor is
    plain text, so a new profile shows as named instead of an error in Home Assistant's log."""
    (mode,) = [m for m in battery_catalog.BATTERY.source.metrics if m.key == "battery_mode"]
    assert mode.device_class is None
    assert not mode.options
    got = published({"Battery Mode": "AI Optimization", "Charge From Grid Allowed": True})
    assert got[MODE] == "AI Optimization"


# -- the catalog: the schedule over the tariff ------------------------------------------------


def published(schedule: object = None) -> dict[str, Value]:
    """The catalog's values for a battery site whose tariff says economy, charge from grid on."""
    data = encharge_site()
    if schedule is not None:
        data.raw[SCHEDULE_PATH] = schedule
    return values(data)


def test_the_catalog_publishes_the_schedule_not_the_tariff() -> None:
    assert (published()[MODE], published()[CHARGE]) == ("economy", "on")  # the tariff's
    got = published({"Battery Mode": "Full Backup", "Charge From Grid Allowed": False})
    assert (got[MODE], got[CHARGE]) == ("backup", "off")


def test_garbage_in_the_schedule_falls_back_to_the_tariff() -> None:
    for garbage in ([1, 2], {"Battery Mode": 3}, "backup"):
        got = published(garbage)
        assert (got[MODE], got[CHARGE]) == ("economy", "on"), garbage
    # a plain mode with a flag that is not plain: the mode is the schedule's, the flag the tariff's
    got = published({"Battery Mode": "backup", "Charge From Grid Allowed": "perhaps"})
    assert (got[MODE], got[CHARGE]) == ("backup", "on")


# -- the client's full read --------------------------------------------------------------------


def serve(gateway: SimulatedGateway, name: str, document: object) -> None:
    """From now on the gateway answers `document` (valid JSON, any shape) for capture `name`."""
    gateway.state.documents[name] = document
    gateway.state.dirty.add(name)


async def test_the_full_read_carries_the_schedule_and_keeps_it_through_a_failed_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway:
        serve(gateway, SCHEDULE, {"Battery Mode": "backup", "Charge From Grid Allowed": True})
        tokens = FixedToken(gateway.make_token())
        async with GatewayClient(gateway.host, tokens=tokens, timeout=2.0) as client:
            await client.connect()
            data = await client.read_normal()
            assert storage_schedule(data.raw[SCHEDULE_PATH]) == StorageSchedule("backup", True)
            # one failed read: the last answer stays (no flip to the tariff's copy and back)
            gateway.set_fault(Fault.HTML, paths={SCHEDULE_PATH})
            with caplog.at_level(logging.WARNING):
                data = await client.read_normal()
                data = await client.read_normal()
            assert storage_schedule(data.raw[SCHEDULE_PATH]) == StorageSchedule("backup", True)
            gateway.set_fault(Fault.NONE)
            # JSON that is not a schedule: left out, so the catalog reads the tariff
            serve(gateway, SCHEDULE, {"schedules": []})
            with caplog.at_level(logging.WARNING):
                data = await client.read_normal()
            assert SCHEDULE_PATH not in data.raw
    warned = [r.getMessage() for r in caplog.records if SCHEDULE_PATH in r.getMessage()]
    assert len(warned) == 2, warned  # once per failing streak
    assert "last answer kept" in warned[0]
    assert "not a battery schedule" in warned[1]
    assert "from the tariff file" in warned[1]


async def test_firmware_without_the_schedule_is_asked_once() -> None:
    async with SimulatedGateway(capture=BATTERY, serve_schedule=False) as gateway:
        tokens = FixedToken(gateway.make_token())
        async with GatewayClient(gateway.host, tokens=tokens) as client:
            await client.connect()
            for _ in range(3):
                data = await client.read_normal()
                assert SCHEDULE_PATH not in data.raw
            live = await writes.read_live_battery(client)  # the controls know it too
        assert gateway.stats.requests[SCHEDULE_PATH] == 1
        assert gateway.stats.requests[TARIFF] >= 3
    assert (live.source, live.mode, live.charge_from_grid) == (TARIFF, "self-consumption", False)


async def test_the_controls_read_the_schedule_through_the_same_parser() -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway:
        serve(gateway, SCHEDULE, {"Battery Mode": "Full Backup", "Charge From Grid Allowed": 1})
        tokens = FixedToken(gateway.make_token())
        async with GatewayClient(gateway.host, tokens=tokens) as client:
            await client.connect()
            await client.read_normal()
            live = await writes.read_live_battery(client)
    assert (live.source, live.mode, live.charge_from_grid) == (SCHEDULE_PATH, "backup", True)


# -- end to end --------------------------------------------------------------------------------


def payloads(recorder: Recorder, topic: str) -> list[str]:
    """Every payload a topic carried so far, oldest first."""
    return [r.payload.decode() for r in recorder.on(topic)]


def starts(gateway: SimulatedGateway, path: str, after: float) -> list[float]:
    """When the requests for `path` begun after `after` began."""
    return [r.start for r in gateway.stats.log if r.path == path and r.start > after]


async def test_mode_and_charge_from_grid_are_the_controllers_not_the_stale_tariffs(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    """D8.3: the cloud changed the controller, the tariff file kept its copy; then a local
    write changes the file only. The topics show the controller's values throughout."""
    field = Field.current_firmware(time_scale=SCALE, seed=7)  # local battery writes ignored
    async with SimulatedGateway(capture=BATTERY, field=field) as gateway:
        gateway.set_storage(optimised_schedules=False)
        gateway.apply_battery_settings(mode="backup", charge_from_grid=True, reserve_soc=60)
        stale = gateway.document(TARIFF)["tariff"]["storage_settings"]
        assert (stale["mode"], stale["charge_from_grid"]) == ("self-consumption", False)
        schedule = gateway.document(SCHEDULE_PATH)
        assert (schedule["Battery Mode"], schedule["Charge From Grid Allowed"]) == ("backup", True)
        settings = bridge_settings(
            gateway,
            mosquitto_session.port,
            unique_prefix,
            tmp_path,
            poll_interval=5,
            controls="all",
            battery_control_path="local",
            control_settle=1,
            control_rate_limit=0,
        )
        root = f"{unique_prefix}/{gateway.serial}"
        mode, charge = f"{root}/{MODE}", f"{root}/{CHARGE}"
        async with (
            Recorder(HOST, mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda _r: bool(payloads(recorder, mode) and payloads(recorder, charge)), 60
            )
            assert (payloads(recorder, mode)[0], payloads(recorder, charge)[0]) == ("backup", "on")
            # a local write: the tariff file takes it (200), the controller does not
            async with aiomqtt.Client(HOST, mosquitto_session.port) as client:
                await client.publish(f"{root}/set/battery_mode", "economy", qos=1)

            def answered(_records: object) -> list[dict[str, Any]]:
                return [
                    json.loads(r.payload)
                    for r in recorder.on(f"{root}/response")
                    if json.loads(r.payload)["status"] != "pending"
                ]

            await recorder.wait_for(lambda r: bool(answered(r)), 30)
            assert answered(None)[-1]["status"] == "ignored"
            assert gateway.document(TARIFF)["tariff"]["storage_settings"]["mode"] == "economy"
            # the next normal reads (read-backs and the lane's) publish from the schedule
            after = time.monotonic()
            # the third full read begun: two were read and published (the lane is sequential)
            await until(lambda: len(starts(gateway, PAGE, after)) >= 3, 45)
            assert len(starts(gateway, SCHEDULE_PATH, after)) >= 2
            modes, charges = payloads(recorder, mode), payloads(recorder, charge)
    assert set(modes) == {"backup"}, modes
    assert set(charges) == {"on"}, charges


async def test_firmware_without_the_schedule_publishes_the_tariff_and_asks_once(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=BATTERY, serve_schedule=False) as gateway:
        gateway.set_storage(mode="backup", charge_from_grid=True)
        settings = bridge_settings(
            gateway, mosquitto_session.port, unique_prefix, tmp_path, poll_interval=5
        )
        root = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(HOST, mosquitto_session.port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(lambda _r: bool(payloads(recorder, f"{root}/{CHARGE}")), 30)
            begun = time.monotonic()
            await until(lambda: len(starts(gateway, TARIFF, begun)) >= 3, 30)
            modes = payloads(recorder, f"{root}/{MODE}")
            charges = payloads(recorder, f"{root}/{CHARGE}")
        asked = gateway.stats.requests[SCHEDULE_PATH]
    assert (set(modes), set(charges)) == ({"backup"}, {"on"})
    assert asked == 1
