"""The simulated gateway and cloud, exercised over real HTTP(S) on 127.0.0.1 with pyenphase."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from pyenphase import Envoy, EnvoyTokenAuth
from pyenphase.const import SupportedFeatures as F
from pyenphase.exceptions import (
    EnvoyAuthenticationError,
    EnvoyAuthenticationRequired,
    EnvoyCommunicationError,
    EnvoyProbeFailed,
)
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import EnvoyMeterData
from pyenphase.ssl import NO_VERIFY_SSL_CONTEXT

from envoy2mqtt.sim import (
    SIM_TOKEN_KEY,
    Fault,
    SimulatedEnlighten,
    SimulatedGateway,
    list_captures,
    load_capture,
    make_token,
)
from envoy2mqtt.sim.__main__ import main as sim_main
from envoy2mqtt.sim.capture import CAPTURES_DIR

NOON_UTC = 1_700_000_000 - 1_700_000_000 % 86_400 + 12 * 3600


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = NOON_UTC) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _never_contact_enphase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point pyenphase's cloud URLs at a dead local port, whatever a test forgets."""
    monkeypatch.setattr(EnvoyTokenAuth, "JSON_LOGIN_URL", "http://127.0.0.1:9/login.json?")
    monkeypatch.setattr(EnvoyTokenAuth, "TOKEN_URL", "http://127.0.0.1:9/tokens")


@asynccontextmanager
async def connected(gateway: SimulatedGateway, **credentials: str) -> AsyncIterator[Envoy]:
    """A pyenphase Envoy that has run setup() and authenticate() against the gateway."""
    envoy = Envoy(gateway.host)
    envoy.set_retry_policy(max_attempts=1, wait_multiplier=0)
    try:
        await envoy.setup()
        if not credentials:
            credentials = (
                {"token": gateway.make_token()} if gateway.uses_tls else {"username": "envoy"}
            )
        await envoy.authenticate(**credentials)
        yield envoy
    finally:
        await envoy.close()


