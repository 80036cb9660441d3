"""Authentication end to end: simulated Enlighten + simulated gateway + real mosquitto.

Every cloud URL points at the simulated service on 127.0.0.1; nothing here reaches Enphase.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from envoy2mqtt import catalog
from envoy2mqtt.app import App
from envoy2mqtt.auth.enlighten import Enlighten
from envoy2mqtt.auth.errors import (
    CloudUnreachable,
    LoginRejected,
    MfaRequired,
    SessionRefused,
    TokenError,
    UnknownSerial,
)
from envoy2mqtt.auth.store import StoredToken, TokenStore
from envoy2mqtt.auth.tokens import CloudTokens
from envoy2mqtt.catalog.auth import AUTH
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import Fault, SimulatedEnlighten, SimulatedGateway, make_token
from envoy2mqtt.token_command import token_command
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running

METERED = "7.6.175_with_cts"  # firmware 7 with CTs: a fast lane that notices a 401 at once
LEGACY = "5.0.62"
ACCOUNT = "owner@example.com"
PASSWORD = "pw-Zq8!do-not-leak"


@pytest.fixture(autouse=True)
def auth_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish the auth diagnostics whether or not the catalog lists them yet."""
    if AUTH not in catalog.SOURCES:
        monkeypatch.setattr(catalog, "SOURCES", (*catalog.SOURCES, AUTH))


def cloud_settings(
    gateway: SimulatedGateway,
    cloud: SimulatedEnlighten,
    port: int,
    base: str,
    state_dir: Path,
    **overrides: object,
) -> Settings:
    """Settings with Enlighten credentials, the cloud URLs on the simulated service."""
    values: dict[str, object] = {
        "envoy_token": None,
        "envoy_username": ACCOUNT,
        "envoy_password": SecretStr(PASSWORD),
        "enlighten_login_url": cloud.login_url,
        "entrez_token_url": cloud.token_url,
        "cloud_timeout": 2,
    }
    values.update(overrides)
    return bridge_settings(gateway, port, base, state_dir, **values)


def enlighten(**options: object) -> SimulatedEnlighten:
    """The simulated cloud with our account."""
    return SimulatedEnlighten(accounts={ACCOUNT: PASSWORD}, **options)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the sims' counters have no event to await
            await asyncio.sleep(0.05)


def statuses(gateway: SimulatedGateway, status: int) -> int:
    """How many requests the gateway answered with `status`."""
    return sum(1 for record in gateway.stats.log if record.status == status)


def online(recorder: Recorder, base: str) -> bool:
    """Whether the gateway's availability is online and it published production."""
    latest = recorder.latest()
    return latest.get(f"{base}/availability") == b"online" and f"{base}/production_power" in latest


# -- firmware 7 with an Enlighten account -----------------------------------------------------


async def test_fresh_login_publishes_data_and_diagnostics(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(mosquitto.host, mosquitto.port, "#") as recorder,
            running(App(settings)),
        ):
            await recorder.wait_for(
                lambda _: online(recorder, base) and f"{base}/token_type" in recorder.latest(),
                timeout=15,
            )
    latest = recorder.latest()
    assert (cloud.logins, cloud.token_requests) == (1, 1)
    assert latest[f"{base}/token_type"] == b"owner"
    expires = datetime.fromisoformat(latest[f"{base}/token_expires"].decode())
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=366)
    assert latest[f"{base}/auth_failures"] == b"0"
    assert datetime.fromisoformat(latest[f"{base}/auth_last_success"].decode()).tzinfo
    cache = TokenStore(tmp_path).path(gateway.serial)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    configs = [
        json.loads(payload)
        for topic, payload in latest.items()
        if topic.startswith(f"{unique_prefix}-ha/") and payload
    ]
    expiry = next(c for c in configs if c.get("state_topic") == f"{base}/token_expires")
    assert expiry["device_class"] == "timestamp"
    assert expiry["entity_category"] == "diagnostic"


