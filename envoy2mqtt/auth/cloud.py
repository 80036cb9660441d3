"""Tokens for an Enlighten account: the current one, else the cached one, else a fresh one.

When to renew is `renewal.Renewal`'s call; how long to wait after a failed cloud call is
`core.backoff.Backoff`'s, and it holds for every caller.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Literal

from envoy2mqtt.auth.claims import TokenInfo, describe
from envoy2mqtt.auth.enlighten import TokenService
from envoy2mqtt.auth.errors import TokenError
from envoy2mqtt.auth.outcomes import Outcomes
from envoy2mqtt.auth.renewal import Renewal
from envoy2mqtt.auth.store import StoredToken, TokenStore
from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import AuthStatus

log = logging.getLogger(__name__)

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