@asynccontextmanager
async def client(gateway: SimulatedGateway) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP(S) client carrying a valid bearer token where the firmware wants one."""
    headers = {"Authorization": f"Bearer {gateway.make_token()}"} if gateway.uses_tls else {}
    connector = aiohttp.TCPConnector(ssl=NO_VERIFY_SSL_CONTEXT)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        yield session


# What pyenphase's own test suite expects each installation to support.
EXPECTED_FEATURES = {
    "3.9.36": F.INVERTERS | F.PRODUCTION,
    "3.9.36_bad_auth": F.PRODUCTION,  # its inverters endpoint answers 401
    "4.2.33": F.METERING | F.PRODUCTION | F.INVERTERS | F.DUALPHASE | F.CTMETERS,
    "4.10.35": F.METERING
    | F.INVERTERS
    | F.TOTAL_CONSUMPTION
    | F.NET_CONSUMPTION
    | F.PRODUCTION
    | F.TARIFF
    | F.DUALPHASE
    | F.CTMETERS,
    "5.0.62": F.INVERTERS | F.PRODUCTION | F.TARIFF,
    "7.3.130_no_consumption": F.METERING
    | F.INVERTERS
    | F.PRODUCTION
    | F.TARIFF
    | F.DUALPHASE
    | F.CTMETERS,
    "7.3.517": F.METERING
    | F.TOTAL_CONSUMPTION
    | F.NET_CONSUMPTION
    | F.ENPOWER
    | F.ENCHARGE
    | F.INVERTERS
    | F.PRODUCTION
    | F.TARIFF,
    "7.6.175_total": F.INVERTERS | F.PRODUCTION | F.TARIFF,
    "7.6.175_with_cts": F.INVERTERS
    | F.METERING
    | F.TOTAL_CONSUMPTION
    | F.NET_CONSUMPTION
    | F.PRODUCTION
    | F.TARIFF
    | F.CTMETERS,
    "8.2.4345_with_device_data": F.INVERTERS
    | F.METERING
    | F.TOTAL_CONSUMPTION
    | F.NET_CONSUMPTION
    | F.ENCHARGE
    | F.ENPOWER
    | F.PRODUCTION
    | F.TARIFF
    | F.CTMETERS
    | F.DETAILED_INVERTERS,
}


def test_list_captures_finds_every_folder() -> None:
    names = list_captures()
    assert len(names) == 32
    assert {"3.9.36", "7.6.175_with_cts", "8.3.5169_with_generator"} <= set(names)


@pytest.mark.parametrize("name", list_captures())
async def test_pyenphase_reads_every_capture(name: str) -> None:
    async with SimulatedGateway(capture=name) as gateway:
        if name == "3.7.0":
            # Firmware 3.7 only has the HTML /production page; pyenphase does not scrape.
            with pytest.raises(EnvoyProbeFailed):
                async with connected(gateway) as envoy:
                    await envoy.update()
            return
        async with connected(gateway) as envoy:
            data = await envoy.update()
            assert envoy.serial_number == gateway.serial
            assert str(envoy.firmware) == gateway.firmware
            assert data.system_production is not None
            if name in EXPECTED_FEATURES:
                assert envoy.supported_features == EXPECTED_FEATURES[name]
        assert gateway.stats.overlaps == 0  # pyenphase polls one request at a time


async def test_served_numbers_equal_the_capture() -> None:
    async with SimulatedGateway(capture="3.9.36") as gateway, connected(gateway) as envoy:
        data = await envoy.update()
    assert data.system_production is not None
    production = data.system_production
    assert (production.watts_now, production.watt_hours_today) == (1271, 1460)
    assert (production.watt_hours_last_7_days, production.watt_hours_lifetime) == (
        130349,
        6012540,
    )
    inverter = data.inverters["121547058983"]
    assert (inverter.last_report_watts, inverter.max_report_watts) == (137, 238)
    assert inverter.last_report_date == 1618083969

    async with SimulatedGateway(capture="8.2.4286_with_3cts_and_battery_split") as gateway:
        async with connected(gateway) as envoy:
            data = await envoy.update()
        async with client(gateway) as session:
            response = await session.get(f"{gateway.url}/production.json?details=1")
            body = await response.read()
    assert body == (gateway.capture.path / "production.json").read_bytes()
    assert data.system_production_phases is not None
    phase = data.system_production_phases["L1"]
    assert phase is not None
    assert (phase.watts_now, phase.watt_hours_lifetime) == (3559, 6709433)


async def test_expired_or_foreign_tokens_get_401() -> None:
    clock = FakeClock()
    async with SimulatedGateway(capture="7.6.175_standard", clock=clock) as gateway:
        short = gateway.make_token(lifetime=60)
        async with connected(gateway, token=short) as envoy:
            await envoy.update()
            clock.now += 120
            with pytest.raises(EnvoyAuthenticationRequired):
                await envoy.update()
        envoy = Envoy(gateway.host)
        await envoy.setup()
        with pytest.raises(EnvoyAuthenticationError):
            await envoy.authenticate(token=short)
        await envoy.close()
        async with client(gateway) as session:
            url = f"{gateway.url}/api/v1/production"
            for token in (
                make_token("999999999999", clock=clock),
                make_token(gateway.serial, key="another-key-of-at-least-32-bytes!!", clock=clock),
            ):
                response = await session.get(url, headers={"Authorization": f"Bearer {token}"})
                assert response.status == 401
            assert (await session.get(url)).status == 200


async def test_session_cookie_works_until_tokens_are_revoked() -> None:
    async with SimulatedGateway(capture="7.6.175_standard") as gateway:
        token = gateway.make_token()
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=NO_VERIFY_SSL_CONTEXT)
        ) as session:
            check = await session.get(
                f"{gateway.url}/auth/check_jwt", headers={"Authorization": f"Bearer {token}"}
            )
            assert check.status == 200
            cookie = {"Cookie": f"sessionId={check.cookies['sessionId'].value}"}
            url = f"{gateway.url}/api/v1/production"
            assert (await session.get(url)).status == 401
            assert (await session.get(url, headers=cookie)).status == 200
            gateway.revoke_tokens()
            assert (await session.get(url, headers=cookie)).status == 401
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await session.get(url, headers=bearer)).status == 401
        async with connected(gateway) as envoy:  # a newly minted token is fine
            await envoy.update()


async def test_digest_auth_guards_legacy_endpoints() -> None:
    async with SimulatedGateway(capture="3.9.36") as gateway:
        url = f"{gateway.url}/api/v1/production/inverters"
        cases = [
            ("envoy", gateway.legacy_password("envoy"), 200),
            ("installer", gateway.legacy_password("installer"), 200),
            ("envoy", "wrong!", 401),
            ("nobody", gateway.legacy_password("envoy"), 401),
        ]
        for user, password, status in cases:
            middleware = aiohttp.DigestAuthMiddleware(user, password)
            async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
                assert (await session.get(url)).status == status
        async with aiohttp.ClientSession() as session:
            assert (await session.get(url)).status == 401
            assert (await session.get(f"{gateway.url}/api/v1/production")).status == 200
        async with connected(gateway, username="envoy", password="wrong!") as envoy:
            await envoy.update()
            assert not envoy.supported_features & F.INVERTERS
        async with connected(gateway, username="installer") as envoy:
            assert (await envoy.update()).inverters


async def test_legacy_gateway_refuses_tls_so_pyenphase_falls_back_to_http() -> None:
    async with SimulatedGateway(capture="5.0.62") as gateway:
        assert not gateway.uses_tls
        assert gateway.url.startswith("http://")
        async with client(gateway) as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get(f"https://{gateway.host}/info")
            assert (await session.get(f"{gateway.url}/info")).status == 200


async def test_set_grid_flips_what_pyenphase_reports() -> None:
    async with (
        SimulatedGateway(capture="8.3.5169_with_generator") as gateway,
        connected(gateway) as envoy,
    ):
        enpower = (await envoy.update()).enpower
        assert enpower is not None
        assert enpower.mains_oper_state == "closed"
        before = time.monotonic()
        assert gateway.set_grid(False)
        assert not gateway.set_grid(False)
        enpower = (await envoy.update()).enpower
        assert enpower is not None
        assert enpower.mains_oper_state == "open"
        assert enpower.grid_mode == "grid-tied"  # Enpwr_grid_mode lags, as on real gateways
        assert gateway.grid_changes == 1
        assert gateway.grid_log[0][1] is False
        assert before <= gateway.grid_log[0][0] <= time.monotonic()
        relay = await (await envoy.request("/ivp/ensemble/relay")).json()
        assert relay["mains_oper_state"] == "open"
        status = await (await envoy.request("/ivp/ensemble/status")).json()
        assert status["relay"]["mains_oper_state"] == "open"
        await envoy.go_on_grid()
        assert gateway.grid_on
        assert gateway.document("/ivp/ensemble/relay")["mains_admin_state"] == "closed"


async def test_relay_endpoint_only_with_an_enpower() -> None:
    async with SimulatedGateway(capture="7.6.185_with_cts_and_battery_3t") as gateway:
        assert gateway.document("/ivp/ensemble/relay") is None
    gateway = SimulatedGateway(capture="7.6.185_with_cts_and_battery_3t", serve_relay=True)
    assert gateway.document("/ivp/ensemble/relay")["mains_oper_state"] == "closed"


async def test_collar_grid_state_follows_set_grid(tmp_path: Path) -> None:
    folder = tmp_path / "8.3.9999_collar"
    folder.mkdir()
    source = CAPTURES_DIR / "8.3.5169_with_generator"
    for name in (
        "info",
        "production.json",
        "ivp_meters",
        "ivp_meters_readings",
        "ivp_ensemble_secctrl",
    ):
        shutil.copy(source / name, folder / name)
    collar = {
        "part_num": "865-00400-r22",
        "serial_num": "482406000001",
        "installed": 1700000000,
        "admin_state": 1,
        "admin_state_str": "ENS_DEVICE_STATE_READY",
        "img_load_date": 1700000000,
        "img_pnum_running": "1.0.0",
        "communicating": True,
        "last_rpt_date": 1700000000,
        "temperature": 30,
        "mid_state": "close",
        "grid_state": "on_grid",
        "control_error": 0,
        "collar_state": "Installed",
    }
    inventory = [{"type": "COLLAR", "devices": [collar]}]
    (folder / "ivp_ensemble_inventory").write_text(json.dumps(inventory))
    async with SimulatedGateway(capture=folder) as gateway, connected(gateway) as envoy:
        data = await envoy.update()
        assert data.collar is not None
        assert data.collar.grid_state == "on_grid"
        gateway.set_grid(False)
        data = await envoy.update()
        assert data.collar is not None
        assert data.collar.grid_state == "off_grid"


async def test_set_battery_moves_soc_and_power_everywhere() -> None:
    name = "8.2.4286_with_3cts_and_battery_split"
    async with SimulatedGateway(capture=name) as gateway, connected(gateway) as envoy:
        gateway.set_battery(soc=80, power_w=-2500)  # charging at 2.5 kW
        data = await envoy.update()
        assert data.encharge_aggregate is not None
        assert data.encharge_aggregate.state_of_charge == 80
        inventory, power = data.encharge_inventory or {}, data.encharge_power or {}
        assert {e.percent_full for e in inventory.values()} == {80}
        assert {p.soc for p in power.values()} == {80}
        assert sum(p.real_power_mw for p in power.values()) == -2_500_000
        assert data.ctmeter_storage is not None
        assert data.ctmeter_storage.active_power == -2500  # pyenphase: negative = receiving
    with pytest.raises(ValueError, match="no battery"):
        SimulatedGateway(capture="7.6.175_standard").set_battery(soc=50)


async def test_overlapping_requests_are_counted() -> None:
    async with SimulatedGateway(capture="5.0.62", latency=0.2) as gateway, client(gateway) as s:
        info = f"{gateway.url}/info"
        await s.get(info)
        await s.get(info)
        assert gateway.stats.overlaps == 0
        await asyncio.gather(s.get(info), s.get(info), s.get(f"{gateway.url}/api/v1/production"))
        stats = gateway.stats
        assert (stats.overlaps, stats.max_in_flight, stats.in_flight) == (2, 3, 0)
        assert stats.total == 5
        assert stats.requests["/info"] == 4
        assert [r.status for r in stats.log] == [200] * 5
        assert all(r.end - r.start >= 0.19 for r in stats.log)


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.HTTP_500, 500),
        (Fault.HTML, 200),
        (Fault.TRUNCATED_JSON, 200),
        (Fault.EMPTY, 200),
        (Fault.UNAUTHORIZED, 401),
    ],
)
async def test_fault_replies(fault: Fault, status: int) -> None:
    async with SimulatedGateway(capture="7.6.175_with_cts") as gateway, client(gateway) as s:
        url = f"{gateway.url}/api/v1/production"
        gateway.fault = fault
        response = await s.get(url)
        assert response.status == status
        with pytest.raises(json.JSONDecodeError):
            json.loads(await response.read())
        info = await s.get(f"{gateway.url}/info")
        assert info.status == (200 if fault is Fault.UNAUTHORIZED else status)  # /info never 401s
        gateway.set_fault(fault, paths={"/ivp/meters"})
        assert (await s.get(url)).status == 200
        gateway.fault = Fault.NONE
        assert json.loads(await (await s.get(url)).read())["wattsNow"] >= 0


async def test_slow_fault_delays_only_its_endpoints() -> None:
    async with SimulatedGateway(capture="8.2.4382_ACB_2") as gateway, client(gateway) as s:
        gateway.set_fault(Fault.SLOW, paths={"/inventory.json"}, delay=0.3)
        started = time.monotonic()
        assert (await s.get(f"{gateway.url}/inventory.json?deleted=1")).status == 200
        assert time.monotonic() - started >= 0.29
        started = time.monotonic()
        assert (await s.get(f"{gateway.url}/api/v1/production")).status == 200
        assert time.monotonic() - started < 0.3


async def test_timeout_fault_hangs_until_cleared_or_abandoned() -> None:
    async with SimulatedGateway(capture="7.6.175_with_cts") as gateway, client(gateway) as s:
        url = f"{gateway.url}/api/v1/production"
        gateway.fault = Fault.TIMEOUT
        with pytest.raises(asyncio.TimeoutError):
            await s.get(url, timeout=aiohttp.ClientTimeout(total=0.2))
        for _ in range(50):  # the abandoned request is cancelled server-side
            if gateway.stats.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert gateway.stats.in_flight == 0
        assert gateway.stats.log[-1].status == 0
        pending = asyncio.ensure_future(s.get(url))
        await asyncio.sleep(0.1)
        assert not pending.done()
        gateway.fault = Fault.NONE
        assert (await pending).status == 200


async def test_down_refuses_connections_and_comes_back_on_the_same_port() -> None:
    async with (
        SimulatedGateway(capture="7.6.175_with_cts") as gateway,
        connected(gateway) as envoy,
    ):
        await envoy.update()
        port = gateway.port
        gateway.fault = Fault.DOWN
        with pytest.raises(EnvoyCommunicationError):
            await envoy.update()
        async with client(gateway) as s:
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.get(f"{gateway.url}/info")
        gateway.fault = Fault.NONE
        assert gateway.port == port
        await envoy.update()


async def test_drift_moves_numbers_forward() -> None:
    clock = FakeClock()
    gateway = SimulatedGateway(
        capture="7.6.175_with_cts", drift=True, clock=clock, seed=1, utc_offset_s=0
    )
    async with gateway, connected(gateway) as envoy:
        readings = []
        for _ in range(4):
            readings.append(await envoy.update())
            clock.now += 400
        clock.now += 10 * 3600  # night
        readings.append(await envoy.update())
    productions = [r.system_production for r in readings]
    assert all(p is not None for p in productions)
    lifetimes = [p.watt_hours_lifetime for p in productions if p]
    assert lifetimes == sorted(lifetimes)
    assert lifetimes[-1] > lifetimes[0]
    noon = productions[1]
    night = productions[-1]
    assert noon is not None
    assert night is not None
    assert noon.watts_now > 500
    assert -10 <= night.watts_now <= 0
    dates = [{i.last_report_date for i in r.inverters.values()} for r in readings]
    assert dates[0] != dates[1]  # a 400 s step crosses every inverter's 5-minute report
    meters = [r.ctmeter_production for r in readings]
    delivered = [m.energy_delivered for m in meters if m]
    assert delivered == sorted(delivered)
    assert delivered[-1] > delivered[0]


async def test_drift_off_grid_makes_the_battery_carry_the_house() -> None:
    clock = FakeClock()
    name = "8.2.4286_with_3cts_and_battery_split"
    gateway = SimulatedGateway(capture=name, drift=True, clock=clock, seed=2, utc_offset_s=0)
    async with gateway, connected(gateway) as envoy:
        gateway.set_grid(False)
        clock.now += 60
        data = await envoy.update()
    assert data.system_net_consumption is not None
    assert data.system_net_consumption.watts_now == 0


def ct(data: EnvoyData, kind: str) -> EnvoyMeterData:
    """A CT's reading, which must be there."""
    meter = data.ctmeters.get(kind)
    assert meter is not None
    return meter


