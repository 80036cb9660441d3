"""Tokens for firmware 7+: a fixed ENVOY_TOKEN, or Enlighten login with a cache.

The renewal rule is in `tokenstore.TokenInfo`; the one back-off for cloud calls is here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from envoy2mqtt.auth.enlighten import (
    TOKEN_PAGE,
    CloudUnreachable,
    Enlighten,
    LoginRejected,
    MfaRequired,
    SessionRefused,
    TokenError,
    TokenExpired,
    TokenService,
    UnknownSerial,
    describe,
    token_claims,
)
from envoy2mqtt.auth.store import StoredToken, TokenInfo, TokenStore
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.snapshot import AuthStatus
from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings

log = logging.getLogger(__name__)

__all__ = [
    "CloudTokens",
    "CloudUnreachable",
    "FixedToken",
    "LoginRejected",
    "MfaRequired",
    "SessionRefused",
    "TokenError",
    "TokenExpired",
    "UnknownSerial",
    "cloud_tokens",
    "describe",
    "token_claims",
]

Clock = Callable[[], datetime]
Origin = Literal["fixed", "cache", "cloud"]

DAY: Final = 86400.0
MIN_WAIT: Final = 1.0


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


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

    origin: Origin = "fixed"

    def __init__(
        self,
        token: str,
        *,
        renew_days: float = 30.0,
        clock: Clock = utc_now,
        check_every: float = DAY,
    ) -> None:
        """Keep the token (never logged or published)."""
        try:
            self.info = describe(token)
        except TokenError as err:
            raise TokenError(f"ENVOY_TOKEN: {err}") from None
        self._token = token
        self._renew_days = renew_days
        self._clock = clock
        self._check_every = check_every
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
        renew_at = self.info.renew_at(self._renew_days)
        if renew_at is None or self._warned:
            return self._check_every
        wait = (renew_at - self._clock()).total_seconds()
        return max(MIN_WAIT, min(self._check_every, wait))

    async def maintain(self, serial: str) -> bool:  # noqa: ARG002 - TokenSource's signature
        """Warn once as expiry nears; a fixed token is never replaced (always False)."""
        expires = self.info.expires_at
        if (
            expires is not None
            and not self._warned
            and self.info.due(self._clock(), self._renew_days)
        ):
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
        self._outcomes.note(accepted=accepted, now=self._clock())

    def status(self) -> AuthStatus:
        """Expiry and type of the token."""
        return self._outcomes.status(self.info)

    def _check(self, serial: str) -> None:
        expires = self.info.expires_at
        if not self.info.usable(self._clock()) and expires is not None:
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
        renew_days: float = 30.0,
        clock: Clock = utc_now,
        backoff: Backoff | None = None,
        check_every: float = DAY,
    ) -> None:
        """Describe where tokens come from; nothing is sent until a token is needed."""
        self.cloud = cloud
        self.store = store
        self.origin: Origin | None = None
        self._account = account
        self._serial = serial
        self._renew_days = renew_days
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._check_every = check_every
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
        now = self._clock()
        if self._holds(serial, now):
            assert self._current is not None
            return self._current.token
        stored = None if self._skip_cache else self.store.load(serial)
        self._skip_cache = False
        if stored is not None and stored.account.lower() == self._account.lower():
            try:
                info = describe(stored.token)
            except TokenError:
                info = None
            if info is not None and info.usable(now) and info.serial in (None, serial):
                self._use(stored, info, "cache")
                log.info(
                    "gateway %s: using the cached %s token (valid until %s)",
                    serial,
                    info.kind or "unknown",
                    _when(info.expires_at),
                )
                return stored.token
        return await self._fetch(serial)

    async def renew(self, serial: str) -> str:
        """A new token from the cloud (the gateway refused the current one)."""
        return await self._fetch(self._serial_for(serial), refused=True)

    def renewal_due(self) -> bool:
        """Whether the current token should be renewed now."""
        return self._info is not None and self._info.due(self._clock(), self._renew_days)

    def next_check(self) -> float:
        """Seconds until `maintain()` should run: daily, or earlier when renewal is due."""
        now = self._clock()
        if self._info is None:
            return self._check_every
        if self.renewal_due():
            wait = (self._retry_at - now).total_seconds() if self._retry_at else 0.0
        else:
            renew_at = self._info.renew_at(self._renew_days)
            wait = (renew_at - now).total_seconds() if renew_at else self._check_every
        return max(MIN_WAIT, min(self._check_every, wait))

    async def maintain(self, serial: str) -> bool:
        """Renew the token if due; True when a new one is ready to be presented."""
        if self._current is None or not self.renewal_due():
            return False
        if self._retry_at is not None and self._clock() < self._retry_at:
            return False
        try:
            await self._fetch(self._serial_for(serial))
        except TokenError:
            return False  # logged once by _fetch; the back-off sets the next attempt
        return True

    def outcome(self, *, accepted: bool) -> None:
        """Note whether the gateway accepted the token."""
        self._outcomes.note(accepted=accepted, now=self._clock())

    def status(self) -> AuthStatus:
        """Expiry and type of the current token, last success, failures."""
        return self._outcomes.status(self._info)

    def _serial_for(self, serial: str) -> str:
        serial = serial or self._serial or ""
        if not serial:
            raise TokenError("the gateway did not report its serial number: set ENVOY_SERIAL")
        return serial

    def _holds(self, serial: str, now: datetime) -> bool:
        return (
            self._current is not None
            and self._info is not None
            and self._current.serial == serial
            and self._info.usable(now)
            and not self._skip_cache
        )

    def _use(self, stored: StoredToken, info: TokenInfo, origin: Origin) -> None:
        self._current, self._info, self.origin = stored, info, origin

    async def _fetch(self, serial: str, *, refused: bool = False) -> str:
        seen = self._current
        async with self._lock:
            if self._current is not seen and self._current is not None:
                return self._current.token  # another caller fetched one meanwhile
            return await self._fetch_now(serial, refused=refused)

    async def _fetch_now(self, serial: str, *, refused: bool) -> str:
        now = self._clock()
        if self._retry_at is not None and now < self._retry_at and self._error is not None:
            raise type(self._error)(
                f"{self._error} (Enphase is not asked again before "
                f"{self._retry_at.isoformat(timespec='seconds')})"
            )
        try:
            token = await self.cloud.obtain(serial)
        except TokenError as err:
            self._failed(serial, err, refused=refused)
            raise
        info = describe(token)
        obtained = self._clock()
        stored = StoredToken(
            token=token, serial=serial, account=self._account, obtained_at=obtained
        )
        self.store.save(stored)
        self._use(stored, info, "cloud")
        self._skip_cache = False
        if self._error is not None:
            log.info("Enphase's token service works again")
        self._error = None
        if info.due(obtained, self._renew_days) or not info.usable(obtained):
            # a token that is due at once would be renewed in a loop: space the attempts
            self._retry_at = obtained + timedelta(seconds=self._backoff.failed())
        else:
            self._retry_at = None
            self._backoff.reset()
        log.info(
            "gateway %s: new %s token from Enphase (valid until %s)",
            serial,
            info.kind or "unknown",
            _when(info.expires_at),
        )
        return token

    def _failed(self, serial: str, err: TokenError, *, refused: bool) -> None:
        self._outcomes.failures += 1
        wait = self._backoff.failed(permanent=err.permanent)
        self._retry_at = self._clock() + timedelta(seconds=wait)
        repeated = self._error is not None and str(self._error) == str(err)
        self._error = err
        info = self._info
        if repeated or refused or info is None or not info.usable(self._clock()):
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


def cloud_tokens(settings: Settings, gateway: GatewaySettings) -> CloudTokens:
    """Tokens from Enlighten for this gateway's account, cached in STATE_DIR."""
    if not gateway.username or gateway.password is None:
        raise TokenError("set ENVOY_USERNAME and ENVOY_PASSWORD (your Enlighten account)")
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
        renew_days=settings.token_renew_days,
    )


def token_source(settings: Settings, gateway: GatewaySettings) -> FixedToken | CloudTokens | None:
    """Where this gateway's tokens come from (None: digest auth or no credentials)."""
    if gateway.token is not None:
        try:
            return FixedToken(
                gateway.token.get_secret_value(), renew_days=settings.token_renew_days
            )
        except TokenError as err:
            raise ConfigError(str(err)) from None
    if gateway.username and gateway.password:
        return cloud_tokens(settings, gateway)
    return None
