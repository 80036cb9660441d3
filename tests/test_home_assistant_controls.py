"""Home Assistant drives the controls: a real Home Assistant 2024.3.3 (tests/ha) takes in the
bridge's select, number and switch entities, and turning them through its REST `services`
API changes the simulated gateway's state, which then shows in Home Assistant; its answers
sensor shows `pending` while a write is on its way, then how it ended.

Two simulated gateways (IQ Batteries + Enpower; Enpower + dry contacts + generator), each with
a bridge process of its own run as a user runs it, with CONTROLS=all; for the answers, a third
on current firmware (the field's behaviour: local battery writes ignored) with its Enlighten.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import pytest
import pytest_asyncio

from envoy2mqtt.sim import Field, SimulatedGateway
from envoy2mqtt.sim.battery_cloud import CloudSite, storage_applier
from envoy2mqtt.sim.enlighten import SimulatedEnlighten
from tests.ha.bridge import bridge_env, bridge_process
from tests.ha.client import HomeAssistantApi
from tests.ha.process import complaints
from tests.ha.site import Gateway, HaSite, Settled
from tests.harness import assert_polite

pytestmark = [
    pytest.mark.ha,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(600),
]

BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"
GENERATOR: Final = "8.3.5169_with_generator"
CONTROLS: Final = {"CONTROLS": "all", "CONTROL_SETTLE": "1", "CONTROL_RATE_LIMIT": "1"}
ABOUT_DISCOVERY: Final = re.compile(r"mqtt|discovery|homeassistant/|envoy", re.IGNORECASE)
FIELD: Final = "7.6.185_with_cts_and_battery_3t"  # an IQ Battery, and a serial of its own
SCALE: Final = 0.1  # the field's seconds: Enlighten's 10-20 s delivery in 1-2 s
ACCOUNT: Final = "owner@example.com"
PASSWORD: Final = "a-password-never-logged-5519"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HaSite]:
    """Home Assistant, its broker, and a bridge with controls on each of the two gateways."""
    async with (
        HaSite(tmp_path_factory.mktemp("home-assistant-controls")) as site,
        contextlib.AsyncExitStack() as stack,
    ):
        assert site.broker is not None
        for i, capture in enumerate((BATTERY, GENERATOR)):
            sim = await stack.enter_async_context(SimulatedGateway(capture=capture))
            if capture == BATTERY:  # as captured, a locally set mode would be ignored
                sim.set_storage(optimised_schedules=False)
            base, workdir = f"e2m-hactl{i}", site.workdir / f"bridge-{sim.serial}"
            env = {**bridge_env(sim, site.broker.port, base, workdir / "state"), **CONTROLS}
            process = await stack.enter_async_context(bridge_process(env, workdir))
            site.gateways[capture] = Gateway(capture, sim, base, workdir, process, time.time())
        yield site


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def settled(site: HaSite) -> dict[str, Settled]:
    """Each gateway's retained configs and entities, once every config is an entity."""
    return {capture: await site.settled(site.gateways[capture]) for capture in site.gateways}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def field(site: HaSite) -> AsyncIterator[Gateway]:
    """A gateway on current firmware (local battery writes taken and ignored), its Enlighten,
    and a bridge with CONTROLS=all and the account, battery settings on BATTERY_CONTROL_PATH=auto
    (it learns Enlighten on the first write)."""
    assert site.broker is not None
    firmware = Field.current_firmware(time_scale=SCALE, seed=3)
    async with (
        SimulatedGateway(capture=FIELD, field=firmware) as sim,
        SimulatedEnlighten(
            accounts={ACCOUNT: PASSWORD},
            sites=[CloudSite(site_id=4_400_002, serials=(sim.serial,), owner=ACCOUNT)],
            time_scale=SCALE,
            apply=storage_applier([sim]),
        ) as cloud,
    ):
        sim.set_storage(optimised_schedules=False)
        base, workdir = "e2m-hactl-field", site.workdir / f"bridge-{sim.serial}"
        env = {
            **bridge_env(sim, site.broker.port, base, workdir / "state"),
            **CONTROLS,
            "ENVOY_USERNAME": ACCOUNT,
            "ENVOY_PASSWORD": PASSWORD,
            "ENLIGHTEN_LOGIN_URL": cloud.login_url,
            "ENTREZ_TOKEN_URL": cloud.token_url,
            "CONTROL_CLOUD_TIMEOUT": "10",  # 30 field seconds and room to read
        }
        async with bridge_process(env, workdir) as process:
            yield Gateway(FIELD, sim, base, workdir, process, time.time())


