"""Configuration: the only place settings are read (environment, `.env`, CLI flags, files).

`environment` is the `Settings` model (every setting, each with its description); `gateways`
one gateway's settings and cadence (GATEWAYS / GATEWAYS_FILE) and the one-line error for a bad
value; `forms` the forms a value takes in text (lists: `20,10` or JSON) and the default
STATE_DIR; `flags` the settings as command-line flags, grouped by topic for `--help`. Pure
pydantic models; may import: pydantic, pydantic-settings, PyYAML, the standard library; nothing
else of envoy2mqtt.
"""

from envoy2mqtt.settings.environment import (
    ENLIGHTEN_LOGIN_URL,
    ENTREZ_TOKEN_URL,
    Settings,
    load_settings,
)
from envoy2mqtt.settings.gateways import (
    Cadence,
    ConfigError,
    GatewaySettings,
    describe_error,
    parse_quiet_window,
)

__all__ = [
    "ENLIGHTEN_LOGIN_URL",
    "ENTREZ_TOKEN_URL",
    "Cadence",
    "ConfigError",
    "GatewaySettings",
    "Settings",
    "describe_error",
    "load_settings",
    "parse_quiet_window",
]
