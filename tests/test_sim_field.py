"""The simulator's field profile: the real gateway's timing and quirks, over real HTTPS.

Every duration is scaled down with `time_scale`; the assertions are about order and state,
never about how fast the machine is (a sleep is only ever asserted as a lower bound).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from pyenphase.ssl import NO_VERIFY_SSL_CONTEXT

from envoy2mqtt.sim import EndpointClass, Field, SimulatedGateway, endpoint_class, ensemble
from envoy2mqtt.sim.__main__ import field_of, parse_args

ENPOWER_SITE = "8.3.5169_with_generator"  # IQ System Controller, batteries, dry contacts, CTs
BATTERY_SITE = "8.2.4286_with_3cts_and_battery_split"  # batteries with a storage CT
FAST = 0.01  # 27 s of field time in 0.27 s
PATIENCE = 20.0  # seconds a test waits for a state before failing


@asynccontextmanager
async def served(capture: str, field: Field, **kwargs: Any) -> AsyncIterator[Session]:
    """A started gateway and a client session carrying its token."""
    async with SimulatedGateway(capture=capture, field=field, **kwargs) as gateway:
        headers = {"Authorization": f"Bearer {gateway.make_token()}"}
        connector = aiohttp.TCPConnector(ssl=NO_VERIFY_SSL_CONTEXT)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            yield Session(gateway, http)


@dataclasses.dataclass
class Session:
    """A gateway and a client talking to it."""

    gateway: SimulatedGateway
    http: aiohttp.ClientSession

    async def get(self, path: str) -> Any:
        async with self.http.get(self.gateway.url + path) as response:
            assert response.status == 200, path
            return await response.json(content_type=None)

    async def send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.gateway.url + path, json=body) as response:
            text = await response.text()
            return response.status, json.loads(text) if response.status == 200 else text

    async def relay(self) -> tuple[str, str]:
        relay = await self.get("/ivp/ensemble/relay")
        return relay["mains_admin_state"], relay["mains_oper_state"]


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll (asynchronously) until `check()` is truthy; fail after PATIENCE seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not await check():
        assert loop.time() < deadline, f"never saw {what}"
        await asyncio.sleep(0.02)


def contacts(document: Any) -> dict[str, str]:
    return {c["id"]: c["status"] for c in document["dry_contacts"]}


# -- the profile as data ---------------------------------------------------------------------


def test_off_switches_nothing_on_and_on_switches_everything() -> None:
    switches = [f.name for f in dataclasses.fields(Field) if f.type == "bool"]
    assert len(switches) >= 10
    assert not any(getattr(Field.off(), name) for name in switches)
    assert all(getattr(Field.on(), name) for name in switches)
    assert Field.current_firmware() == Field.on()
    assert Field.on().production_s == (30.0, 55.0)
    moderate = Field.moderate()
    assert (moderate.production_s, moderate.inventory_s, moderate.home_s) == (
        (5.0, 9.0),
        (3.0, 4.0),
        (10.0, 12.0),
    )
    assert Field.on(time_scale=0.1).scaled(27.0) == pytest.approx(2.7)


def test_endpoint_classes() -> None:
    assert endpoint_class("/production.json") is EndpointClass.PRODUCTION
    assert endpoint_class("/inventory.json") is EndpointClass.INVENTORY
    assert endpoint_class("/home.json") is EndpointClass.HOME
    assert endpoint_class("/ivp/livedata/status") is EndpointClass.FAST
    assert EndpointClass.HOME.slow
    assert not EndpointClass.FAST.slow


def test_command_line_switches() -> None:
    assert field_of(parse_args([])) == Field.off()
    assert field_of(parse_args(["--field"])) == Field.current_firmware()
    assert field_of(parse_args(["--field-moderate"])) == Field.moderate()


# -- off by default --------------------------------------------------------------------------


async def test_off_by_default_replays_and_moves_the_relay_at_once() -> None:
    async with SimulatedGateway(capture=ENPOWER_SITE) as gateway:
        assert gateway.field == Field.off()
    async with served(ENPOWER_SITE, Field.off()) as s:
        recorded = s.gateway.capture.recordings["production.json"].document
        assert await s.get("/production.json") == recorded
        status, _ = await s.send("POST", "/ivp/ensemble/relay", {"mains_admin_state": "open"})
        assert status == 200
        assert await s.relay() == ("open", "open")
        assert (await s.send("POST", "/ivp/livedata/stream", {"enable": 1}))[0] == 405


# -- answer times ----------------------------------------------------------------------------


async def test_fast_endpoints_answer_while_production_is_pending() -> None:
    field = Field(latencies=True, time_scale=FAST, seed=1)
    async with served(ENPOWER_SITE, field) as s:
        slow = asyncio.create_task(s.get("/production.json"))
        stats = s.gateway.stats

        async def pending() -> bool:
            return stats.in_flight_by_class[EndpointClass.PRODUCTION] == 1

        await until(pending, "production.json in flight")
        fast_answers = 0
        while not slow.done():
            await s.get("/ivp/ensemble/relay")
            fast_answers += 1
        await slow
        production = next(r for r in stats.log if r.path == "/production.json")
        during = [
            r
            for r in stats.log
            if r.endpoint_class is EndpointClass.FAST
            and production.start < r.start
            and r.end < production.end
        ]
        assert len(during) >= 2
        assert fast_answers >= 2
        # a production read takes at least 30 field seconds
        assert production.duration >= field.scaled(30.0) * 0.99
        assert stats.max_in_flight_slow == 1
        assert stats.max_in_flight_fast == 1
        assert stats.max_in_flight == 2


async def test_many_slow_reads_are_answered_concurrently() -> None:
    field = Field(latencies=True, time_scale=0.05, seed=2)  # reads of 0.9 s and more
    async with served(ENPOWER_SITE, field) as s:
        await asyncio.gather(*(s.get(p) for p in ("/production.json", "/inventory.json") * 2))
        stats = s.gateway.stats
        assert stats.max_in_flight_slow >= 3  # 4 reads of 18-55 field seconds, sent at once
        assert stats.max_in_flight_by_class[EndpointClass.PRODUCTION] >= 1
        assert stats.in_flight_slow == stats.in_flight == 0
        kinds = {r.endpoint_class for r in s.gateway.stats.log}
        assert {EndpointClass.PRODUCTION, EndpointClass.INVENTORY} <= kinds


async def test_housekeeping_window_holds_requests() -> None:
    field = Field(housekeeping=True, time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        s.gateway.housekeeping_now(60.0)
        await s.get("/ivp/ensemble/relay")
        (record,) = s.gateway.stats.log
        assert record.duration >= field.scaled(60.0) * 0.99


async def test_housekeeping_at_23_local() -> None:
    late = 1_700_000_000 - 1_700_000_000 % 86_400 + 23 * 3600 + 10  # 23:00:10 UTC
    field = Field(housekeeping=True, time_scale=0.001)
    async with served(ENPOWER_SITE, field, clock=lambda: late, utc_offset_s=0.0) as s:
        await s.get("/ivp/ensemble/relay")
        (record,) = s.gateway.stats.log
        # the window lasts 60-120 s; 10 s of it had gone when the request came
        assert record.duration >= field.scaled(50.0) * 0.99


# -- the grid relay --------------------------------------------------------------------------


async def test_outage_reads_synchronizing_then_synchronized_then_recloses() -> None:
    field = Field(relay_transitions=True, time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        assert s.gateway.fail_grid()
        assert await s.relay() == ("closed", "open synchronizing")
        assert not s.gateway.grid_on

        async def synchronized() -> bool:
            return (await s.relay())[1] == "open synchronized"

        await until(synchronized, "open synchronized")
        assert s.gateway.restore_grid()
        assert await s.relay() == ("closed", "open synchronized")  # closing takes a while
        assert not s.gateway.grid_on

        async def closed() -> bool:
            return (await s.relay())[1] == "closed"

        await until(closed, "closed")
        assert s.gateway.grid_on


async def test_relay_write_islands_after_top_off_and_never_reads_plain_open() -> None:
    field = Field(relay_transitions=True, relay_write_timing=True, time_scale=FAST)
    async with served(BATTERY_SITE, field) as s:
        status, _ = await s.send("POST", "/ivp/ensemble/relay", {"mains_admin_state": "open"})
        assert status == 200
        assert await s.relay() == ("open", "closed")  # the battery tops up first
        power = await s.get("/ivp/ensemble/power")
        assert sum(u["real_power_mw"] for u in power["devices:"]) == pytest.approx(
            -3_200_000, abs=10
        )
        seen: set[str] = set()

        async def islanded() -> bool:
            _admin, oper = await s.relay()
            seen.add(oper)
            return oper == "open synchronized"

        await until(islanded, "islanded")
        power = await s.get("/ivp/ensemble/power")
        assert sum(u["real_power_mw"] for u in power["devices:"]) == 0
        assert "open" not in seen
        assert "open synchronizing" in seen
        status, _ = await s.send("POST", "/ivp/ensemble/relay", {"mains_admin_state": "closed"})
        assert status == 200
        assert await s.relay() == ("closed", "open synchronized")

        async def closed() -> bool:
            return (await s.relay())[1] == "closed"

        await until(closed, "reclosed")
        inventory = await s.get("/ivp/ensemble/inventory")
        enpower = next(i for i in inventory if i["type"] == "ENPOWER")["devices"][0]
        assert (enpower["mains_admin_state"], enpower["mains_oper_state"]) == ("closed", "closed")


# -- reboots, counters, noise ----------------------------------------------------------------


async def test_inventory_reads_unknown_after_a_reboot() -> None:
    field = Field(unknown_after_reboot=True, unknown_s=30.0, time_scale=FAST)
    async with served(BATTERY_SITE, field) as s:

        def temperatures(inventory: Any) -> list[Any]:
            devices = next(i for i in inventory if i["type"] == "ENCHARGE")["devices"]
            return [d["temperature"] for d in devices]

        assert all(isinstance(t, int) for t in temperatures(await s.get("/ivp/ensemble/inventory")))
        s.gateway.reboot()
        assert set(temperatures(await s.get("/ivp/ensemble/inventory"))) == {"unknown"}

        async def numeric() -> bool:
            values = temperatures(await s.get("/ivp/ensemble/inventory"))
            return all(isinstance(t, int) for t in values)

        await until(numeric, "numbers again")


async def test_total_consumption_repeats_net_on_8_3_5433() -> None:
    async with served(BATTERY_SITE, Field(net_as_total=True)) as s:
        production = await s.get("/production.json")
        sections = {c["measurementType"]: c for c in production["consumption"]}
        total, net = sections["total-consumption"], sections["net-consumption"]
        assert (total["wNow"], total["whLifetime"]) == (net["wNow"], net["whLifetime"])
        recorded = s.gateway.capture.recordings["production.json"].document["consumption"]
        assert recorded[0]["wNow"] != recorded[1]["wNow"]  # the capture itself differs


async def test_today_counts_yesterday_until_the_late_reset_and_steps() -> None:
    after_midnight = 1_700_000_000 - 1_700_000_000 % 86_400 + 600  # 00:10 UTC
    field = Field(counter_quirks=True, counter_step_every_s=10.0, time_scale=FAST)
    async with served(BATTERY_SITE, field, clock=lambda: after_midnight, utc_offset_s=0.0) as s:
        recorded = s.gateway.capture.recordings["production.json"].document
        eim = next(p for p in recorded["production"] if p["type"] == "eim")
        first = next(
            p for p in (await s.get("/production.json"))["production"] if p["type"] == "eim"
        )
        assert first["whToday"] >= eim["whToday"] + eim["whLastSevenDays"] / 7 - 1

        async def stepped() -> bool:
            doc = await s.get("/production.json")
            now = next(p for p in doc["production"] if p["type"] == "eim")
            return bool(now["whLastSevenDays"] >= eim["whLastSevenDays"] + 250)

        await until(stepped, "a step")


async def test_battery_power_wanders_around_zero_in_self_consumption() -> None:
    async with served(BATTERY_SITE, Field(battery_noise=True, seed=3)) as s:
        s.gateway.set_storage(mode="self-consumption")
        s.gateway.set_battery(power_w=0.0)
        readings = []
        for _ in range(5):
            power = await s.get("/ivp/ensemble/power")
            readings.append(sum(u["real_power_mw"] for u in power["devices:"]) / 1000)
        assert all(50 - 1 <= abs(w) <= 300 + 1 for w in readings)
        assert len(set(readings)) > 1
        s.gateway.set_storage(mode="backup")
        power = await s.get("/ivp/ensemble/power")
        assert sum(u["real_power_mw"] for u in power["devices:"]) == 0


# -- writes ----------------------------------------------------------------------------------


async def tariff_write(s: Session, **changes: Any) -> int:
    tariff = await s.get("/admin/lib/tariff")
    tariff["tariff"]["storage_settings"].update(changes)
    status, _ = await s.send("PUT", "/admin/lib/tariff", {"tariff": tariff["tariff"]})
    return status


@pytest.mark.parametrize("ignored", [True, False])
async def test_local_battery_writes_saved_but_ignored_on_current_firmware(ignored: bool) -> None:
    field = Field(local_battery_writes_ignored=ignored)
    async with served(BATTERY_SITE, field, drift=True, seed=4) as s:
        before = await s.get("/admin/lib/tariff")
        settings = before["tariff"]["storage_settings"]
        cfg, reserve = not settings["charge_from_grid"], (settings["reserved_soc"] + 7) % 100
        assert await tariff_write(s, charge_from_grid=cfg, reserved_soc=reserve) == 200
        after = await s.get("/admin/lib/tariff")
        saved = after["tariff"]["storage_settings"]
        assert (saved["charge_from_grid"], saved["reserved_soc"]) == (cfg, reserve)
        schedule_moved = after["schedule"] != before["schedule"]
        assert schedule_moved is not ignored  # [F] the schedule section ignores writes
        controller = ensemble.controller_settings(s.gateway.state)
        assert (controller.charge_from_grid is cfg) is not ignored
        assert (controller.reserve_soc == reserve) is not ignored
        s.gateway.set_storage(reserve_soc=42)  # the cloud's write is obeyed either way
        assert ensemble.controller_settings(s.gateway.state).reserve_soc == 42


async def test_dry_contact_write_shows_after_a_few_seconds() -> None:
    field = Field(dry_contact_phantoms=True, time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        before = contacts(await s.get("/ivp/ensemble/dry_contacts"))
        target = "open" if before["NC1"] == "closed" else "closed"
        body = {"dry_contacts": {"id": "NC1", "status": target}}
        assert (await s.send("POST", "/ivp/ensemble/dry_contacts", body))[0] == 200
        assert contacts(await s.get("/ivp/ensemble/dry_contacts"))["NC1"] == before["NC1"]

        async def shown() -> bool:
            return contacts(await s.get("/ivp/ensemble/dry_contacts"))["NC1"] == target

        await until(shown, "the written state")


async def test_settings_write_makes_every_nc_contact_read_open_for_a_while() -> None:
    field = Field(dry_contact_phantoms=True, phantom_s=(20.0, 30.0), time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        before = contacts(await s.get("/ivp/ensemble/dry_contacts"))
        nc = [c for c in before if c.startswith("NC")]
        assert nc
        assert any(before[c] == "closed" for c in nc)
        settings = (await s.get("/ivp/ss/dry_contact_settings"))["dry_contacts"][0]
        settings["load_name"] = "dryer"
        status, _ = await s.send("POST", "/ivp/ss/dry_contact_settings", {"dry_contacts": settings})
        assert status == 200
        phantom = contacts(await s.get("/ivp/ensemble/dry_contacts"))
        assert all(phantom[c] == "open" for c in nc)
        assert all(phantom[c] == before[c] for c in before if not c.startswith("NC"))

        async def back() -> bool:
            return contacts(await s.get("/ivp/ensemble/dry_contacts")) == before

        await until(back, "the real positions")


async def test_only_load_contacts_shed_when_the_grid_fails() -> None:
    field = Field(dry_contact_phantoms=True, time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        settings = s.gateway.state.touch("ivp_ss_dry_contact_settings")["dry_contacts"]
        for entry in settings[:2]:
            entry["micro_grid_action"] = "shed"
        settings[0]["type"], settings[1]["type"] = "NONE", "LOAD"
        first, second = settings[0]["id"], settings[1]["id"]
        before = contacts(await s.get("/ivp/ensemble/dry_contacts"))
        assert before[first] == before[second] == "closed"
        s.gateway.fail_grid()
        during = contacts(await s.get("/ivp/ensemble/dry_contacts"))
        assert (during[first], during[second]) == ("closed", "open")
        s.gateway.restore_grid()
        assert contacts(await s.get("/ivp/ensemble/dry_contacts")) == before


# -- live data -------------------------------------------------------------------------------


async def test_livedata_flows_only_while_the_stream_is_enabled() -> None:
    field = Field(livedata=True, livedata_stream_s=30.0, time_scale=FAST)
    async with served(BATTERY_SITE, field) as s:
        idle = await s.get("/ivp/livedata/status")
        assert idle["connection"]["sc_stream"] == "disabled"
        assert "Live stream not enabled" in idle["info"]
        meters = idle["meters"]
        assert {"pv", "storage", "grid", "load", "generator"} <= meters.keys()
        assert {"agg_p_mw", "agg_s_mva", "agg_p_ph_a_mw", "agg_s_ph_c_mva"} <= meters["pv"].keys()
        readings = s.gateway.document("/ivp/meters/readings")
        production_w = readings[0]["activePower"]
        assert meters["pv"]["agg_p_mw"] == round(production_w * 1000)
        assert meters["load"]["agg_p_mw"] == pytest.approx(
            meters["pv"]["agg_p_mw"] + meters["grid"]["agg_p_mw"] + meters["storage"]["agg_p_mw"],
            abs=2,
        )
        assert meters["main_relay_state"] == 1

        s.gateway.set_battery(power_w=-1500.0)
        frozen = await s.get("/ivp/livedata/status")
        assert frozen["meters"]["storage"] == meters["storage"]  # not streaming: stale

        status, answer = await s.send("POST", "/ivp/livedata/stream", {"enable": 1})
        assert (status, answer) == (200, {"sc_stream": "enabled"})
        assert s.gateway.livedata_streaming
        live = await s.get("/ivp/livedata/status")
        assert live["connection"]["sc_stream"] == "enabled"
        assert "info" not in live
        assert live["meters"]["storage"]["agg_p_mw"] == -1_500_000  # negative: charging

        async def stopped() -> bool:
            doc = await s.get("/ivp/livedata/status")
            return bool(doc["connection"]["sc_stream"] == "disabled")

        await until(stopped, "the stream stopping by itself")
        s.gateway.set_battery(power_w=800.0)
        stale = await s.get("/ivp/livedata/status")
        assert stale["meters"]["storage"]["agg_p_mw"] == -1_500_000
        assert [w.path for w in s.gateway.write_log] == ["/ivp/livedata/stream"]


async def test_livedata_shows_the_island() -> None:
    field = Field(livedata=True, time_scale=FAST)
    async with served(ENPOWER_SITE, field) as s:
        await s.send("PUT", "/ivp/livedata/stream", {"enable": 1})
        s.gateway.fail_grid()
        assert (await s.get("/ivp/livedata/status"))["meters"]["main_relay_state"] == 0