def api(site: HaSite) -> HomeAssistantApi:
    """The site's Home Assistant API."""
    assert site.api is not None
    return site.api


def control(gateway: Gateway, component: str, path: str) -> str:
    """A control entity's id: `<component>.envoy_<serial>_<command path as a slug>`."""
    return f"{component}.envoy_{gateway.serial}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}"


async def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.2)


async def state_of(site: HaSite, entity_id: str, value: str, timeout: float = 30.0) -> None:
    """Wait until Home Assistant shows `entity_id` as `value`."""
    deadline = time.monotonic() + timeout
    while True:
        found = await api(site).state(entity_id)
        if found is not None and found["state"] == value:
            return
        seen = found["state"] if found else None
        assert time.monotonic() < deadline, f"{entity_id} is {seen!r}, not {value!r}"
        await asyncio.sleep(0.5)


async def call(site: HaSite, service: str, entity_id: str, **data: Any) -> None:
    """A service call through Home Assistant's REST API, as a dashboard makes it."""
    await api(site).rest("POST", f"/api/services/{service}", {"entity_id": entity_id, **data})


def storage(gateway: Gateway) -> dict[str, Any]:
    """The storage settings the simulated gateway serves now."""
    settings: dict[str, Any] = gateway.sim.document("/admin/lib/tariff")["tariff"][
        "storage_settings"
    ]
    return settings


async def test_every_control_is_an_entity_home_assistant_accepts(
    site: HaSite, settled: dict[str, Settled]
) -> None:
    problems = complaints(site.ha.log() if site.ha else "", ABOUT_DISCOVERY)
    assert not problems, "Home Assistant complained:\n" + "\n".join(problems)
    battery, generator = site.gateways[BATTERY], site.gateways[GENERATOR]
    found = {e["entity_id"] for s in settled.values() for e in s.entities}
    for gateway, component, path in (
        (battery, "select", "battery_mode"),
        (battery, "number", "reserve_soc"),
        (battery, "switch", "charge_from_grid"),
        (battery, "switch", "grid_enabled"),
        (generator, "switch", "grid_enabled"),
        (generator, "select", "generator_mode"),
        (generator, "switch", "dry_contact/NC1/status"),
        (generator, "select", "dry_contact/NC1/mode"),
        (generator, "number", "dry_contact/NC1/soc_low"),
    ):
        assert control(gateway, component, path) in found
    entries = {e["entity_id"]: e for s in settled.values() for e in s.entities}
    assert entries[control(battery, "switch", "grid_enabled")]["entity_category"] == "config"
    await state_of(site, control(battery, "select", "battery_mode"), "self-consumption")
    await state_of(site, control(battery, "switch", "grid_enabled"), "on")
    await state_of(site, control(generator, "switch", "dry_contact/NC1/status"), "on")  # closed


async def test_the_storage_controls_change_the_gateway(
    site: HaSite, settled: dict[str, Settled]
) -> None:
    battery = site.gateways[BATTERY]
    await call(
        site, "select/select_option", control(battery, "select", "battery_mode"), option="backup"
    )
    await until(lambda: storage(battery)["mode"] == "backup", "the mode written")
    await state_of(site, control(battery, "select", "battery_mode"), "backup")
    await call(site, "number/set_value", control(battery, "number", "reserve_soc"), value=35)
    await until(lambda: storage(battery)["reserved_soc"] == 35, "the reserve written")
    await state_of(site, control(battery, "number", "reserve_soc"), "35")
    await call(site, "switch/turn_on", control(battery, "switch", "charge_from_grid"))
    await until(lambda: storage(battery)["charge_from_grid"] is True, "charge from grid on")
    await state_of(site, control(battery, "switch", "charge_from_grid"), "on")


