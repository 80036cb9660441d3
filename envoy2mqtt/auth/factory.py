"""The token source a gateway's settings ask for: ENVOY_TOKEN, an Enlighten account, or none."""

from __future__ import annotations

from envoy2mqtt.auth.cloud import CloudTokens
from envoy2mqtt.auth.enlighten import Enlighten
from envoy2mqtt.auth.errors import TokenError
from envoy2mqtt.auth.fixed import FixedToken
from envoy2mqtt.auth.renewal import Renewal
from envoy2mqtt.auth.store import TokenStore
from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings


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