async def test_drift_charges_from_the_grid_only_when_the_settings_allow_it() -> None:
    clock = FakeClock(NOON_UTC + 10 * 3600)  # 22:00: no sun, so any charging is from the grid
    name = "8.2.4286_with_3cts_and_battery_split"
    gateway = SimulatedGateway(capture=name, drift=True, clock=clock, seed=5, utc_offset_s=0)
    async with gateway, connected(gateway) as envoy:
        gateway.set_battery(soc=15)  # below the capture's 20 % reserve
        clock.now += 60
        forbidden = await envoy.update()  # the capture's setting: charge_from_grid false
        gateway.set_storage(charge_from_grid=True)
        clock.now += 60
        allowed = await envoy.update()
        gateway.set_storage(mode="backup", charge_from_grid=False)
        gateway.set_battery(soc=60)
        clock.now += 60
        backup = await envoy.update()
    storage = [ct(d, "storage") for d in (forbidden, allowed, backup)]
    net = [ct(d, "net-consumption") for d in (forbidden, allowed, backup)]
    assert storage[0].active_power == 0  # at the reserve: neither charging nor discharging
    assert net[0].active_power > 0  # so the grid carries the house
    assert storage[1].active_power < -10_000  # charging at the five batteries' 19.2 kW
    assert net[1].active_power > -storage[1].active_power  # from the grid, and the house too
    assert storage[2].active_power == 0  # full backup never discharges on grid
    assert forbidden.tariff is not None
    assert forbidden.tariff.storage_settings is not None
    assert forbidden.tariff.storage_settings.charge_from_grid is False
    assert allowed.tariff is not None
    assert allowed.tariff.storage_settings is not None
    assert allowed.tariff.storage_settings.charge_from_grid is True


