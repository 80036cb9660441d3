"""Start-up as a Home Assistant add-on: the add-on's options, and the broker from the Supervisor.

The Supervisor writes the options the user set to `/data/options.json` (their names are the
settings' own, lower-case) and, for an add-on that asks for `services: mqtt:want`, tells it
the broker it knows of (the Mosquitto add-on's host, port and the credentials it made for
add-ons) at `GET /services/mqtt`, as Zigbee2MQTT's add-on asks it. A broker the user set in
the options wins; the credentials are never logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from envoy2mqtt.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

EXTRA: Final = "extra_settings"  # the option holding any other setting as "NAME=value"
SUPERVISOR_TIMEOUT: Final = 10.0
BROKER_FIELDS: Final = {"host": "mqtt_host", "port": "mqtt_port", "ssl": "mqtt_tls"}
CREDENTIALS: Final = {"username": "mqtt_username", "password": "mqtt_password"}


class AddonEnvironment(BaseSettings):
    """What the Supervisor hands an add-on: its API, a token for it, the options file."""

    # The Supervisor's own variables, not the bridge's settings: no .env, and no CLI flags.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    supervisor_url: str = "http://supervisor"
    supervisor_token: SecretStr | None = None
    addon_options_file: Path = Path("/data/options.json")


@dataclass(frozen=True, slots=True)
class Startup:
    """The settings the add-on runs with, and where its broker came from."""

    settings: Settings
    broker_from: str

    def report(self) -> None:
        """Say which broker is used and why (host and port only: never the credentials)."""
        log.info(
            "add-on: MQTT broker %s:%s from %s",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.broker_from,
        )


async def addon_startup(environment: AddonEnvironment | None = None) -> Startup:
    """Settings from the add-on options, with the Supervisor's broker unless the user set one."""
    env = environment or AddonEnvironment()
    options = option_settings(read_options(env.addon_options_file))
    options.setdefault("state_dir", env.addon_options_file.parent)  # /data survives updates
    broker_from = "the add-on options"
    if not options.get("mqtt_host"):
        # what the user did set (a user name of their own, say) wins over the Supervisor's
        options = await supervisor_broker(env) | options
        broker_from = "the Supervisor's MQTT service"
    return Startup(load_settings(**options), broker_from)


def read_options(path: Path) -> dict[str, object]:
    """The add-on options as the Supervisor wrote them."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no add-on options at {path}: `addon-run` is for the Home Assistant add-on "
            "(elsewhere use `envoy2mqtt run`)"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read the add-on options {path}: {err.strerror}") from None
    except ValueError:
        raise ConfigError(f"the add-on options {path} are not valid JSON") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the add-on options {path} are not a JSON object")
    return raw


def option_settings(options: dict[str, object]) -> dict[str, object]:
    """Setting overrides from the options: empty ones left out, `extra_settings` spread."""
    out: dict[str, object] = {}
    for key, value in options.items():
        if key == EXTRA:
            out.update(_extra(value))
        elif key not in Settings.model_fields:
            log.warning("add-on option %s is no setting of this version; ignored", key)
        elif value is not None and value != "":
            out[key] = value
    return out


def _extra(lines: object) -> dict[str, str]:
    """`["STATE_INTERVAL_POWER=10", ...]`: any setting the options do not list."""
    if not isinstance(lines, list):
        raise ConfigError(f"{EXTRA}: expected a list of NAME=value lines")
    out: dict[str, str] = {}
    for line in lines:
        name, equals, value = str(line).partition("=")
        key = name.strip().lower()
        if not equals or key not in Settings.model_fields:
            raise ConfigError(f"{EXTRA}: {name.strip()!r} is not NAME=value with a known setting")
        out[key] = value.strip()
    return out


async def supervisor_broker(env: AddonEnvironment) -> dict[str, object]:
    """The broker the Supervisor offers add-ons (Mosquitto's), as setting overrides."""
    if env.supervisor_token is None:
        raise ConfigError(
            "MQTT_HOST: not in the add-on options, and no SUPERVISOR_TOKEN to ask the Supervisor "
            "for its broker: set mqtt_host in the add-on options"
        )
    url = f"{env.supervisor_url.rstrip('/')}/services/mqtt"
    headers = {"Authorization": f"Bearer {env.supervisor_token.get_secret_value()}"}
    timeout = aiohttp.ClientTimeout(total=SUPERVISOR_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            status, body = response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        why = str(err) or type(err).__name__
        raise ConfigError(
            f"cannot ask the Supervisor at {env.supervisor_url} for the MQTT broker ({why}): "
            "set mqtt_host (and mqtt_username, mqtt_password) in the add-on options"
        ) from None
    data = body.get("data") if isinstance(body, dict) else None
    if status != 200 or not isinstance(data, dict) or not data.get("host"):
        raise ConfigError(_refusal(status, body))
    out = {setting: data[key] for key, setting in BROKER_FIELDS.items() if key in data}
    out |= {setting: data[key] for key, setting in CREDENTIALS.items() if data.get(key)}
    return out


def _refusal(status: int, body: object) -> str:
    """What the Supervisor's answer means for the user, in one line."""
    said = body.get("message") if isinstance(body, dict) else None
    said = f"{status}: {said}" if said else str(status)
    if status in (401, 403):
        return (
            f"the Supervisor refused to tell the MQTT broker ({said}): the add-on needs "
            "`services: [mqtt:want]` in its config.yaml"
        )
    return (
        f"the Supervisor offers no MQTT broker ({said}): install and start the Mosquitto "
        "broker add-on, or set mqtt_host in the add-on options"
    )
