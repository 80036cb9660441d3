"""Where a gateway's token comes from, and when it is renewed.

A fixed ENVOY_TOKEN (`FixedToken`: used as it is, with a warning as expiry nears) or an
Enlighten account (`CloudTokens`: the current token, else the one cached in STATE_DIR, else a
fresh one from Enphase's cloud); `token_source` picks one from the settings. A token is
renewed once less than `min(TOKEN_RENEW_DAYS, lifetime / 4)` is left (`Renewal`): an owner
token (a year) renews 30 days ahead, an installer token (12 hours) 3 hours ahead; a flat 30
days would renew a 12-hour token on every check, and a daily check alone would let it lapse,
so the next check is due at the earlier of one day and the renewal time. How long to wait
after a failed cloud call is `core.backoff.Backoff`'s, and it holds for every caller. What
became of the tokens at the gateway (`Outcomes`) feeds the diagnostic metrics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from envoy2mqtt.auth.claims import TokenInfo, describe
from envoy2mqtt.auth.enlighten import Enlighten, TokenService
from envoy2mqtt.auth.errors import TOKEN_PAGE, TokenError, TokenExpired
from envoy2mqtt.auth.store import StoredToken, TokenStore
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import AuthStatus
from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings

log = logging.getLogger(__name__)


DAY: Final = 86400.0
MIN_WAIT: Final = 1.0  # never spin: a check that is due now still waits this long


@dataclass(frozen=True, slots=True)
class Renewal:
    """The renewal policy: renew `min(days, lifetime / 4)` before expiry, check at least daily."""

    days: float = 30.0
    check_every: float = DAY

    def renew_at(self, info: TokenInfo) -> datetime | None:
        """When renewal becomes due: `min(days, lifetime / 4)` before expiry (None: never)."""
        if info.expires_at is None:
            return None
        return info.expires_at - min(timedelta(days=self.days), info.lifetime / 4)

    def due(self, info: TokenInfo, now: datetime) -> bool:
        """Whether renewal is due."""
        renew_at = self.renew_at(info)
        return renew_at is not None and now >= renew_at

    def next_check(
        self, info: TokenInfo | None, now: datetime, *, retry_at: datetime | None = None
    ) -> float:
        """Seconds until the token is looked at again: daily, at renewal, or at `retry_at`."""
        renew_at = self.renew_at(info) if info is not None else None
        if renew_at is None:
            return self.check_every
        if now >= renew_at:  # due: as soon as the back-off allows
            wait = (retry_at - now).total_seconds() if retry_at else 0.0
        else:
            wait = (renew_at - now).total_seconds()
        return max(MIN_WAIT, min(self.check_every, wait))


@dataclass(slots=True)
class Outcomes:
    """What became of our tokens: when the gateway last accepted one, and how many failed."""

    last_success: datetime | None = None
    failures: int = 0  # refused by the gateway, or not obtained from the cloud

    def note(self, *, accepted: bool, now: datetime) -> None:
        """One answer of the gateway to a token."""
        if accepted:
            self.last_success = now
        else:
            self.failures += 1

    def status(self, info: TokenInfo | None) -> AuthStatus:
        """Expiry and type of the token `info` describes, last success, failures."""
        return AuthStatus(
            method="token",
            token_expires_at=info.expires_at if info else None,
            token_type=info.kind if info else None,
            last_success=self.last_success,
            failures=self.failures,
        )


class FixedToken:
    """The user's own ENVOY_TOKEN: used as it is, the cloud is never contacted."""

    origin: Literal["fixed"] = "fixed"

    def __init__(
        self, token: str, *, renewal: Renewal | None = None, clock: Clock | None = None
    ) -> None:
        """Keep the token (never logged or published)."""
        try:
            self.info = describe(token)
        except TokenError as err:
            raise TokenError(f"ENVOY_TOKEN: {err}") from None
        self.renewal = renewal or Renewal()
        self._token = token
        self._clock = clock or Clock()
        self._outcomes = Outcomes()
        self._warned = False

    async def token(self, serial: str) -> str:
        """The fixed token, unless it has expired or is for another gateway."""
        self._check(serial)
        return self._token

    async def renew(self, serial: str) -> str:
        """A fixed token cannot be renewed: say so plainly."""
        self._check(serial)
        raise TokenError(
            "the gateway rejected ENVOY_TOKEN (expired or for another gateway); create a new "
            f"token at {TOKEN_PAGE}, or set ENVOY_USERNAME and ENVOY_PASSWORD"
        )

    def next_check(self) -> float:
        """Seconds until the expiry should be looked at again."""
        if self._warned:
            return self.renewal.check_every
        return self.renewal.next_check(self.info, self._now())

    async def maintain(self, serial: str) -> bool:  # noqa: ARG002 - TokenSource's signature
        """Warn once as expiry nears; a fixed token is never replaced (always False)."""
        expires = self.info.expires_at
        if expires is None or self._warned or not self.renewal.due(self.info, self._now()):
            return False
        self._warned = True
        log.warning(
            "ENVOY_TOKEN expires on %s: create a new token at %s, or set ENVOY_USERNAME "
            "and ENVOY_PASSWORD so that envoy2mqtt renews tokens by itself",
            expires.date().isoformat(),
            TOKEN_PAGE,
        )
        return False

    def outcome(self, *, accepted: bool) -> None:
        """Note whether the gateway accepted the token."""
        self._outcomes.note(accepted=accepted, now=self._now())

    def status(self) -> AuthStatus:
        """Expiry and type of the token."""
        return self._outcomes.status(self.info)

    def _now(self) -> datetime:
        # in UTC, as the cache stores it (the clock's wall time is local)
        return self._clock.wall().astimezone(UTC)

    def _check(self, serial: str) -> None:
        expires = self.info.expires_at
        if not self.info.usable(self._now()) and expires is not None:
            raise TokenExpired(
                f"ENVOY_TOKEN expired on {expires.isoformat(timespec='minutes')}: create a new "
                f"token at {TOKEN_PAGE}, or set ENVOY_USERNAME and ENVOY_PASSWORD so that "
                "envoy2mqtt renews tokens by itself"
            )
        if serial and self.info.serial is not None and self.info.serial != serial:
            raise TokenError(
                f"ENVOY_TOKEN was issued for gateway {self.info.serial}, but this gateway is "
                f"{serial}: create a token for this gateway at {TOKEN_PAGE}"
            )