async def test_enlighten_login_token_and_check_jwt_through_pyenphase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        SimulatedEnlighten(accounts={"me@example.com": "pw"}) as cloud,
        SimulatedGateway(capture="7.6.175_with_cts") as gateway,
    ):

        class CloudAuth(EnvoyTokenAuth):
            JSON_LOGIN_URL = cloud.login_url
            TOKEN_URL = cloud.token_url

        monkeypatch.setattr("pyenphase.envoy.EnvoyTokenAuth", CloudAuth)
        async with connected(gateway, username="me@example.com", password="pw") as envoy:
            assert (await envoy.update()).system_production is not None
            assert isinstance(envoy.auth, CloudAuth)
            assert envoy.auth.is_consumer
            assert envoy.auth.token_type == "owner"
            claims = jwt.decode(
                envoy.auth.token, SIM_TOKEN_KEY, algorithms=["HS256"], audience=gateway.serial
            )
        assert claims["username"] == "me@example.com"
        assert claims["iss"] == "Entrez"
        assert (cloud.logins, cloud.token_requests, cloud.calls) == (1, 1, 2)

        failures = [
            ("me@example.com", "wrong", "401"),
            ("stranger@example.com", "pw", "401"),
        ]
        for user, password, reason in failures:
            with pytest.raises(EnvoyAuthenticationError, match=reason):
                async with connected(gateway, username=user, password=password):
                    pass
        cloud.mfa = True
        with pytest.raises(EnvoyAuthenticationError, match="No session id"):
            async with connected(gateway, username="me@example.com", password="pw"):
                pass
        cloud.mfa = False
        cloud.known_serials = {"000000000000"}
        with pytest.raises(EnvoyAuthenticationError, match="Invalid serial number"):
            async with connected(gateway, username="me@example.com", password="pw"):
                pass
        cloud.known_serials = None
        cloud.down = True
        with pytest.raises(EnvoyAuthenticationError, match="503"):
            async with connected(gateway, username="me@example.com", password="pw"):
                pass


