"""Token claims, the renewal rule, the token store and the token sources, with a fake clock."""

from __future__ import annotations

import asyncio
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.auth.claims import TokenInfo, describe, token_claims
from envoy2mqtt.auth.errors import CloudUnreachable, LoginRejected, TokenError, TokenExpired
from envoy2mqtt.auth.store import StoredToken, TokenStore
from envoy2mqtt.auth.tokens import CloudTokens, FixedToken, Renewal
from envoy2mqtt.catalog.auth import AUTH
from envoy2mqtt.core import clock as core_clock
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.snapshot import AuthStatus, GatewayInfo, Snapshot
from envoy2mqtt.sim import make_token

SERIAL = "122302045041"
START = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86400.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def bridge_clock(self) -> core_clock.Clock:
        """The bridge's clock with this wall time."""
        return core_clock.Clock(wall=self)


class FakeCloud:
    """A token service that mints tokens on the fake clock, or fails with `error`."""

    def __init__(self, clock: Clock, lifetime: float = 365 * DAY, kind: str = "owner") -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.kind = kind
        self.error: TokenError | None = None
        self.calls = 0

    async def obtain(self, serial: str) -> str:
        self.calls += 1
        await asyncio.sleep(0)  # a network round trip: other tasks run meanwhile
        if self.error is not None:
            raise self.error
        return make_token(
            serial,
            lifetime=self.lifetime,
            token_type="installer" if self.kind == "installer" else "owner",
            clock=self.clock.epoch,
        )


def cloud_source(
    tmp_path: Path, clock: Clock, cloud: FakeCloud, *, account: str = "owner@example.com"
) -> CloudTokens:
    return CloudTokens(
        cloud,
        TokenStore(tmp_path / "state"),
        account=account,
        clock=clock.bridge_clock(),
        backoff=Backoff(first=60, cap=3600),
    )


# -- claims and the renewal rule --------------------------------------------------------------


def test_claims_are_read_without_the_signing_key() -> None:
    token = make_token(
        SERIAL,
        lifetime=DAY,
        token_type="installer",
        key="a-key-unknown-to-us-and-long-enough-for-hs256",
    )
    info = describe(token)
    assert info.kind == "installer"
    assert info.serial == SERIAL
    assert info.lifetime == timedelta(days=1)
    assert token_claims(token)["iss"] == "Entrez"


def test_garbage_is_not_a_token_and_the_message_does_not_repeat_it() -> None:
    with pytest.raises(TokenError) as caught:
        describe("not-a-jwt-s3cr3t")
    assert "s3cr3t" not in str(caught.value)


def test_owner_token_renews_thirty_days_before_expiry() -> None:
    info = TokenInfo(START + timedelta(days=365), START, "owner", SERIAL)
    renewal = Renewal(days=30)
    assert renewal.renew_at(info) == START + timedelta(days=335)
    assert not renewal.due(info, START + timedelta(days=334))
    assert renewal.due(info, START + timedelta(days=335))


def test_installer_token_renews_with_a_quarter_of_its_life_left() -> None:
    info = TokenInfo(START + timedelta(hours=12), START, "installer", SERIAL)
    renewal = Renewal(days=30)
    assert renewal.renew_at(info) == START + timedelta(hours=9)
    assert not renewal.due(info, START + timedelta(hours=8))


def test_lifetime_without_iat_is_the_typical_one_for_the_type() -> None:
    installer = TokenInfo(START + timedelta(hours=12), None, "installer", None)
    assert Renewal(days=30).renew_at(installer) == START + timedelta(hours=9)
    owner = TokenInfo(START + timedelta(days=365), None, "owner", None)
    assert Renewal(days=30).renew_at(owner) == START + timedelta(days=335)


def test_next_check_is_daily_then_at_renewal_then_after_the_backoff() -> None:
    info = TokenInfo(START + timedelta(days=365), START, "owner", SERIAL)
    renewal = Renewal(days=30)
    assert renewal.next_check(info, START) == DAY
    assert renewal.next_check(info, START + timedelta(days=334, hours=23)) == 3600
    due = START + timedelta(days=336)
    assert renewal.next_check(info, due) == 1.0  # due now: soon, but never a busy loop
    assert renewal.next_check(info, due, retry_at=due + timedelta(minutes=5)) == 300
    assert renewal.next_check(None, due) == DAY
    assert renewal.next_check(TokenInfo(None, None, "owner", SERIAL), due) == DAY


def test_a_token_about_to_expire_is_not_usable() -> None:
    info = TokenInfo(START + timedelta(days=365), START, "owner", SERIAL)
    assert info.usable(START + timedelta(days=364))
    assert not info.usable(START + timedelta(days=365) - timedelta(seconds=30))


