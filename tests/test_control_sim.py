"""The simulated gateway takes pyenphase's writes on the real endpoints, and fails them on cue."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from pyenphase.exceptions import EnvoyAuthenticationRequired, EnvoyHTTPStatusError
from pyenphase.models.tariff import EnvoyStorageMode

from envoy2mqtt.sim import SimulatedGateway, WriteFault
from tests.harness import pyenphase_on

BATTERY = "8.2.4286_with_3cts_and_battery_split"  # Encharge, Enpower, dry contacts
GENERATOR = "8.3.5169_with_generator"  # Enpower, dry contacts, a generator with gen_mode
TARIFF = "/admin/lib/tariff"


def storage(gateway: SimulatedGateway) -> dict[str, Any]:
    settings: dict[str, Any] = gateway.document(TARIFF)["tariff"]["storage_settings"]
    return settings


async def test_storage_writes_change_the_tariff_and_its_schedule() -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway, pyenphase_on(gateway) as envoy:
        gateway.set_storage(optimised_schedules=False)
        await envoy.update()
        await envoy.set_storage_mode(EnvoyStorageMode.BACKUP)
        await envoy.set_reserve_soc(35)
        await envoy.enable_charge_from_grid()
        settings = storage(gateway)
        assert (settings["mode"], settings["reserved_soc"], settings["charge_from_grid"]) == (
            "backup",
            35.0,
            True,
        )
        schedule = gateway.document(TARIFF)["schedule"]
        assert (schedule["batt_mode"], schedule["reserved_soc"]) == ("backup", 35.0)
        data = await envoy.update()
        assert data.tariff is not None
        assert data.tariff.storage_settings is not None
        assert data.tariff.storage_settings.mode is EnvoyStorageMode.BACKUP
        assert [(w.method, w.path, w.status) for w in gateway.write_log] == [
            ("PUT", TARIFF, 200)
        ] * 3


async def test_optimised_schedules_keep_the_mode_with_a_200() -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway, pyenphase_on(gateway) as envoy:
        assert storage(gateway)["opt_schedules"] is True  # as this site was captured
        await envoy.update()
        await envoy.set_storage_mode(EnvoyStorageMode.BACKUP)
        assert storage(gateway)["mode"] == "self-consumption"
        await envoy.set_storage_mode(EnvoyStorageMode.BACKUP, disable_optimized_schedules=True)
        assert (storage(gateway)["mode"], storage(gateway)["opt_schedules"]) == ("backup", False)


async def test_relay_dry_contacts_and_generator_mode_change_what_is_served() -> None:
    async with SimulatedGateway(capture=GENERATOR) as gateway, pyenphase_on(gateway) as envoy:
        await envoy.update()
        await envoy.go_off_grid()
        await envoy.open_dry_contact("NC1")
        await envoy.update_dry_contact({"id": "NC2", "mode": "soc", "soc_low": 25})
        await envoy.set_generator_mode("off")
        data = await envoy.update()
        assert not gateway.grid_on
        assert data.enpower is not None
        assert (data.enpower.mains_admin_state, data.enpower.mains_oper_state) == ("open", "open")
        assert data.dry_contact_status["NC1"].status == "open"
        nc2 = data.dry_contact_settings["NC2"]
        assert (nc2.mode, nc2.soc_low, nc2.soc_high, nc2.load_name) == (
            "soc",
            25,
            70.0,
            "Mini split/Range",
        )
        assert nc2.override is True  # flags are served as "true"/"false" whatever was sent
        assert data.generator_mode is not None
        assert data.generator_mode.gen_cmd == "off"
        assert data.generator is not None
        assert data.generator.admin_state == "open"
        assert gateway.stats.overlaps == 0


async def test_partial_dry_contact_settings_and_wrong_methods_are_refused() -> None:
    async with SimulatedGateway(capture=GENERATOR) as gateway, pyenphase_on(gateway) as envoy:
        await envoy.update()
        with pytest.raises(EnvoyHTTPStatusError) as partial:
            await envoy._json_request(
                "/ivp/ss/dry_contact_settings", {"dry_contacts": {"id": "NC1"}}
            )
        assert partial.value.status_code == 400
        with pytest.raises(EnvoyHTTPStatusError) as wrong:
            await envoy._json_request(TARIFF, {"tariff": {}}, method="POST")
        assert wrong.value.status_code == 405
        with pytest.raises(EnvoyHTTPStatusError) as bad:
            await envoy._json_request("/ivp/ensemble/relay", {"mains_admin_state": "ajar"})
        assert bad.value.status_code == 400
        assert (
            gateway.document("/ivp/ss/dry_contact_settings")["dry_contacts"][0]["mode"] == "manual"
        )
        assert gateway.grid_on


async def test_an_ignored_write_answers_200_and_changes_nothing() -> None:
    async with SimulatedGateway(capture=GENERATOR) as gateway, pyenphase_on(gateway) as envoy:
        await envoy.update()
        gateway.set_write_fault(WriteFault.IGNORE, paths={"/ivp/ensemble/relay"})
        await envoy.go_off_grid()
        assert gateway.grid_on
        assert gateway.grid_changes == 0
        await envoy.open_dry_contact("NC1")  # another endpoint: taken
        assert gateway.document("/ivp/ensemble/dry_contacts")["dry_contacts"][0]["status"] == "open"


async def test_a_reverted_write_goes_back_when_its_time_comes() -> None:
    now = [1000.0]
    async with (
        SimulatedGateway(capture=GENERATOR, clock=lambda: now[0]) as gateway,
        pyenphase_on(gateway) as envoy,
    ):
        await envoy.update()
        gateway.set_write_fault(WriteFault.REVERT, revert_after=90)
        await envoy.set_generator_mode("auto")
        await envoy.go_off_grid()
        assert gateway.document("/ivp/ss/gen_mode")["gen_cmd"] == "auto"
        now[0] += 89
        early = await envoy.update()
        assert early.generator_mode is not None
        assert early.generator_mode.gen_cmd == "auto"
        now[0] += 2
        data = await envoy.update()
        assert data.generator_mode is not None
        assert data.generator_mode.gen_cmd == "on"  # as captured
        assert gateway.grid_on
        assert gateway.grid_changes == 2


@pytest.mark.parametrize(
    ("fault", "status"), [(WriteFault.REJECT, 403), (WriteFault.UNAUTHORIZED, 401)]
)
async def test_a_refused_write_is_an_auth_error_and_reads_still_work(
    fault: WriteFault, status: int
) -> None:
    async with SimulatedGateway(capture=BATTERY) as gateway, pyenphase_on(gateway) as envoy:
        await envoy.update()
        gateway.set_write_fault(fault)
        with pytest.raises(EnvoyAuthenticationRequired, match=str(status)):
            await envoy.set_reserve_soc(50)
        assert storage(gateway)["reserved_soc"] != 50
        assert (await envoy.update()).tariff is not None
        assert gateway.write_log[-1].status == status


async def test_a_write_that_times_out_hangs_until_the_fault_is_cleared() -> None:
    async with SimulatedGateway(capture=GENERATOR) as gateway, pyenphase_on(gateway) as envoy:
        await envoy.update()
        gateway.set_write_fault(WriteFault.TIMEOUT)
        pending = asyncio.create_task(envoy.go_off_grid())
        await asyncio.sleep(0.3)
        assert not pending.done()
        assert gateway.stats.in_flight == 1
        gateway.set_write_fault(WriteFault.NONE)
        await asyncio.wait_for(pending, 5)
        assert not gateway.grid_on


async def test_writes_need_the_same_credentials_as_reads() -> None:
    async with (
        SimulatedGateway(capture=BATTERY) as gateway,
        aiohttp.ClientSession() as session,
        session.put(f"{gateway.url}{TARIFF}", json={"tariff": {}}, ssl=False) as response,
    ):
        assert response.status == 401
        assert gateway.write_log == []