async def test_the_grid_switch_takes_the_site_off_grid_and_back(
    site: HaSite, settled: dict[str, Settled]
) -> None:
    battery = site.gateways[BATTERY]
    switch = control(battery, "switch", "grid_enabled")
    await call(site, "switch/turn_off", switch)
    await until(lambda: not battery.sim.grid_on, "the relay opened")
    await state_of(site, switch, "off")
    await state_of(site, f"binary_sensor.envoy_{battery.serial}_grid_status", "off")
    await asyncio.sleep(1.5)  # CONTROL_RATE_LIMIT
    await call(site, "switch/turn_on", switch)
    await until(lambda: battery.sim.grid_on, "the relay closed again")
    await state_of(site, switch, "on")


async def test_dry_contacts_and_the_generator_mode(
    site: HaSite, settled: dict[str, Settled]
) -> None:
    generator = site.gateways[GENERATOR]
    sim = generator.sim

    def contact(document: str) -> dict[str, Any]:
        entry: dict[str, Any] = sim.document(document)["dry_contacts"][0]  # NC1
        return entry

    await call(site, "switch/turn_off", control(generator, "switch", "dry_contact/NC1/status"))
    await until(lambda: contact("/ivp/ensemble/dry_contacts")["status"] == "open", "NC1 open")
    await call(
        site,
        "select/select_option",
        control(generator, "select", "dry_contact/NC1/mode"),
        option="soc",
    )
    await until(lambda: contact("/ivp/ss/dry_contact_settings")["mode"] == "soc", "NC1 by soc")
    await asyncio.sleep(1.5)  # CONTROL_RATE_LIMIT: NC1's settings are one write
    await call(
        site, "number/set_value", control(generator, "number", "dry_contact/NC1/soc_low"), value=25
    )
    await until(lambda: contact("/ivp/ss/dry_contact_settings")["soc_low"] == 25, "NC1 low 25")
    await call(
        site, "select/select_option", control(generator, "select", "generator_mode"), option="auto"
    )
    await until(lambda: sim.document("/ivp/ss/gen_mode")["gen_cmd"] == "auto", "generator auto")
    await state_of(site, control(generator, "select", "generator_mode"), "auto")
    await state_of(site, control(generator, "switch", "dry_contact/NC1/status"), "off")
    assert_polite(sim)


async def test_the_answers_sensor_shows_pending_then_how_the_write_ended(
    site: HaSite, settled: dict[str, Settled], field: Gateway
) -> None:
    found = await site.settled(field)
    answers = f"sensor.envoy_{field.serial}_response"
    entries = {e["entity_id"]: e for e in found.entities}
    assert entries[answers]["entity_category"] == "diagnostic"
    reserve = control(field, "number", "reserve_soc")
    assert reserve in entries
    async with api(site).watching(answers) as seen:
        await call(site, "number/set_value", reserve, value=40)
        await until(lambda: any(s["state"] != "pending" for s in seen), "a final answer", 60)
    states = [s["state"] for s in seen]
    assert [k for i, k in enumerate(states) if i == 0 or states[i - 1] != k] == ["pending", "ok"]
    first, last = seen[0]["attributes"], seen[-1]["attributes"]
    # written locally first (auto); ignored by this firmware, so through Enlighten, then ok
    assert (first["control"], first["requested"], first["via"]) == ("reserve_soc", 40, "local")
    assert first["within"] > 0
    assert "the answer follows within" in first["message"]
    assert [s["attributes"]["via"] for s in seen if s["state"] == "pending"][-1] == "enlighten"
    assert (last["control"], last["actual"], last["via"]) == ("reserve_soc", 40, "enlighten")
    assert "within" not in last  # each answer's fields replace the last one's
    await state_of(site, answers, "ok")  # as the REST API has it
    assert field.sim.document("/ivp/ensemble/secctrl")["configured_backup_soc"] == 40
    problems = complaints(site.ha.log() if site.ha else "", ABOUT_DISCOVERY)
    assert not problems, "Home Assistant complained:\n" + "\n".join(problems)
