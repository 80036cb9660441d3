"""The simulated Enlighten battery API, over real HTTP on 127.0.0.1, driven as a client would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import aiohttp
import pytest

from envoy2mqtt.sim import Field, SimulatedGateway
from envoy2mqtt.sim.battery_cloud import (
    XSRF_COOKIE,
    XSRF_HEADER,
    BadSetting,
    BatterySettings,
    BatterySettingsChange,
    BatteryTiming,
    CloudSite,
    Profile,
    ProfileValues,
    storage_applier,
    updated,
)
from envoy2mqtt.sim.enlighten import CloudFault, SimulatedEnlighten
from tests.harness import pyenphase_on

ACCOUNT: Final = "owner@example.com"
PASSWORD: Final = "correct horse battery staple"
SERIAL: Final = "122302045041"
SITE: Final = 4_400_001
BROWSER: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
HOME_ASSISTANT: Final = "HomeAssistant/2026.11.2 aiohttp/3.14.5 Python/3.13"
FAST: Final = 0.02  # 15 s apply in 0.3 s, 10 min report in 12 s
Applied = list[tuple[str, BatterySettingsChange]]


def cloud_with(
    *sites: CloudSite, applied: Applied | None = None, **options: Any
) -> SimulatedEnlighten:
    """A cloud with the test account, these sites, and applies recorded into `applied`."""
    record = applied if applied is not None else []
    return SimulatedEnlighten(
        accounts={ACCOUNT: PASSWORD, "neighbour@example.com": "pw"},
        sites=sites or (CloudSite(site_id=SITE, serials=(SERIAL,), owner=ACCOUNT),),
        apply=lambda serial, change: record.append((serial, change)),
        **options,
    )


@asynccontextmanager
async def browser(agent: str | None = BROWSER) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that keeps the cloud's cookies (127.0.0.1 needs an unsafe jar)."""
    headers = {"User-Agent": agent} if agent is not None else {}
    skip = () if agent is not None else ("User-Agent",)
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers, skip_auto_headers=skip
    ) as http:
        yield http


async def sign_in(
    http: aiohttp.ClientSession, cloud: SimulatedEnlighten, email: str = ACCOUNT
) -> dict[str, Any]:
    """Log in through login.json; the session cookie lands in the jar."""
    password = PASSWORD if email == ACCOUNT else "pw"
    form = {"user[email]": email, "user[password]": password}
    async with http.post(cloud.login_url, data=form) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    """GET a JSON document, expecting 200."""
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def find_site(http: aiohttp.ClientSession, cloud: SimulatedEnlighten, serial: str) -> int:
    """The site whose gateways include `serial`, as public clients find it."""
    query = "searchText=&favourite=false"
    found = await get_json(http, f"{cloud.url}/app-api/search_sites.json?{query}")
    for site in found["sites"]:
        devices = await get_json(http, f"{cloud.url}/app-api/{site['id']}/devices.json")
        envoys = [block for block in devices["result"] if block["type"] == "envoy"]
        if any(d["serial_num"] == serial for block in envoys for d in block["devices"]):
            return int(site["id"])
    raise AssertionError(f"no site has gateway {serial}")


def settings_url(cloud: SimulatedEnlighten, site: int = SITE) -> str:
    """The batterySettings URL of a site."""
    return f"{cloud.battery_api_url}/batterySettings/{site}"


async def read(http: aiohttp.ClientSession, cloud: SimulatedEnlighten, site: int = SITE) -> Any:
    """GET the settings' `data` (which also sets a fresh XSRF cookie)."""
    return (await get_json(http, settings_url(cloud, site)))["data"]


def xsrf(http: aiohttp.ClientSession) -> str:
    """The XSRF token the last GET left in the jar."""
    return next(m.value for m in http.cookie_jar if m.key == XSRF_COOKIE)


async def write(
    http: aiohttp.ClientSession,
    cloud: SimulatedEnlighten,
    body: dict[str, Any],
    *,
    site: int = SITE,
    token: str | None = "fresh",
) -> tuple[int, Any]:
    """A partial PUT as the app sends it: a GET first for the XSRF cookie, then the header."""
    await read(http, cloud, site)
    headers = {XSRF_HEADER: xsrf(http) if token == "fresh" else token} if token else {}
    async with http.put(settings_url(cloud, site), json=body, headers=headers) as response:
        return response.status, await response.json()


