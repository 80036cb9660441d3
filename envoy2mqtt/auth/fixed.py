"""The user's own ENVOY_TOKEN (firmware 7+): used as it is, with a warning as expiry nears."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from envoy2mqtt.auth.claims import describe
from envoy2mqtt.auth.errors import TOKEN_PAGE, TokenError, TokenExpired
from envoy2mqtt.auth.outcomes import Outcomes
from envoy2mqtt.auth.renewal import Renewal
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import AuthStatus

log = logging.getLogger(__name__)


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
