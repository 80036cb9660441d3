"""Configuration: the only place settings are read (environment, `.env`, CLI flags)."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENLIGHTEN_LOGIN_URL = "https://enlighten.enphaseenergy.com/login/login.json?"
ENTREZ_TOKEN_URL = "https://entrez.enphaseenergy.com/tokens"  # noqa: S105 - a URL

Seconds = Annotated[float, Field(gt=0)]
_TOPIC_BAD = re.compile(r"[+#\x00-\x1f]")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and says what is wrong."""


class Cadence(BaseModel):
    """How often each polling lane reads a gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fast: Annotated[float, Field(ge=0.2, le=60)] = 1.0
    # a changed grid status is read again this soon, not a whole fast interval later
    grid_confirm: Annotated[float, Field(ge=0.05, le=10)] = 0.15
    battery: Annotated[float, Field(ge=1, le=300)] = 5.0
    normal: Annotated[float, Field(ge=5, le=3600)] = 60.0
    inverters: Annotated[float, Field(ge=30, le=3600)] = 300.0
    static: Annotated[float, Field(ge=300, le=604800)] = 86400.0
    quiet_start: time | None = time(22, 58)
    quiet_end: time | None = time(23, 6)
    quiet_fast: Annotated[float, Field(ge=1, le=600)] = 10.0


class GatewaySettings(BaseModel):
    """One gateway: where it is and how to authenticate to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Annotated[str, Field(min_length=1)]
    name: str | None = None
    serial: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    cadence: Cadence = Cadence()

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        value = value.strip()
        if "://" in value or "/" in value:
            raise ValueError("give a host name or address (optionally :port), not a URL")
        return value