async def accept_disclaimer(http: aiohttp.ClientSession, cloud: SimulatedEnlighten) -> int:
    """POST acceptDisclaimer with a fresh XSRF token."""
    await read(http, cloud)
    url = f"{cloud.battery_api_url}/batterySettings/acceptDisclaimer/{SITE}"
    body = {"disclaimer-type": "itc"}
    async with http.post(url, json=body, headers={XSRF_HEADER: xsrf(http)}) as response:
        return response.status


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the cloud's applies have no event to await
            await asyncio.sleep(0.02)


# -- the whole path ---------------------------------------------------------------------------


async def test_a_write_reaches_the_gateway_after_the_delay() -> None:
    applied: Applied = []
    async with cloud_with(applied=applied, time_scale=FAST) as cloud, browser() as http:
        login = await sign_in(http, cloud)
        assert login["system_id"] == SITE
        site = await find_site(http, cloud, SERIAL)
        before = await read(http, cloud, site)
        assert (before["profile"], before["batteryBackupPercentage"]) == ("self-consumption", 30)
        status, answer = await write(http, cloud, {"batteryBackupPercentage": 45}, site=site)
        assert status == 200, answer
        written = cloud.requests[-1]
        assert (written.method, written.status) == ("PUT", 200)
        await until(lambda: bool(applied))
    assert applied == [
        (
            SERIAL,
            BatterySettingsChange(
                profile=Profile.SELF_CONSUMPTION,
                reserve=45,
                charge_from_grid=False,
                very_low_soc=10,
            ),
        )
    ]
    at = cloud.battery.applied[0].at
    assert at - written.at >= BatteryTiming().apply_after * FAST  # the field's 15 s, scaled
    print(f"apply delay: {at - written.at:.3f} s at time_scale {FAST} (field: 10-20 s)")


async def test_the_gateway_adapter_changes_the_served_storage_settings() -> None:
    capture = "8.2.4286_with_3cts_and_battery_split"
    async with SimulatedGateway(capture=capture) as gateway:
        site = CloudSite(site_id=SITE, serials=(gateway.serial,), owner=ACCOUNT)
        cloud = SimulatedEnlighten(
            accounts={ACCOUNT: PASSWORD},
            sites=[site],
            apply=storage_applier([gateway]),
            time_scale=FAST,
        )
        async with cloud, browser() as http:
            await sign_in(http, cloud)
            assert await accept_disclaimer(http, cloud) == 200
            body = {"profile": "cost_savings", "batteryBackupPercentage": 60}
            assert (await write(http, cloud, body | {"chargeFromGrid": True}))[0] == 200
            await until(lambda: bool(cloud.battery.applied))
            storage = gateway.document("/admin/lib/tariff")["tariff"]["storage_settings"]
    assert (storage["mode"], storage["reserved_soc"], storage["charge_from_grid"]) == (
        "economy",
        60,
        True,
    )


# -- what the service refuses -----------------------------------------------------------------


async def test_a_write_without_the_xsrf_token_is_refused() -> None:
    async with cloud_with(time_scale=FAST) as cloud, browser() as http:
        await sign_in(http, cloud)
        missing = await write(http, cloud, {"veryLowSoc": 15}, token=None)
        await read(http, cloud)
        stale = xsrf(http)
        await read(http, cloud)  # every GET hands out a new token
        old = await write(http, cloud, {"veryLowSoc": 15}, token=stale)
        fresh = await write(http, cloud, {"veryLowSoc": 15})
    assert [missing[0], old[0], fresh[0]] == [403, 403, 200]
    assert missing[1]["message"] == "Invalid CSRF token"
    assert len(cloud.battery.applied) == 0  # the accepted one was still on its way


async def test_charge_from_grid_needs_the_disclaimer_first() -> None:
    async with cloud_with(time_scale=FAST) as cloud, browser() as http:
        await sign_in(http, cloud)
        refused = await write(http, cloud, {"chargeFromGrid": True})
        assert (await read(http, cloud))["acceptedItcDisclaimer"] is None
        assert await accept_disclaimer(http, cloud) == 200
        allowed = await write(http, cloud, {"chargeFromGrid": True})
        assert (await read(http, cloud))["acceptedItcDisclaimer"] is not None
    assert refused[0] == 400
    assert "disclaimer" in refused[1]["message"]
    assert allowed[0] == 200
    assert allowed[1]["data"]["requestedConfig"]["chargeFromGrid"] is True