Origin = Literal["cache", "cloud"]


class CloudTokens:
    """Tokens from Enphase's cloud for an Enlighten account, cached in STATE_DIR.

    All cloud attempts go through `_fetch`, which holds the one back-off: after a failure no
    request reaches Enphase before the back-off has passed, whoever asks.
    """

    def __init__(
        self,
        cloud: TokenService,
        store: TokenStore,
        *,
        account: str,
        serial: str | None = None,
        renewal: Renewal | None = None,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Describe where tokens come from; nothing is sent until a token is needed."""
        self.cloud = cloud
        self.store = store
        self.renewal = renewal or Renewal()
        self.origin: Origin | None = None
        self._account = account
        self._serial = serial
        self._clock = clock or Clock()
        self._backoff = backoff or Backoff()
        self._current: StoredToken | None = None
        self._info: TokenInfo | None = None
        self._retry_at: datetime | None = None
        self._error: TokenError | None = None
        self._skip_cache = False
        self._outcomes = Outcomes()
        self._lock = asyncio.Lock()

    @property
    def info(self) -> TokenInfo | None:
        """The claims of the current token."""
        return self._info

    def skip_cache(self) -> None:
        """Make the next `token()` ask the cloud even if a valid token is cached."""
        self._skip_cache = True

    async def token(self, serial: str) -> str:
        """The current token, else the cached one (no cloud call), else a new one."""
        serial = self._serial_for(serial)
        now = self._now()
        held = self._held(serial, now)
        if held is not None:
            return held
        cached = self._cached(serial, now)
        self._skip_cache = False
        return cached if cached is not None else await self._fetch(serial)

    async def renew(self, serial: str) -> str:
        """A new token from the cloud (the gateway refused the current one)."""
        return await self._fetch(self._serial_for(serial), refused=True)

    def renewal_due(self) -> bool:
        """Whether the current token should be renewed now."""
        return self._info is not None and self.renewal.due(self._info, self._now())

    def next_check(self) -> float:
        """Seconds until `maintain()` should run: daily, or earlier when renewal is due."""
        return self.renewal.next_check(self._info, self._now(), retry_at=self._retry_at)

    async def maintain(self, serial: str) -> bool:
        """Renew the token if due; True when a new one is ready to be presented."""
        if self._current is None or not self.renewal_due():
            return False
        if self._retry_at is not None and self._now() < self._retry_at:
            return False
        try:
            await self._fetch(self._serial_for(serial))
        except TokenError:
            return False  # logged once by _fetch; the back-off sets the next attempt
        return True

    def outcome(self, *, accepted: bool) -> None:
        """Note whether the gateway accepted the token."""
        self._outcomes.note(accepted=accepted, now=self._now())

    def status(self) -> AuthStatus:
        """Expiry and type of the current token, last success, failures."""
        return self._outcomes.status(self._info)

    def _now(self) -> datetime:
        # in UTC, as the cache stores it (the clock's wall time is local)
        return self._clock.wall().astimezone(UTC)

    def _serial_for(self, serial: str) -> str:
        serial = serial or self._serial or ""
        if not serial:
            raise TokenError("the gateway did not report its serial number: set ENVOY_SERIAL")
        return serial

    def _held(self, serial: str, now: datetime) -> str | None:
        current, info = self._current, self._info
        if current is None or info is None or self._skip_cache:
            return None
        return current.token if current.serial == serial and info.usable(now) else None

    def _cached(self, serial: str, now: datetime) -> str | None:
        stored = None if self._skip_cache else self.store.load(serial)
        if stored is None or stored.account.lower() != self._account.lower():
            return None
        try:
            info = describe(stored.token)
        except TokenError:
            return None
        if not info.usable(now) or info.serial not in (None, serial):
            return None
        self._use(stored, info, "cache")
        log.info(
            "gateway %s: using the cached %s token (valid until %s)",
            serial,
            info.kind or "unknown",
            _when(info.expires_at),
        )
        return stored.token

    def _use(self, stored: StoredToken, info: TokenInfo, origin: Origin) -> None:
        self._current, self._info, self.origin = stored, info, origin

    async def _fetch(self, serial: str, *, refused: bool = False) -> str:
        seen = self._current
        async with self._lock:
            if self._current is not seen and self._current is not None:
                return self._current.token  # another caller fetched one meanwhile
            return await self._fetch_now(serial, refused=refused)

    async def _fetch_now(self, serial: str, *, refused: bool) -> str:
        error, retry_at = self._error, self._retry_at
        if error is not None and retry_at is not None and self._now() < retry_at:
            raise type(error)(
                f"{error} (Enphase is not asked again before "
                f"{retry_at.isoformat(timespec='seconds')})"
            )
        try:
            token = await self.cloud.obtain(serial)
        except TokenError as err:
            self._failed(serial, err, refused=refused)
            raise
        info = describe(token)
        stored = StoredToken(
            token=token, serial=serial, account=self._account, obtained_at=self._now()
        )
        self._obtained(stored, info)
        log.info(
            "gateway %s: new %s token from Enphase (valid until %s)",
            serial,
            info.kind or "unknown",
            _when(info.expires_at),
        )
        return token

    def _obtained(self, stored: StoredToken, info: TokenInfo) -> None:
        self.store.save(stored)
        self._use(stored, info, "cloud")
        self._skip_cache = False
        if self._error is not None:
            log.info("Enphase's token service works again")
        self._error = None
        obtained = stored.obtained_at
        if self.renewal.due(info, obtained) or not info.usable(obtained):
            # a token that is due at once would be renewed in a loop: space the attempts
            self._retry_at = obtained + timedelta(seconds=self._backoff.failed())
        else:
            self._retry_at = None
            self._backoff.reset()

    def _failed(self, serial: str, err: TokenError, *, refused: bool) -> None:
        self._outcomes.failures += 1
        wait = self._backoff.failed(permanent=err.permanent)
        self._retry_at = self._now() + timedelta(seconds=wait)
        repeated = self._error is not None and str(self._error) == str(err)
        self._error = err
        info = self._info
        if repeated or refused or info is None or not info.usable(self._now()):
            return  # without a token the gateway accepts, the caller reports the error
        log.warning(
            "gateway %s: cannot renew the token: %s; still using the current one (valid until "
            "%s), next attempt in %.0f s",
            serial,
            err,
            _when(info.expires_at),
            wait,
        )


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "an unknown time"


def token_source(settings: Settings, gateway: GatewaySettings) -> FixedToken | CloudTokens | None:
    """Where this gateway's tokens come from (None: digest auth or no credentials)."""
    renewal = Renewal(days=settings.token_renew_days)
    if gateway.token is not None:
        try:
            return FixedToken(gateway.token.get_secret_value(), renewal=renewal)
        except TokenError as err:
            raise ConfigError(str(err)) from None
    if not gateway.username or not gateway.password:
        return None
    cloud = Enlighten(
        gateway.username,
        gateway.password.get_secret_value(),
        login_url=settings.enlighten_login_url,
        token_url=settings.entrez_token_url,
        timeout=settings.cloud_timeout,
    )
    return CloudTokens(
        cloud,
        TokenStore(settings.state_dir),
        account=gateway.username,
        serial=gateway.serial,
        renewal=renewal,
    )