async def test_restart_reuses_the_cached_token_without_cloud_calls(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        calls = []
        for _ in range(2):
            async with (
                Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
                running(App(settings)),
            ):
                await recorder.wait_for(lambda _: online(recorder, base), timeout=15)
            calls.append(cloud.calls)
    assert calls == [2, 2]  # login + token on the first run; zero cloud calls on the second
    assert "using the cached owner token" in caplog.text


async def test_short_lived_tokens_are_renewed_before_they_expire(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    # a 4 s installer token renews with a quarter of its life left, every ~3 s
    async with (
        enlighten(token_lifetime=4.0, token_type="installer") as cloud,
        SimulatedGateway(capture=METERED) as gateway,
    ):
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
            running(App(settings)),
        ):
            await recorder.wait_for(lambda _: online(recorder, base), timeout=15)
            await until(lambda: cloud.token_requests >= 3, timeout=15)
            await asyncio.sleep(1.0)  # reads keep working on the renewed token
            assert recorder.latest()[f"{base}/availability"] == b"online"
    assert statuses(gateway, 401) == 0  # never presented an expired token
    expiries = {r.payload for r in recorder.on(f"{base}/token_expires")}
    assert len(expiries) >= 2
    assert recorder.latest()[f"{base}/token_type"] == b"installer"


async def test_cloud_down_keeps_the_cached_token_and_says_so_once(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with enlighten(down=True) as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        store = TokenStore(tmp_path)
        # a year-long token issued 340 days ago: inside the 30-day renewal window
        due_soon = make_token(gateway.serial, clock=lambda: time.time() - 340 * 86400)
        store.save(
            StoredToken(
                token=due_soon,
                serial=gateway.serial,
                account=ACCOUNT,
                obtained_at=datetime.now(UTC),
            )
        )
        app = App(settings)
        app.bridges[0].tokens = CloudTokens(  # the real source with a test-sized back-off
            Enlighten(
                ACCOUNT,
                PASSWORD,
                login_url=cloud.login_url,
                token_url=cloud.token_url,
                timeout=2,
            ),
            store,
            account=ACCOUNT,
            backoff=Backoff(first=0.2, cap=0.5),
        )
        base = f"{unique_prefix}/{gateway.serial}"
        with caplog.at_level(logging.INFO):
            async with (
                Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
                running(app),
            ):
                await recorder.wait_for(lambda _: online(recorder, base), timeout=15)
                await until(lambda: cloud.logins >= 3, timeout=15)
                assert recorder.latest()[f"{base}/availability"] == b"online"
                cloud.down = False
                await until(lambda: cloud.token_requests == 1, timeout=10)
                await until(lambda: "works again" in caplog.text, timeout=5)
    assert caplog.text.count("cannot renew the token") == 1
    assert "still using the current one" in caplog.text
    assert statuses(gateway, 401) == 0
    renewed = store.load(gateway.serial)
    assert renewed is not None
    assert renewed.token != due_soon


async def test_revoked_tokens_are_renewed_once(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
            running(App(settings)),
        ):
            await recorder.wait_for(lambda _: online(recorder, base), timeout=15)
            gateway.revoke_tokens()  # as a firmware update does
            await until(lambda: cloud.token_requests == 2, timeout=10)
            served = gateway.stats.total
            await until(lambda: gateway.stats.total > served + 3, timeout=10)
            assert cloud.token_requests == 2
            await recorder.wait_for(
                lambda _: recorder.latest().get(f"{base}/auth_failures") not in (None, b"0"),
                timeout=10,
            )
            assert recorder.latest()[f"{base}/availability"] == b"online"


async def test_401_storm_renews_once_then_backs_off(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
            running(App(settings)),
        ):
            await recorder.wait_for(lambda _: online(recorder, base), timeout=15)
            gateway.stats.reset()
            gateway.fault = Fault.UNAUTHORIZED  # 401 whatever the token
            started = time.monotonic()
            await recorder.wait_for(
                lambda _: recorder.latest()[f"{base}/availability"] == b"offline", timeout=10
            )
            await asyncio.sleep(max(0.0, 6.0 - (time.monotonic() - started)))
            storm_requests = gateway.stats.total
    assert cloud.token_requests == 2  # the first token, and exactly one renewal
    assert gateway.stats.requests["/auth/check_jwt"] == 2  # re-check, then the fresh token
    assert storm_requests <= 20, gateway.stats.requests  # the pace backed off
    assert "the gateway refused a fresh token" in caplog.text


async def test_mfa_account_is_told_to_use_envoy_token(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with enlighten(mfa=True) as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
        async with running(App(settings)):
            await until(lambda: "multi-factor" in caplog.text, timeout=10)
            await asyncio.sleep(3)  # the bridge retries the connection; the cloud is spared
    assert cloud.logins == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("set ENVOY_TOKEN" in r.getMessage() for r in errors)


# -- the cloud's answers, one by one ----------------------------------------------------------


def client(cloud: SimulatedEnlighten, password: str = PASSWORD) -> Enlighten:
    """Our Enlighten client aimed at the simulated service."""
    return Enlighten(
        ACCOUNT, password, login_url=cloud.login_url, token_url=cloud.token_url, timeout=2
    )


async def test_each_cloud_failure_has_its_own_message() -> None:
    serial = "122302045041"
    cases: list[tuple[dict[str, object], str, type[TokenError], str]] = [
        ({"mfa": True}, PASSWORD, MfaRequired, "multi-factor"),
        ({}, "wrong-password", LoginRejected, "check ENVOY_USERNAME and ENVOY_PASSWORD"),
        ({"known_serials": {"1"}}, PASSWORD, UnknownSerial, f"serial {serial}"),
        ({"session_lifetime": 0.0}, PASSWORD, SessionRefused, "You need to sign in first"),
        ({"down": True}, PASSWORD, CloudUnreachable, "unavailable (HTTP 503)"),
    ]
    messages = set()
    for options, password, kind, phrase in cases:
        async with enlighten(**options) as cloud:
            with pytest.raises(kind) as caught:
                await client(cloud, password).obtain(serial)
        message = str(caught.value)
        assert phrase in message
        assert password not in message
        messages.add(message)
    assert len(messages) == len(cases)


async def test_unreachable_and_silent_clouds_fail_in_bounded_time() -> None:
    cloud = enlighten()
    async with cloud:
        refused = client(cloud)  # the port is closed once the block ends
    with pytest.raises(CloudUnreachable, match="cannot reach Enphase's cloud"):
        await refused.obtain("122302045041")

    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # never answer; the client hangs up once it gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hanging = Enlighten(
        ACCOUNT,
        PASSWORD,
        login_url=f"http://127.0.0.1:{port}/login/login.json?",
        token_url=f"http://127.0.0.1:{port}/tokens",
        timeout=1,
    )
    started = time.monotonic()
    async with server:
        with pytest.raises(CloudUnreachable, match="did not answer within 1 s"):
            await hanging.obtain("122302045041")
        for writer in accepted:  # closing a server leaves what it accepted open (3.11)
            writer.close()
            await writer.wait_closed()
    assert time.monotonic() - started < 3


# -- firmware < 7 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [("envoy", None), (ACCOUNT, PASSWORD)],
    ids=["envoy-user", "enlighten-credentials"],
)
async def test_legacy_gateway_uses_digest_auth(
    username: str,
    password: str | None,
    mosquitto: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=LEGACY) as gateway:
        settings = cloud_settings(
            gateway,
            cloud,
            mosquitto.port,
            unique_prefix,
            tmp_path,
            envoy_username=username,
            envoy_password=SecretStr(password) if password else None,
        )
        base = f"{unique_prefix}/{gateway.serial}"
        async with (
            Recorder(mosquitto.host, mosquitto.port, f"{base}/#") as recorder,
            running(App(settings)),
        ):
            await recorder.wait_for(
                lambda _: (
                    online(recorder, base)
                    and any(t.startswith(f"{base}/inverter/") for t in recorder.latest())
                ),
                timeout=15,
            )
    guarded = [r for r in gateway.stats.log if r.path == "/api/v1/production/inverters"]
    assert any(r.status == 200 for r in guarded)  # the digest-guarded endpoint was read
    assert cloud.calls == 0  # an old gateway never needs the cloud
    assert f"{base}/token_expires" not in recorder.latest()


# -- `envoy2mqtt token` -----------------------------------------------------------------------


async def test_token_command_prints_status_never_the_token(tmp_path: Path) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(gateway, cloud, 1883, "unused", tmp_path)
        outputs = []
        for show, renew in ((False, False), (False, False), (True, False), (False, True)):
            out = io.StringIO()
            assert await token_command(settings, show=show, renew=renew, out=out) == 0
            outputs.append(out.getvalue())
            if len(outputs) == 1:
                assert cloud.token_requests == 1
    cached = TokenStore(tmp_path).load(gateway.serial)
    assert cached is not None
    fresh, again, shown, renewed = outputs
    assert "source:    cloud" in fresh
    assert "source:    cache" in again
    assert f"serial:    {gateway.serial}" in fresh
    assert "type:      owner" in fresh
    assert "expires:   " in fresh
    assert "accepted the token" in fresh
    assert "hidden (add --show to print it)" in fresh
    assert "eyJ" not in fresh + again + renewed
    assert PASSWORD not in fresh + again + shown + renewed
    assert "token:     eyJ" in shown
    assert "source:    cloud" in renewed
    assert cloud.token_requests == 2  # only the first run and --renew asked the cloud
    assert cached.token in renewed or cached.token not in fresh


async def test_token_command_reports_fixed_tokens_and_failures(tmp_path: Path) -> None:
    async with SimulatedGateway(capture=METERED) as gateway:
        settings = bridge_settings(gateway, 1883, "unused", tmp_path)  # ENVOY_TOKEN
        out = io.StringIO()
        assert await token_command(settings, show=False, renew=False, out=out) == 0
        assert "source:    fixed" in out.getvalue()
        out = io.StringIO()
        assert await token_command(settings, show=False, renew=True, out=out) == 1
        assert "ENVOY_TOKEN is fixed" in out.getvalue()
        async with enlighten() as cloud:
            wrong = cloud_settings(
                gateway, cloud, 1883, "unused", tmp_path, envoy_password=SecretStr("nope")
            )
            out = io.StringIO()
            assert await token_command(wrong, show=True, renew=False, out=out) == 1
        assert "Enlighten rejected the login" in out.getvalue()
        assert "nope" not in out.getvalue()


async def test_token_command_without_the_gateway_uses_envoy_serial(tmp_path: Path) -> None:
    async with enlighten() as cloud, SimulatedGateway(capture=METERED) as gateway:
        settings = cloud_settings(
            gateway, cloud, 1883, "unused", tmp_path, envoy_host="127.0.0.1:9", envoy_serial="42"
        )
        out = io.StringIO()
        assert await token_command(settings, show=False, renew=False, out=out) == 1
    text = out.getvalue()
    assert "not reachable" in text
    assert "serial:    42" in text
    assert "source:    cloud" in text
    assert cloud.token_requests == 1


async def test_token_command_on_a_legacy_gateway(tmp_path: Path) -> None:
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = bridge_settings(gateway, 1883, "unused", tmp_path)
        out = io.StringIO()
        assert await token_command(settings, show=False, renew=False, out=out) == 0
    assert "digest" in out.getvalue()


# -- secrets ----------------------------------------------------------------------------------


class Everything(logging.Handler):
    """Keeps every log record fully formatted, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.names.add(record.name)


@contextlib.contextmanager
def every_log_line() -> Iterator[Everything]:
    """The root logger at DEBUG (pyenphase and aiohttp included) into one handler."""
    handler = Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = {name: logging.getLogger(name).level for name in ("pyenphase", "aiohttp", "asyncio")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


async def test_no_password_or_token_in_any_log_line_or_mqtt_message(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    wrong = "wr0ng-Zq8!also-secret"
    tokens: set[str] = set()
    with every_log_line() as logs:
        async with (
            enlighten(token_lifetime=4.0, token_type="installer") as cloud,
            SimulatedGateway(capture=METERED) as gateway,
            Recorder(mosquitto.host, mosquitto.port, "#") as recorder,
        ):
            settings = cloud_settings(gateway, cloud, mosquitto.port, unique_prefix, tmp_path)
            store = TokenStore(tmp_path)
            base = f"{unique_prefix}/{gateway.serial}"

            def remember() -> bool:
                stored = store.load(gateway.serial)
                if stored is not None:
                    tokens.add(stored.token)
                return False

            async with running(App(settings)):
                await recorder.wait_for(lambda _: remember() or online(recorder, base), 15)
                await until(lambda: remember() or cloud.token_requests >= 2, timeout=15)
                gateway.revoke_tokens()
                await until(lambda: remember() or cloud.token_requests >= 3, timeout=15)
                cloud.down = True  # renewal fails, then the token expires: 401s
                logins = cloud.logins
                await until(lambda: remember() or cloud.logins > logins, timeout=15)
                await asyncio.sleep(2.0)
            remember()
            cloud.down = False
            await token_command(settings, show=False, renew=True, out=io.StringIO())
            remember()
            bad = cloud_settings(
                gateway,
                cloud,
                mosquitto.port,
                f"{unique_prefix}-bad",
                tmp_path / "bad",
                envoy_password=SecretStr(wrong),
            )
            async with running(App(bad)):
                await until(lambda: any("rejected the login" in x for x in logs.lines), 10)
            await asyncio.sleep(0.5)  # the last messages reach the recorder
    assert len(tokens) >= 3
    assert {"pyenphase.envoy", "envoy2mqtt.auth.tokens", "envoy2mqtt.polling.bridge"} <= logs.names
    secrets = [PASSWORD, wrong, *tokens]
    assert recorder.records, "the recorder saw nothing"
    for line in logs.lines:
        assert "eyJ" not in line, line  # the start of every JWT
        for secret in secrets:
            assert secret not in line, line
    for record in recorder.records:
        text = record.topic + record.payload.decode(errors="replace")
        assert "eyJ" not in text, record.topic
        for secret in secrets:
            assert secret not in text, record.topic
    info = recorder.latest()[f"{unique_prefix}/bridge/info"].decode()
    assert ACCOUNT not in info