async def test_without_a_session_the_api_redirects_to_the_login_page() -> None:
    async with cloud_with() as cloud, browser() as http:
        async with http.get(settings_url(cloud), allow_redirects=False) as response:
            wall = (response.status, response.headers["Location"])
        async with http.get(settings_url(cloud)) as response:
            followed = (response.status, response.content_type)
    assert wall == (302, "/login/login")
    assert followed == (200, "text/html")  # what clients see as an expired session


# -- the cloud's lagging view, and profiles ---------------------------------------------------


async def test_the_cloud_view_lags_the_gateway() -> None:
    applied: Applied = []
    timing = BatteryTiming(apply_after=15.0, report_after=150.0)
    async with (
        cloud_with(applied=applied, timing=timing, time_scale=FAST) as cloud,
        browser() as http,
    ):
        await sign_in(http, cloud)
        assert (await write(http, cloud, {"batteryBackupPercentage": 70}))[0] == 200
        await until(lambda: bool(applied))
        pending = await read(http, cloud)  # the gateway has it; the cloud still shows the old
        await until(lambda: not cloud.battery.battery(SITE).requested)
        settled = await read(http, cloud)
    assert applied[0][1].reserve == 70
    assert pending["batteryBackupPercentage"] == 30
    assert pending["requestedConfig"]["batteryBackupPercentage"] == 70
    assert pending["requestedConfig"]["pendingGateways"] == [SERIAL]
    assert settled["batteryBackupPercentage"] == 70
    assert settled["requestedConfig"] == {}


async def test_a_profile_switch_alone_shows_in_the_cloud_soon() -> None:
    applied: Applied = []
    timing = BatteryTiming(apply_after=15.0, report_after=100_000.0, profile_report_after=20.0)
    async with (
        cloud_with(applied=applied, timing=timing, time_scale=FAST) as cloud,
        browser() as http,
    ):
        await sign_in(http, cloud)
        assert (await write(http, cloud, {"profile": "backup_only"}))[0] == 200
        await until(lambda: not cloud.battery.battery(SITE).requested)
        switched = await read(http, cloud)
        assert (await write(http, cloud, {"veryLowSoc": 20}))[0] == 200
        await until(lambda: len(applied) == 2)
        reserve = await read(http, cloud)  # applied, but the cloud waits for the next report
    assert (switched["profile"], switched["batteryBackupPercentage"]) == ("backup_only", 100)
    assert switched["requestedConfig"] == {}
    assert reserve["veryLowSoc"] == 10
    assert reserve["requestedConfig"] == {"veryLowSoc": 20, "pendingGateways": [SERIAL]}
    assert applied[1][1].very_low_soc == 20


async def test_site_settings_say_what_the_app_offers() -> None:
    site = CloudSite(site_id=SITE, serials=(SERIAL,), owner=ACCOUNT, country="DE")
    async with cloud_with(site, time_scale=FAST) as cloud, browser() as http:
        await sign_in(http, cloud)
        url = f"{cloud.battery_api_url}/siteSettings/{SITE}"
        idle = (await get_json(http, url))["data"]
        token = xsrf(http)  # any batteryConfig GET sets the cookie
        async with http.put(
            settings_url(cloud), json={"veryLowSoc": 15}, headers={XSRF_HEADER: token}
        ) as response:
            assert response.status == 200
        pending = (await get_json(http, url))["data"]
    assert (idle["countryCode"], idle["isEmea"], idle["hasEncharge"]) == ("DE", True, True)
    assert (idle["isChangePending"], pending["isChangePending"]) == (False, True)


async def test_each_profile_keeps_its_own_reserve_and_charge_from_grid() -> None:
    applied: Applied = []
    async with cloud_with(applied=applied, time_scale=FAST) as cloud, browser() as http:
        await sign_in(http, cloud)
        assert await accept_disclaimer(http, cloud) == 200
        for body in (
            {"batteryBackupPercentage": 50, "chargeFromGrid": True},
            {"profile": "backup_only"},
            {"profile": "self-consumption"},
        ):
            assert (await write(http, cloud, body))[0] == 200
            count = len(applied) + 1
            await until(lambda count=count: len(applied) == count)  # type: ignore[misc]
    seen = [(c.profile, c.reserve, c.charge_from_grid) for _, c in applied]
    assert seen == [
        (Profile.SELF_CONSUMPTION, 50, True),
        (Profile.BACKUP_ONLY, 100, False),
        (Profile.SELF_CONSUMPTION, 50, True),  # its own values came back
    ]