def test_backoff_doubles_is_capped_and_jittered() -> None:
    backoff = Backoff(first=10, cap=50)
    waits = [backoff.failed() for _ in range(5)]
    assert [backoff.delay] == [50]
    assert 8 <= waits[0] <= 12
    assert 16 <= waits[1] <= 24
    assert all(wait <= 60 for wait in waits)
    assert 40 <= backoff.failed(permanent=True) <= 60
    backoff.reset()
    assert 8 <= backoff.failed() <= 12


# -- token store ------------------------------------------------------------------------------


def test_store_round_trip_with_owner_only_mode(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state")
    stored = StoredToken(token="eyJ.a.b", serial=SERIAL, account="a@b.c", obtained_at=START)
    assert store.save(stored)
    mode = stat.S_IMODE(store.path(SERIAL).stat().st_mode)
    assert mode == 0o600
    assert store.load(SERIAL) == stored
    assert store.load("other") is None
    assert "eyJ" not in repr(stored)


def test_store_tightens_a_loose_file_and_survives_garbage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TokenStore(tmp_path)
    store.save(StoredToken(token="t", serial=SERIAL, account="a", obtained_at=START))
    path = store.path(SERIAL)
    path.chmod(0o644)
    assert store.load(SERIAL) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert store.load(SERIAL) is None
    assert "not in the expected format" in caplog.text


def test_store_write_failure_is_a_warning_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with caplog.at_level(logging.WARNING):
        ok = TokenStore(blocker).save(
            StoredToken(token="t", serial=SERIAL, account="a", obtained_at=START)
        )
    assert not ok
    assert "cannot write the token cache" in caplog.text


# -- the fixed token --------------------------------------------------------------------------


async def test_fixed_token_expired_says_what_to_do() -> None:
    clock = Clock()
    token = make_token(SERIAL, lifetime=DAY, clock=clock.epoch)
    fixed = FixedToken(token, clock=clock.bridge_clock())
    assert await fixed.token(SERIAL) == token
    clock.advance(days=2)
    with pytest.raises(TokenExpired, match=r"ENVOY_TOKEN expired on .*entrez") as caught:
        await fixed.token(SERIAL)
    assert token not in str(caught.value)


async def test_fixed_token_for_another_gateway_is_refused() -> None:
    fixed = FixedToken(make_token("999999999999"))
    with pytest.raises(TokenError, match="issued for gateway 999999999999"):
        await fixed.token(SERIAL)


async def test_fixed_token_warns_once_as_expiry_nears(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    fixed = FixedToken(make_token(SERIAL, clock=clock.epoch), clock=clock.bridge_clock())
    assert fixed.next_check() == DAY
    clock.advance(days=340)
    with caplog.at_level(logging.WARNING):
        assert not await fixed.maintain(SERIAL)
        assert not await fixed.maintain(SERIAL)
    assert caplog.text.count("ENVOY_TOKEN expires on") == 1
    with pytest.raises(TokenError, match="rejected ENVOY_TOKEN"):
        await fixed.renew(SERIAL)


def test_fixed_token_that_is_not_a_jwt_names_the_setting() -> None:
    with pytest.raises(TokenError, match="ENVOY_TOKEN: the token is not a JWT"):
        FixedToken("abc")


# -- tokens from the cloud --------------------------------------------------------------------


async def test_cached_token_is_reused_without_cloud_calls(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    first = cloud_source(tmp_path, clock, cloud)
    token = await first.token(SERIAL)
    assert (cloud.calls, first.origin) == (1, "cloud")
    clock.advance(days=100)
    restarted = cloud_source(tmp_path, clock, cloud)
    assert await restarted.token(SERIAL) == token
    assert (cloud.calls, restarted.origin) == (1, "cache")
    assert restarted.status().token_type == "owner"


async def test_cache_of_another_account_is_ignored(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    await cloud_source(tmp_path, clock, cloud).token(SERIAL)
    other = cloud_source(tmp_path, clock, cloud, account="someone@else.org")
    await other.token(SERIAL)
    assert (cloud.calls, other.origin) == (2, "cloud")


async def test_expired_cache_is_replaced(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock, lifetime=DAY)
    await cloud_source(tmp_path, clock, cloud).token(SERIAL)
    clock.advance(days=2)
    restarted = cloud_source(tmp_path, clock, cloud)
    await restarted.token(SERIAL)
    assert (cloud.calls, restarted.origin) == (2, "cloud")


async def test_renewal_waits_until_due_and_checks_daily(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    source = cloud_source(tmp_path, clock, cloud)
    first = await source.token(SERIAL)
    assert source.next_check() == DAY
    assert not await source.maintain(SERIAL)
    clock.advance(days=334, hours=23)
    assert source.next_check() == pytest.approx(3600)
    clock.advance(hours=1)
    assert source.renewal_due()
    assert await source.maintain(SERIAL)
    assert cloud.calls == 2
    assert await source.token(SERIAL) != first
    assert not source.renewal_due()


async def test_installer_tokens_are_checked_within_their_short_life(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock, lifetime=12 * 3600, kind="installer")
    source = cloud_source(tmp_path, clock, cloud)
    await source.token(SERIAL)
    assert source.next_check() == pytest.approx(9 * 3600)
    clock.advance(hours=9)
    assert await source.maintain(SERIAL)
    assert source.status().token_type == "installer"


async def test_cloud_down_keeps_the_token_backs_off_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    source = cloud_source(tmp_path, clock, cloud)
    token = await source.token(SERIAL)
    clock.advance(days=340)
    cloud.error = CloudUnreachable("cannot reach Enphase's cloud (example: ClientError)")
    with caplog.at_level(logging.INFO, logger="envoy2mqtt.auth.tokens"):
        for _ in range(6):
            assert not await source.maintain(SERIAL)  # in back-off: no call at all
            clock.advance(seconds=source.next_check())
        assert await source.token(SERIAL) == token  # still in use meanwhile
        assert 2 <= cloud.calls - 1 <= 6
        assert caplog.text.count("cannot renew the token") == 1
        assert "still using the current one" in caplog.text
        cloud.error = None
        clock.advance(seconds=source.next_check())
        assert await source.maintain(SERIAL)
    assert "works again" in caplog.text
    assert source.status().failures >= 2


async def test_backoff_spaces_attempts_whoever_asks(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    cloud.error = LoginRejected("Enlighten rejected the login")
    source = cloud_source(tmp_path, clock, cloud)
    for _ in range(5):
        with pytest.raises(LoginRejected, match="rejected the login"):
            await source.token(SERIAL)
    assert cloud.calls == 1  # a wrong password is not retried for an hour: no lock-out
    clock.advance(hours=1.3)
    with pytest.raises(LoginRejected):
        await source.renew(SERIAL)
    assert cloud.calls == 2


async def test_serial_comes_from_the_gateway_or_the_settings(tmp_path: Path) -> None:
    clock = Clock()
    source = cloud_source(tmp_path, clock, FakeCloud(clock))
    with pytest.raises(TokenError, match="set ENVOY_SERIAL"):
        await source.token("")


async def test_outcomes_feed_the_diagnostics(tmp_path: Path) -> None:
    clock = Clock()
    source = cloud_source(tmp_path, clock, FakeCloud(clock))
    await source.token(SERIAL)
    source.outcome(accepted=False)
    source.outcome(accepted=True)
    status = source.status()
    assert status.last_success == START
    assert status.failures == 1
    assert status.token_expires_at == START + timedelta(days=365)


def test_diagnostic_metrics_read_the_auth_status() -> None:
    auth = AuthStatus(
        method="token",
        token_expires_at=START + timedelta(days=365),
        token_type="owner",
        last_success=START,
        failures=2,
    )
    snapshot = Snapshot(GatewayInfo(serial=SERIAL, firmware="7.6.175"), EnvoyData(), auth=auth)
    values = {r.entity.path: r.value for r in AUTH.readings(snapshot)}
    assert values == {
        "token_expires": "2026-01-01T00:00:00+00:00",
        "token_type": "owner",
        "auth_last_success": "2025-01-01T00:00:00+00:00",
        "auth_failures": 2,
    }
    metrics = {r.entity.path: r.entity.metric for r in AUTH.readings(snapshot)}
    assert all(m.category == "diagnostic" for m in metrics.values())
    assert metrics["token_expires"].device_class == "timestamp"
    empty = Snapshot(GatewayInfo(serial=SERIAL, firmware="5.0.62"), EnvoyData())
    assert list(AUTH.readings(empty)) == []


async def test_concurrent_renewals_share_one_cloud_call(tmp_path: Path) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    source = cloud_source(tmp_path, clock, cloud)
    await source.token(SERIAL)
    first, second = await asyncio.gather(source.renew(SERIAL), source.renew(SERIAL))
    assert first == second
    assert cloud.calls == 2  # the initial token and one renewal


async def test_a_refused_token_is_not_called_still_in_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    cloud = FakeCloud(clock)
    source = cloud_source(tmp_path, clock, cloud)
    await source.token(SERIAL)
    cloud.error = CloudUnreachable("cannot reach Enphase's cloud (example: ClientError)")
    with caplog.at_level(logging.WARNING), pytest.raises(CloudUnreachable):
        await source.renew(SERIAL)  # the gateway refused the current token
    assert "still using" not in caplog.text  # the caller reports this failure itself
    with pytest.raises(CloudUnreachable, match="not asked again before"):
        await source.renew(SERIAL)
    assert cloud.calls == 2