async def test_enlighten_sessions_expire_and_tokens_follow_settings() -> None:
    clock = FakeClock()
    cloud = SimulatedEnlighten(clock=clock, token_type="installer", token_lifetime=12 * 3600)
    async with cloud, aiohttp.ClientSession() as session:
        form = {"user[email]": "owner@example.com", "user[password]": "secret"}
        login = await (await session.post(cloud.login_url, data=form)).json()
        assert login["is_consumer"] is False
        request = {
            "session_id": login["session_id"],
            "serial_num": "122238082763",
            "username": "owner@example.com",
        }
        token = await (await session.post(cloud.token_url, json=request)).text()
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["enphaseUser"] == "installer"
        assert claims["exp"] == int(clock.now) + 12 * 3600
        clock.now += 2 * 3600
        expired = await session.post(cloud.token_url, json=request)
        assert (expired.status, await expired.text()) == (401, "You need to sign in first")
        wrong = await session.post(cloud.login_url, data={**form, "user[password]": "no"})
        assert wrong.status == 401
        assert await wrong.json() == {"message": "Invalid email or password"}


def test_make_token_claims() -> None:
    token = make_token("123456789012", lifetime=10, token_type="installer", clock=lambda: 1000.0)
    claims: dict[str, Any] = jwt.decode(
        token,
        SIM_TOKEN_KEY,
        algorithms=["HS256"],
        options={"verify_exp": False},
        audience="123456789012",
    )
    assert (claims["aud"], claims["exp"], claims["iat"]) == ("123456789012", 1010, 1000)
    assert claims["enphaseUser"] == "installer"


def test_capture_loading_reads_identity_and_recorded_status() -> None:
    capture = load_capture("3.9.36_bad_auth")
    assert (capture.serial, capture.firmware, capture.uses_tls) == ("121426016034", "3.9.36", False)
    inverters = capture.recorded("/api/v1/production/inverters")
    assert inverters is not None
    assert inverters.status == 401  # its body holds "status": 401
    meters = load_capture("3.8.10").recorded("/ivp/meters")
    assert meters is not None
    assert meters.status == 401
    assert load_capture("8.2.4382_ACB_2").recorded("/inventory.json?deleted=1") is not None


def test_cli_lists_captures(capsys: pytest.CaptureFixture[str]) -> None:
    sim_main(["--list"])
    assert capsys.readouterr().out.split() == list_captures()