def test_a_partial_write_changes_only_what_it_names() -> None:
    settings = BatterySettings(very_low_soc=12)
    new, requested = updated(settings, {"profile": "cost_savings"}, disclaimer_accepted=False)
    assert new.profile is Profile.COST_SAVINGS
    assert new.very_low_soc == 12
    assert new.profiles[Profile.SELF_CONSUMPTION] == settings.profiles[Profile.SELF_CONSUMPTION]
    assert requested == {
        "profile": "cost_savings",
        "batteryBackupPercentage": 30,
        "chargeFromGrid": False,
    }
    new, requested = updated(new, {"veryLowSoc": 20}, disclaimer_accepted=False)
    assert (new.profile, new.very_low_soc, requested) == (
        Profile.COST_SAVINGS,
        20,
        {"veryLowSoc": 20},
    )
    assert new.profiles[Profile.COST_SAVINGS] == ProfileValues(reserve=30)


@pytest.mark.parametrize(
    "body",
    [
        {},
        [1],
        {"profile": "expert-mode"},
        {"batteryBackupPercentage": 101},
        {"batteryBackupPercentage": True},
        {"veryLowSoc": 30},
        {"chargeFromGrid": "yes"},
        {"reserve": 20},  # not a batterySettings field
    ],
)
def test_bad_writes_are_refused(body: object) -> None:
    with pytest.raises(BadSetting):
        updated(BatterySettings(), body, disclaimer_accepted=True)


# -- who the cloud turns away -----------------------------------------------------------------


async def test_blocked_and_missing_user_agents_get_406() -> None:
    async with cloud_with() as cloud:
        for agent in (HOME_ASSISTANT, None):
            async with browser(agent) as http, http.post(cloud.login_url, data={}) as response:
                assert response.status == 406, agent
        async with browser("Python/3.11 aiohttp/3.14.5") as http:
            await sign_in(http, cloud)  # plain library agents are served
    strict = cloud_with(browser_only=True)
    async with strict:
        async with (
            browser("python-requests/2.32.3") as http,
            http.get(f"{strict.url}/app-api/search_sites.json") as response,
        ):
            assert response.status == 406
        async with browser() as http:
            await sign_in(http, strict)
    assert [r.status for r in cloud.requests] == [406, 406, 200]


async def test_an_mfa_account_cannot_sign_in_by_password() -> None:
    cloud = cloud_with(mfa_accounts={ACCOUNT})
    async with cloud, browser() as http:
        login = await sign_in(http, cloud)
        cookies = {m.key for m in http.cookie_jar}
        async with http.get(settings_url(cloud), allow_redirects=False) as response:
            assert response.status == 302
        async with browser() as neighbour:
            assert "session_id" in await sign_in(neighbour, cloud, "neighbour@example.com")
    assert login == {"success": True, "isBlocked": False, "requires_mfa": True}
    assert cookies == {"login_otp_nonce"}  # no session cookie
    assert PASSWORD not in repr(cloud.requests)


async def test_an_account_with_several_sites_finds_each_gateway() -> None:
    sites = (
        CloudSite(site_id=101, serials=("111111111111",), owner=ACCOUNT, title="House"),
        CloudSite(site_id=102, serials=("222222222222", "222222222223"), owner=ACCOUNT),
        CloudSite(site_id=201, serials=("333333333333",), owner="neighbour@example.com"),
    )
    applied: Applied = []
    async with cloud_with(*sites, applied=applied, time_scale=FAST) as cloud, browser() as http:
        await sign_in(http, cloud)
        listed = await get_json(http, f"{cloud.url}/app-api/search_sites.json")
        found = [await find_site(http, cloud, s) for s in ("111111111111", "222222222223")]
        status, _ = await write(http, cloud, {"veryLowSoc": 15}, site=102)
        await until(lambda: len(applied) == 2)
        async with http.get(settings_url(cloud, 201), allow_redirects=False) as response:
            neighbours = response.status
        async with http.get(f"{cloud.url}/app-api/201/devices.json") as response:
            neighbour_devices = response.status
    assert [s["id"] for s in listed["sites"]] == [101, 102]
    assert listed["sites"][0]["title"] == "House"
    assert found == [101, 102]
    assert status == 200
    assert sorted(serial for serial, _ in applied) == ["222222222222", "222222222223"]
    assert (neighbours, neighbour_devices) == (403, 403)


