"""Whether a gateway is online, as its reads say, and what to do when it refuses us."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayAuthError, GatewayError
from envoy2mqtt.mqtt.publisher import GatewayPublisher

log = logging.getLogger(__name__)

# offline after two failed reads in a row: two fast-lane cycles for a gateway that answers
# errors or refuses connections, at most 2 x REQUEST_TIMEOUT + two cycles for one that hangs
OFFLINE_AFTER_FAILURES: Final = 2


@dataclass(slots=True)
class Availability:
    """Counts failed reads and publishes the gateway's availability when it changes."""

    host: str
    publisher: GatewayPublisher | None = None
    failures: int = 0
    _reauthed: bool = False

    def mark(
        self,
        *,
        ok: bool,
        err: Exception | None = None,
        force: bool = False,
        tolerated: bool = False,
    ) -> None:
        """Note one read: good, or failed (offline after a few in a row, or at once: force).

        `tolerated`: a failure that costs only its own values (logged), not the gateway's
        availability: a slow page while a fast lane watches the gateway, or any read in the
        gateway's nightly housekeeping window.
        """
        publisher = self.publisher
        if tolerated and not ok:
            log.warning("gateway %s: %s (its values stay as they were)", self.host, err)
            return
        if ok:
            self.failures = 0
            self._reauthed = False
            if publisher is not None and publisher.available is not True:
                log.info("gateway %s is online", publisher.info.serial)
                publisher.set_available(True)
            return
        self.failures += 1
        if (
            publisher is not None
            and publisher.available is not False
            and (force or self.failures >= OFFLINE_AFTER_FAILURES)
        ):
            log.warning("gateway %s is offline: %s", publisher.info.serial, err)
            publisher.set_available(False)

    async def reauthenticate(self, client: GatewayClient, err: GatewayAuthError) -> None:
        """On 401/403: re-check the token, renewing it once if refused; then the pace backs off."""
        self.mark(ok=False, err=err)
        if self._reauthed:
            return
        self._reauthed = True
        log.warning("gateway %s refused our credentials; authenticating again", self.host)
        try:
            await client.authenticate()
        except GatewayError as again:
            log.error("gateway %s: %s", self.host, again)