class Settings(BaseSettings):
    """Every setting of the bridge; environment names are the upper-case field names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    envoy_host: str | None = None
    envoy_name: str | None = None
    envoy_serial: str | None = None
    envoy_username: str | None = None
    envoy_password: SecretStr | None = None
    envoy_password_file: Path | None = None
    envoy_token: SecretStr | None = None
    envoy_token_file: Path | None = None
    gateways: list[GatewaySettings] = []
    gateways_file: Path | None = None

    poll_interval: Annotated[float, Field(ge=5, le=3600)] = 60.0
    fast_interval: Annotated[float, Field(ge=0.2, le=60)] = 1.0
    grid_confirm_delay: Annotated[float, Field(ge=0.05, le=10)] = 0.15
    battery_interval: Annotated[float, Field(ge=1, le=300)] = 5.0
    inverter_interval: Annotated[float, Field(ge=30, le=3600)] = 300.0
    quiet_window: str = "22:58-23:06"
    heartbeat_interval: Annotated[float, Field(ge=10, le=3600)] = 300.0
    request_timeout: Annotated[float, Field(ge=1, le=120)] = 10.0

    mqtt_host: str | None = None
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_client_id: str | None = None
    mqtt_base_topic: str = "envoy2mqtt"
    mqtt_keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_tls_insecure: bool = False
    mqtt_event_buffer: Annotated[int, Field(ge=10, le=1_000_000)] = 10_000

    ha_discovery: bool = True
    ha_discovery_prefix: str = "homeassistant"
    ha_discovery_mode: Literal["entity", "device"] = "entity"
    ha_status_topic: str = "homeassistant/status"

    state_dir: Path = Path("./state")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    clamp_negative_production: bool = True
    grid_debounce: Annotated[int, Field(ge=1, le=10)] = 2
    soc_thresholds: list[int] = [20, 10]
    summary_interval: Annotated[float, Field(ge=1, le=60)] = 1.0
    pin_gateway_certificate: bool = False

    enlighten_login_url: str = ENLIGHTEN_LOGIN_URL
    entrez_token_url: str = ENTREZ_TOKEN_URL
    cloud_timeout: Annotated[float, Field(ge=1, le=300)] = 30.0
    token_renew_days: Annotated[float, Field(ge=0, le=300)] = 30.0

    @field_validator("mqtt_base_topic", "ha_discovery_prefix")
    @classmethod
    def _topic_root(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not value or _TOPIC_BAD.search(value):
            raise ValueError("must be a non-empty MQTT topic without '+', '#' or control chars")
        return value

    @field_validator("quiet_window")
    @classmethod
    def _quiet_window(cls, value: str) -> str:
        parse_quiet_window(value)
        return value

    @field_validator("soc_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @model_validator(mode="after")
    def _load_files(self) -> Self:
        for field in ("envoy_password", "envoy_token", "mqtt_password"):
            path: Path | None = getattr(self, f"{field}_file")
            if path is not None and getattr(self, field) is None:
                try:
                    secret = path.read_text(encoding="utf-8").strip()
                except OSError as err:
                    raise ValueError(
                        f"{field.upper()}_FILE: cannot read {path}: {err.strerror}"
                    ) from None
                object.__setattr__(self, field, SecretStr(secret))
        if self.gateways_file is not None and not self.gateways:
            object.__setattr__(self, "gateways", _read_gateways_file(self.gateways_file))
        return self

    def cadence(self) -> Cadence:
        """The polling cadence the flat settings describe."""
        start, end = parse_quiet_window(self.quiet_window)
        return Cadence(
            fast=self.fast_interval,
            grid_confirm=self.grid_confirm_delay,
            battery=self.battery_interval,
            normal=self.poll_interval,
            inverters=self.inverter_interval,
            quiet_start=start,
            quiet_end=end,
        )

    def gateway_list(self) -> list[GatewaySettings]:
        """Every configured gateway: the GATEWAYS list, or the single ENVOY_* one.

        A listed gateway polls at the flat POLL_INTERVAL, FAST_INTERVAL, ... settings, except
        for the `cadence` fields its own entry sets.
        """
        if self.gateways:
            flat = self.cadence()
            return [_inherit_cadence(gateway, flat) for gateway in self.gateways]
        if not self.envoy_host:
            raise ConfigError(
                "ENVOY_HOST: missing (set ENVOY_HOST, or GATEWAYS_FILE for several gateways)"
            )
        try:
            gateway = GatewaySettings(
                host=self.envoy_host,
                name=self.envoy_name,
                serial=self.envoy_serial,
                username=self.envoy_username,
                password=self.envoy_password,
                token=self.envoy_token,
                cadence=self.cadence(),
            )
        except ValidationError as err:
            raise ConfigError(describe_error(err, prefix="ENVOY_")) from None
        return [gateway]


def parse_quiet_window(value: str) -> tuple[time | None, time | None]:
    """Parse "HH:MM-HH:MM" (or "off"/empty) into a start and end time."""
    value = value.strip().lower()
    if value in ("", "off", "none", "disabled"):
        return None, None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not match:
        raise ValueError("expected HH:MM-HH:MM or 'off'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        return time(h1, m1), time(h2, m2)
    except ValueError as err:
        raise ValueError(f"expected HH:MM-HH:MM or 'off' ({err})") from None


def _inherit_cadence(gateway: GatewaySettings, flat: Cadence) -> GatewaySettings:
    """The gateway with the cadence fields its entry did not set taken from `flat`."""
    if "cadence" not in gateway.model_fields_set:
        return gateway.model_copy(update={"cadence": flat})
    own = gateway.cadence.model_dump(include=gateway.cadence.model_fields_set)
    return gateway.model_copy(update={"cadence": flat.model_copy(update=own)})


def _read_gateways_file(path: Path) -> list[GatewaySettings]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"GATEWAYS_FILE: cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"GATEWAYS_FILE: {path} is not valid YAML: {err}") from None
    entries = raw.get("gateways") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"GATEWAYS_FILE: {path} must hold a non-empty list of gateways")
    gateways = []
    for index, entry in enumerate(entries):
        try:
            gateways.append(GatewaySettings.model_validate(entry))
        except ValidationError as err:
            detail = describe_error(err, prefix="")
            raise ValueError(f"GATEWAYS_FILE: gateway #{index + 1}: {detail}") from None
    return gateways


def describe_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad setting and what is wrong with it (never its value)."""
    first = err.errors(include_input=False, include_url=False)[0]
    location = "_".join(str(part) for part in first["loc"] if not isinstance(part, int))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "missing"
    if not location:
        return message
    return f"{(prefix + location).upper()}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, `.env` and explicit overrides (CLI flags)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ConfigError(describe_error(err)) from None