# -- faults -----------------------------------------------------------------------------------


async def test_fault_switches() -> None:
    cloud = cloud_with(time_scale=0.1, slow_delay=10.0)
    async with cloud, browser() as http:
        url = f"{cloud.url}/app-api/search_sites.json"
        statuses = []
        for fault in (CloudFault.UNAVAILABLE, CloudFault.UNAUTHORIZED, CloudFault.FORBIDDEN):
            cloud.set_fault(fault)
            async with http.get(url, allow_redirects=False) as response:
                statuses.append(response.status)
        cloud.set_fault(CloudFault.REFUSED)
        async with browser() as fresh:  # a pooled connection would be dropped, not refused
            with pytest.raises(aiohttp.ClientConnectorError):
                await sign_in(fresh, cloud)
        cloud.set_fault(CloudFault.SLOW)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await sign_in(http, cloud)
        await sign_in(http, cloud)  # slow, not broken: 1 s at this scale
        cloud.set_fault(CloudFault.NONE)
        await find_site(http, cloud, SERIAL)
    assert statuses == [503, 401, 403]
    assert all(r.path.startswith(("/app-api/", "/login/")) for r in cloud.requests)


async def test_an_expired_session_meets_the_login_wall_and_a_new_login_passes() -> None:
    now = [1_790_000_000.0]
    cloud = cloud_with(clock=lambda: now[0], session_lifetime=3600.0)
    async with cloud, browser() as http:
        await sign_in(http, cloud)
        await read(http, cloud)
        now[0] += 3601.0
        async with http.get(settings_url(cloud), allow_redirects=False) as response:
            expired = response.status
        await sign_in(http, cloud)
        again = await read(http, cloud)
    assert expired == 302
    assert again["profile"] == "self-consumption"
    assert [r.at for r in cloud.requests][-1] == now[0]  # the log keeps the cloud's clock


async def test_on_current_firmware_a_cloud_write_shows_in_the_live_values_not_the_tariff() -> None:
    capture = "8.2.4286_with_3cts_and_battery_split"
    field = Field.current_firmware(time_scale=FAST)
    async with SimulatedGateway(capture=capture, field=field) as gateway:
        tariff = gateway.document("/admin/lib/tariff")["tariff"]["storage_settings"]
        before = gateway.document("/ivp/ensemble/secctrl")["configured_backup_soc"]
        async with pyenphase_on(gateway) as envoy:
            await envoy.update()
            await envoy.set_reserve_soc(77)  # local: saved in the file, ignored by the battery
        assert (
            gateway.document("/admin/lib/tariff")["tariff"]["storage_settings"]["reserved_soc"]
            == 77
        )
        assert gateway.document("/ivp/ensemble/secctrl")["configured_backup_soc"] == before
        assert gateway.document("/ivp/sc/sched")["Reserve SoC"] != 77
        site = CloudSite(site_id=SITE, serials=(gateway.serial,), owner=ACCOUNT)
        cloud = SimulatedEnlighten(
            accounts={ACCOUNT: PASSWORD},
            sites=[site],
            apply=storage_applier([gateway]),
            time_scale=FAST,
        )
        async with cloud, browser() as http:
            await sign_in(http, cloud)
            assert await accept_disclaimer(http, cloud) == 200
            body = {"profile": "backup_only", "chargeFromGrid": True, "veryLowSoc": 15}
            assert (await write(http, cloud, body))[0] == 200
            await until(lambda: bool(cloud.battery.applied))
        secctrl = gateway.document("/ivp/ensemble/secctrl")
        schedule = gateway.document("/ivp/sc/sched")
        stale = gateway.document("/admin/lib/tariff")["tariff"]["storage_settings"]
    assert (secctrl["configured_backup_soc"], secctrl["VLS_Limit"]) == (100, 15)
    assert (schedule["Battery Mode"], schedule["Charge From Grid Allowed"]) == ("backup", True)
    assert (stale["mode"], stale["charge_from_grid"]) == (
        tariff["mode"],
        tariff["charge_from_grid"],
    )
