"""Controls end to end: a command on the real broker -> the bridge -> the simulated gateway over
real HTTPS -> read back -> a response (and events, and state) on the broker.

Every test runs the real App on a simulated gateway and a real mosquitto; the gateway's own
request log is the proof of what was (or was not) written, and its overlap counter that no
write ever overlapped a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt
import pytest

from envoy2mqtt.app import App
from envoy2mqtt.control import executor
from envoy2mqtt.sim import SimulatedGateway, WriteFault
from tests.broker import Mosquitto, Record, Recorder, collect
from tests.harness import assert_polite, bridge_settings, running

BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"  # IQ Batteries, Enpower, dry contacts
GENERATOR: Final = "8.3.5169_with_generator"  # Enpower, dry contacts, generator (no batteries)
TARIFF: Final = "/admin/lib/tariff"
RELAY: Final = "/ivp/ensemble/relay"
HOST: Final = "127.0.0.1"

pytestmark = pytest.mark.timeout(90)


@dataclass(slots=True)
class Site:
    """A running bridge with controls on, its gateway, and what its topics carried."""

    gateway: SimulatedGateway
    recorder: Recorder
    app: App
    port: int
    prefix: str

    @property
    def root(self) -> str:
        """`<base>/<serial>`."""
        return f"{self.prefix}/{self.gateway.serial}"

    async def send(self, suffix: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish a command below `<base>/<serial>/`, as any MQTT client would."""
        async with aiomqtt.Client(HOST, self.port) as client:
            await client.publish(f"{self.root}/{suffix}", payload, qos=1, retain=retain)

    def responses(self) -> list[dict[str, Any]]:
        """Every response so far, oldest first."""
        return [json.loads(r.payload) for r in self.recorder.on(f"{self.root}/response")]

    async def answered(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait for `count` responses in all; return them."""
        topic = f"{self.root}/response"
        await self.recorder.wait_for(lambda r: _count(r, topic) >= count, timeout=timeout)
        return self.responses()

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The events of one type so far."""
        bodies = [json.loads(r.payload) for r in self.recorder.on(f"{self.root}/event")]
        return [b for b in bodies if b["type"] == kind]

    async def state(self, path: str, value: str, timeout: float = 20.0) -> None:
        """Wait until the retained state of `path` reads `value`."""
        topic = f"{self.root}/{path}"
        await self.recorder.wait_for(
            lambda r: any(x.topic == topic and x.payload == value.encode() for x in r),
            timeout=timeout,
        )

    def writes(self, path: str | None = None) -> list[tuple[str, int]]:
        """(path, status) of every write the gateway received (to `path` only, if given)."""
        return [(w.path, w.status) for w in self.gateway.write_log if path in (None, w.path)]


def _count(records: list[Record], topic: str) -> int:
    return sum(1 for r in records if r.topic == topic)


def offered_config(site: Site, component: str, path: str) -> str:
    """The discovery config topic of a control entity."""
    object_id = path.replace("/", "_")
    return f"{site.prefix}-ha/{component}/{site.gateway.serial}/control_{object_id}/config"


@contextlib.asynccontextmanager
async def controlled(
    capture: str,
    broker: Mosquitto,
    prefix: str,
    state_dir: Path,
    *,
    ready: str = "grid_enabled",
    prepare: Callable[[SimulatedGateway], None] | None = None,
    **settings: object,
) -> AsyncIterator[Site]:
    """A simulated gateway and the bridge on it with CONTROLS=all (unless told otherwise),
    once the control `ready` is announced."""
    values: dict[str, object] = {
        "controls": "all",
        "control_settle": 0.5,
        "control_relay_open_timeout": 2,
        "control_relay_close_timeout": 2,
        "control_contact_timeout": 2,
        "poll_interval": 5,
        **settings,
    }
    async with SimulatedGateway(capture=capture) as gateway:
        if prepare is not None:
            prepare(gateway)
        app = App(bridge_settings(gateway, broker.port, prefix, state_dir, **values))
        async with Recorder(HOST, broker.port, f"{prefix}/#") as recorder, running(app):
            site = Site(gateway, recorder, app, broker.port, prefix)
            marker = f"/control_{ready.replace('/', '_')}/config"
            async with Recorder(HOST, broker.port, f"{prefix}-ha/#") as configs:
                await configs.wait_for(lambda r: any(x.topic.endswith(marker) for x in r), 30)
            await asyncio.sleep(0.2)  # the first full read is published; lanes are polling
            yield site


def answer(response: dict[str, Any]) -> tuple[Any, ...]:
    """The fields a test compares: status, control, requested, actual, transaction."""
    keys = ("status", "control", "requested", "actual", "transaction")
    return tuple(response[k] for k in keys)


# -- the controls, each accepted and read back -------------------------------------------------


async def test_storage_settings_are_written_read_back_and_published(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    def schedules_off(gateway: SimulatedGateway) -> None:
        gateway.set_storage(optimised_schedules=False)

    async with controlled(
        BATTERY, mosquitto_session, unique_prefix, tmp_path, prepare=schedules_off
    ) as site:
        await site.send(
            "set",
            json.dumps(
                {
                    "battery_mode": "backup",
                    "reserve_soc": 30,
                    "charge_from_grid": "on",
                    "transaction": "t-1",
                }
            ),
        )
        responses = await site.answered(3)
        assert sorted(answer(r) for r in responses) == [
            ("ok", "battery_mode", "backup", "backup", "t-1"),
            ("ok", "charge_from_grid", "on", "on", "t-1"),
            ("ok", "reserve_soc", 30, 30.0, "t-1"),
        ]
        served = site.gateway.document(TARIFF)["tariff"]["storage_settings"]
        assert (served["mode"], served["reserved_soc"], served["charge_from_grid"]) == (
            "backup",
            30.0,
            True,
        )
        await site.state("battery_mode", "backup")
        await site.state("tariff_reserve_soc", "30")
        await site.state("reserve_soc", "30")  # the controller's: the entity's
        await site.state("storage_charge_from_grid", "on")
        # the whole tariff document is PUT, once per setting, through the one-request gate
        assert site.writes() == [(TARIFF, 200)] * 3
        assert_polite(site.gateway)


async def test_the_reserve_goes_by_its_new_name_and_for_one_release_by_its_old_one(
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    executor._deprecated_said.clear()  # a fresh process, as far as the old name goes
    caplog.set_level(logging.WARNING)
    async with controlled(
        BATTERY, mosquitto_session, unique_prefix, tmp_path, control_rate_limit=0
    ) as site:
        # the old name, on its topic and in the JSON form: answered under the name it was sent with
        await site.send("set/battery_reserve_soc", "30")
        assert answer((await site.answered(1))[0]) == ("ok", "battery_reserve_soc", 30, 30.0, None)
        await site.send("set", json.dumps({"battery_reserve_soc": 35, "transaction": "j"}))
        assert answer((await site.answered(2))[1]) == ("ok", "battery_reserve_soc", 35, 35.0, "j")
        await site.send("set/reserve_soc", "40")
        assert answer((await site.answered(3))[2]) == ("ok", "reserve_soc", 40, 40.0, None)
        # the value under its new name and, until the next release, its old one
        await site.state("reserve_soc", "40")
        await site.state("battery_configured_reserve_soc", "40")
        root = site.root
        configs = {
            topic: json.loads(payload)
            for topic, payload in (
                await collect(HOST, site.port, f"{unique_prefix}-ha/#", timeout=2.0)
            ).items()
            if payload
        }
    serial = site.gateway.serial
    states = [c.get("state_topic") for c in configs.values() if "command_topic" not in c]
    assert states.count(f"{root}/reserve_soc") == 1  # one entity per value
    assert f"{root}/battery_configured_reserve_soc" not in states
    (number,) = [c for c in configs.values() if c.get("command_topic", "").endswith("reserve_soc")]
    assert (number["command_topic"], number["state_topic"], number["unique_id"]) == (
        f"{root}/set/reserve_soc",
        f"{root}/reserve_soc",
        f"envoy2mqtt_{serial}_control_battery_reserve_soc",  # kept: its users' entity id
    )
    said = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    # once at start-up for the old topics, once for the old command name (sent twice)
    assert [m for m in said if m.startswith("renamed topics (")] == [said[0]]
    assert said[1:] == [
        "the command name battery_reserve_soc is deprecated: use reserve_soc "
        "(it will be removed in the next release)"
    ]


async def test_grid_relay_goes_off_grid_and_back(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(BATTERY, mosquitto_session, unique_prefix, tmp_path) as site:
        await site.send("set/grid_enabled", "off")
        assert answer((await site.answered(1))[0]) == ("ok", "grid_enabled", "off", "off", None)
        assert not site.gateway.grid_on
        await site.state("grid_status", "off-grid")
        await site.recorder.wait_for(lambda _r: bool(site.events("grid")), timeout=10)
        assert site.events("grid")[0]["to"] == "off-grid"
        await asyncio.sleep(site.app.settings.control_rate_limit)  # one write per 10 s
        await site.send("set", json.dumps({"grid_enabled": True, "transaction": 2}))
        assert answer((await site.answered(2))[1]) == ("ok", "grid_enabled", "on", "on", 2)
        assert site.gateway.grid_on
        assert site.writes() == [(RELAY, 200)] * 2
        assert_polite(site.gateway)


async def test_dry_contact_position_and_settings_in_one_message(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        body = {"status": "open", "mode": "soc", "soc_low": 20, "soc_high": 80}
        await site.send("dry_contact/NC1/set", json.dumps({**body, "transaction": "dc"}))
        responses = await site.answered(4)
        assert sorted(answer(r) for r in responses) == [
            ("ok", "dry_contact/NC1/mode", "soc", "soc", "dc"),
            ("ok", "dry_contact/NC1/soc_high", 80, 80.0, "dc"),
            ("ok", "dry_contact/NC1/soc_low", 20, 20.0, "dc"),
            ("ok", "dry_contact/NC1/status", "open", "open", "dc"),
        ]
        # the settings go merged and complete in one POST, then the position
        assert site.writes() == [
            ("/ivp/ss/dry_contact_settings", 200),
            ("/ivp/ensemble/dry_contacts", 200),
        ]
        sent = site.gateway.write_log[0].body["dry_contacts"]
        assert (sent["id"], sent["mode"], sent["load_name"], sent["grid_action"]) == (
            "NC1",
            "soc",
            "AC/Water heater",
            "apply",
        )
        await site.state("dry_contact/NC1/status", "open")
        await site.state("dry_contact/NC1/mode", "soc")
        await site.send("dry_contact/NC2/set/status", "open")
        actions = {"grid_action": "shed", "micro_grid_action": "apply", "generator_action": "none"}
        await site.send("dry_contact/NO1/set", json.dumps(actions))
        responses = await site.answered(8)
        assert sorted(answer(r)[:4] for r in responses[4:]) == [
            ("ok", "dry_contact/NC2/status", "open", "open"),
            ("ok", "dry_contact/NO1/generator_action", "none", "none"),
            ("ok", "dry_contact/NO1/grid_action", "shed", "shed"),
            ("ok", "dry_contact/NO1/micro_grid_action", "apply", "apply"),
        ]
        # NO1 is of type NONE: the gateway stores its grid actions and never acts on them
        said = {r["control"]: r.get("message") for r in responses[4:]}
        assert "only for contacts whose type is LOAD" in str(said["dry_contact/NO1/grid_action"])
        assert said["dry_contact/NO1/generator_action"] is None
        served = site.gateway.document("/ivp/ss/dry_contact_settings")["dry_contacts"][2]
        assert (served["id"], served["grid_action"], served["micro_grid_action"]) == (
            "NO1",
            "shed",
            "apply",
        )
        assert_polite(site.gateway)


async def test_generator_mode(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        await site.send("set/generator_mode", "Auto")
        assert answer((await site.answered(1))[0]) == (
            "ok",
            "generator_mode",
            "auto",
            "auto",
            None,
        )
        assert site.gateway.document("/ivp/ss/gen_mode")["gen_cmd"] == "auto"
        await site.state("generator/3019990001/mode", "auto")
        assert site.writes() == [("/ivp/ss/gen_mode", 200)]


# -- commands that do not stick ----------------------------------------------------------------


async def test_a_mode_the_gateway_ignores_is_reported_ignored_with_the_reason(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    # the captured site has optimised schedules on: the gateway says 200 and keeps its mode
    async with controlled(BATTERY, mosquitto_session, unique_prefix, tmp_path) as site:
        await site.send("set/battery_mode", "backup")
        pending, response = await site.answered(2)
        assert (pending["status"], pending["via"]) == ("pending", "local")
        assert answer(response) == ("ignored", "battery_mode", "backup", "self-consumption", None)
        assert "optimised schedules" in response["message"]
        assert site.writes() == [(TARIFF, 200)]


async def test_a_write_answered_200_and_dropped_is_reported_ignored(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        site.gateway.set_write_fault(WriteFault.IGNORE, paths={RELAY})
        await site.send("set/grid_enabled", "off")
        pending, response = await site.answered(2)
        assert pending["status"] == "pending"
        assert answer(response) == ("ignored", "grid_enabled", "off", "on", None)
        assert "still reads 'closed'" in response["message"]
        assert site.gateway.grid_on


@pytest.mark.parametrize("reassert", [False, True])
async def test_a_reverted_setting_raises_a_control_event(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path, reassert: bool
) -> None:
    async with controlled(
        BATTERY,
        mosquitto_session,
        unique_prefix,
        tmp_path,
        control_reassert=reassert,
        control_rate_limit=60,
    ) as site:
        site.gateway.set_write_fault(WriteFault.REVERT, paths={TARIFF}, revert_after=1.0)
        original = site.gateway.document(TARIFF)["tariff"]["storage_settings"]["reserved_soc"]
        await site.send("set", json.dumps({"battery_reserve_soc": 40, "transaction": "r"}))
        assert answer((await site.answered(1))[0]) == ("ok", "battery_reserve_soc", 40, 40.0, "r")
        # the cloud puts it back; the next normal read (every 5 s) sees it
        await site.recorder.wait_for(lambda _r: bool(site.events("control")), timeout=15)
        (event,) = site.events("control")
        assert (event["control"], event["status"], event["from"], event["to"]) == (
            "battery_reserve_soc",
            "reverted",
            40,
            original,
        )
        assert event["transaction"] == "r"
        if not reassert:
            assert site.writes() == [(TARIFF, 200)]
            return
        # written once more (past the rate limit), taken, and reverted again: no third write
        again = (await site.answered(2))[1]
        assert answer(again) == ("ok", "battery_reserve_soc", 40, 40.0, "r")
        assert again["reassert"] is True
        await site.recorder.wait_for(lambda _r: len(site.events("control")) == 2, timeout=15)
        await asyncio.sleep(6)  # another normal read
        assert site.writes() == [(TARIFF, 200)] * 2
        assert len(site.events("control")) == 2


# -- Home Assistant discovery --------------------------------------------------------------------


async def test_control_entities_are_announced_on_their_devices(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(GENERATOR, mosquitto_session, unique_prefix, tmp_path) as site:
        configs = await collect(HOST, site.port, f"{unique_prefix}-ha/#", timeout=2.0)
        controls = {t: json.loads(p) for t, p in configs.items() if "/control_" in t and p}
        grid = controls[offered_config(site, "switch", "grid_enabled")]
        assert grid["entity_category"] == "config"
        assert grid["name"].startswith("Grid connection")
        assert grid["command_topic"] == f"{site.root}/set/grid_enabled"
        assert grid["state_topic"].endswith("/grid_relay_commanded")
        assert (grid["state_on"], grid["state_off"]) == ("closed", "open")
        assert grid["device"]["name"].startswith("IQ System Controller")
        relay = controls[offered_config(site, "switch", "dry_contact/NC1/status")]
        assert relay["command_topic"] == f"{site.root}/dry_contact/NC1/set/status"
        assert (relay["payload_on"], relay["payload_off"]) == ("closed", "open")
        low = controls[offered_config(site, "number", "dry_contact/NC1/soc_low")]
        assert (low["min"], low["max"], low["step"], low["unit_of_measurement"]) == (0, 100, 1, "%")
        mode = controls[offered_config(site, "select", "generator_mode")]
        assert mode["options"] == ["off", "on", "auto"]
        assert mode["state_topic"] == f"{site.root}/generator/3019990001/mode"
        sensors = {t: json.loads(p) for t, p in configs.items() if p and t not in controls}
        ids = {c["unique_id"] for c in sensors.values()}
        for config in controls.values():
            assert config["unique_id"] not in ids
            assert config["retain"] is False
            state = config["state_topic"]  # shown by an existing sensor, on that sensor's device
            (sensor,) = [c for c in sensors.values() if c.get("state_topic") == state]
            assert sensor["device"]["identifiers"] == config["device"]["identifiers"]
        # no batteries on this site: no storage controls
        assert not any("battery" in t or "charge_from_grid" in t for t in controls)
        # and the gateway's answers: the latest one's status, its fields as attributes
        answers = sensors[f"{unique_prefix}-ha/sensor/{site.gateway.serial}/response/config"]
        assert answers["state_topic"] == answers["json_attributes_topic"] == f"{site.root}/response"
        assert answers["value_template"] == "{{ value_json.status }}"
        assert answers["entity_category"] == "diagnostic"
        assert answers["device"]["identifiers"] == [f"envoy2mqtt_{site.gateway.serial}"]


async def test_battery_scope_offers_the_storage_controls_only(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with controlled(
        BATTERY,
        mosquitto_session,
        unique_prefix,
        tmp_path,
        controls="battery",
        ready="battery_mode",
    ) as site:
        configs = await collect(HOST, site.port, f"{unique_prefix}-ha/#", timeout=2.0)
        controls = sorted(
            re.sub(r".*/control_|/config", "", t) for t in configs if "/control_" in t
        )
        # the reserve's entity keeps the config topic (and unique id) of its old name
        assert controls == ["battery_mode", "battery_reserve_soc", "charge_from_grid"]
        await site.send("set/grid_enabled", "off")
        (response,) = await site.answered(1)
        assert response["status"] == "error"
        assert "CONTROLS=battery" in response["message"]
        assert site.writes() == []
