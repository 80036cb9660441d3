"""Every setting of the bridge, read from the environment, `.env` and CLI flags.

Each field's docstring is its description: `envoy2mqtt run --help` shows it with the default,
and `.env.example` documents the same settings for a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from envoy2mqtt.settings.forms import (
    OLDEST_HA,
    HaRelease,
    HaReleaseText,
    IntList,
    default_state_dir,
    describe_source_error,
)
from envoy2mqtt.settings.gateways import (
    BatteryInterval,
    Cadence,
    ConfigError,
    FastInterval,
    GatewaySettings,
    GridConfirmDelay,
    InverterInterval,
    PollInterval,
    describe_error,
    inherit_cadence,
    parse_quiet_window,
    read_gateways_file,
)

ENLIGHTEN_LOGIN_URL = "https://enlighten.enphaseenergy.com/login/login.json?"
ENTREZ_TOKEN_URL = "https://entrez.enphaseenergy.com/tokens"  # noqa: S105 - a URL
_TOPIC_BAD = re.compile(r"[+#\x00-\x1f]")


class Settings(BaseSettings):
    """Every setting of the bridge; environment names are the upper-case field names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
        use_attribute_docstrings=True,
    )

    envoy_host: str | None = None  # unset or "auto": found by mDNS (gateway.finder)
    """The gateway's host name or address (optionally :port); unset or `auto`: found by mDNS."""
    envoy_name: str | None = None
    """A name for the gateway's device in Home Assistant (unset: Envoy <serial>)."""
    envoy_serial: str | None = None
    """The gateway's serial number: picks it among those mDNS finds, names its token."""
    envoy_username: str | None = None
    """Enlighten account e-mail (firmware 7+), or `envoy`/`installer` on older firmware."""
    envoy_password: SecretStr | None = None
    """The Enlighten (or local) password; prefer ENVOY_PASSWORD_FILE."""
    envoy_password_file: Path | None = None
    """A file holding ENVOY_PASSWORD (Docker secrets)."""
    envoy_token: SecretStr | None = None
    """A fixed JWT for firmware 7+ (never renewed); instead of username and password."""
    envoy_token_file: Path | None = None
    """A file holding ENVOY_TOKEN."""
    gateways: list[GatewaySettings] = []
    """Several gateways as JSON: a list of {host, name, serial, username, password, token}."""
    gateways_file: Path | None = None
    """Several gateways from a YAML file (the same fields as GATEWAYS)."""
    mdns_interfaces: str = ""  # addresses of the interfaces to find gateways on (empty: all)
    """Addresses of the interfaces to look for gateways on, comma-separated (empty: all)."""

    poll_interval: PollInterval = 60.0
    """Seconds between full reads (everything but inverters)."""
    fast_interval: FastInterval = 1.0
    """Seconds between reads of the grid relay and the CTs (the grid watch)."""
    grid_confirm_delay: GridConfirmDelay = 0.15
    """Seconds after a changed grid status before the confirming read."""
    battery_interval: BatteryInterval = 5.0
    """Seconds between battery reads (state of charge, power)."""
    inverter_interval: InverterInterval = 300.0
    """Seconds between inverter reads (they report every 5 minutes)."""
    quiet_window: str = "22:58-23:06"
    """The gateway's nightly maintenance, HH:MM-HH:MM on its own clock, or `off`."""
    heartbeat_interval: Annotated[float, Field(ge=10, le=3600)] = 300.0
    """Unchanged values are re-published at least this often (seconds)."""
    # retained state at a rate Home Assistant's history can live with (events are not slowed)
    state_interval_energy: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """Least seconds between two publishes of an energy counter's state (0: every change)."""
    state_interval_power: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """Least seconds between two publishes of a power's state (0: every change)."""
    state_interval_measurement: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """Least seconds between two publishes of a voltage, current, SOC... (0: every change)."""
    state_power_jump: Annotated[float, Field(ge=0, le=1_000_000)] = 500.0
    """A power moving by at least this many watts is published at once all the same (0: never)."""
    request_timeout: Annotated[float, Field(ge=1, le=120)] = 5.0
    """Seconds one fast gateway request (the /ivp/* API, about 0.4 s) may take once sent."""
    slow_request_timeout: Annotated[float, Field(ge=5, le=600)] = 120.0
    """Seconds one slow page (production.json, inventory.json, home.json) may take once sent."""

    mqtt_host: str | None = None
    """The MQTT broker's host name or address."""
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    """The MQTT broker's port."""
    mqtt_username: str | None = None
    """The MQTT user name."""
    mqtt_password: SecretStr | None = None
    """The MQTT password; prefer MQTT_PASSWORD_FILE."""
    mqtt_password_file: Path | None = None
    """A file holding MQTT_PASSWORD."""
    mqtt_client_id: str | None = None
    """The MQTT client id (unset: envoy2mqtt-<random>)."""
    mqtt_base_topic: str = "envoy2mqtt"
    """The first topic level of everything the bridge publishes."""
    mqtt_keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    """MQTT keep-alive, seconds."""
    mqtt_tls: bool = False
    """Connect to the broker over TLS."""
    mqtt_ca_file: Path | None = None
    """CA certificate(s) to verify the broker with (turns TLS on)."""
    mqtt_cert_file: Path | None = None
    """Client certificate for the broker (TLS)."""
    mqtt_key_file: Path | None = None
    """The client certificate's key."""
    mqtt_tls_insecure: bool = False
    """Do not verify the broker's certificate (testing only)."""
    mqtt_event_buffer: Annotated[int, Field(ge=10, le=1_000_000)] = 10_000
    """Events kept through a broker outage; past it the oldest are dropped (and counted)."""

    ha_discovery: bool = True
    """Publish Home Assistant MQTT discovery configs."""
    ha_discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix."""
    ha_discovery_mode: Literal["entity", "device"] = "entity"
    """`entity`: one config per entity; `device`: one per device (Home Assistant 2024.11+)."""
    ha_status_topic: str = "homeassistant/status"
    """Home Assistant's birth topic: on `online` discovery and states are re-sent."""
    ha_compat: HaReleaseText = OLDEST_HA
    """The oldest Home Assistant release the discovery payloads must suit (2024.1 .. 2026.11)."""

    @field_validator("ha_compat")
    @classmethod
    def _ha_release(cls, value: HaRelease) -> HaRelease:
        if value < OLDEST_HA:
            raise ValueError(f"give the oldest Home Assistant release to support, {OLDEST_HA}+")
        return value

    state_dir: Path = Field(default_factory=default_state_dir)
    """Where the token cache, counters, certificate pins and health file live."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    clamp_negative_production: bool = True
    """Publish small negative night-time production as 0."""
    grid_debounce: Annotated[int, Field(ge=1, le=10)] = 2
    """Consecutive reads before a changed grid status is believed."""
    soc_thresholds: IntList = [20, 10]
    """Battery state-of-charge thresholds (percent) that raise an event when crossed."""
    battery_state_dwell: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """Seconds a new battery state must hold before it is published (no `battery` event before)."""
    battery_state_band: Annotated[float, Field(ge=0, le=100_000)] = 350.0
    """Watts either side of zero a battery reads idle in (self-consumption hovers ±50-300 W)."""
    runway_smoothing: Annotated[float, Field(ge=0, le=3600)] = 300.0
    """Seconds the backup runway is averaged over (the house load's time constant; 0 = none)."""
    summary_interval: Annotated[float, Field(ge=1, le=60)] = 1.0
    """The summary topic for small displays is published at most this often (seconds)."""
    pin_gateway_certificate: bool = False
    """Pin the gateway's TLS certificate on first use and refuse a changed one."""
    health_gateway_grace: Annotated[float, Field(ge=30, le=86400)] = 300.0
    """`envoy2mqtt health` fails when no gateway was online this long (seconds)."""

    enlighten_login_url: str = ENLIGHTEN_LOGIN_URL
    """Enlighten's login service (tests point it at a simulated one)."""
    entrez_token_url: str = ENTREZ_TOKEN_URL
    """Enphase's token service (tests point it at a simulated one)."""
    cloud_timeout: Annotated[float, Field(ge=1, le=300)] = 30.0
    """Upper bound for one call to Enphase's cloud (seconds)."""
    token_renew_days: Annotated[float, Field(ge=0, le=300)] = 30.0
    """Renew a token when less than this many days (or a quarter of its life) is left."""

    loads_file: Path | None = None  # load shedding (README), checked by shedding.loads
    """Loads to shed when the grid fails, from a YAML file (README: Load shedding)."""
    loads: str | None = None  # the same as inline JSON
    """The same loads as inline JSON."""
    restore_after: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    """Seconds the grid must be back and stable before shed loads are restored."""
    restore_stagger: Annotated[float, Field(ge=0, le=3_600)] = 10.0
    """Seconds between restoring one load and the next."""
    shedding_dry_run: bool = False
    """Log and publish what load shedding would do, commanding nothing."""
    # two-way control (README "Controls"): nothing is writable unless CONTROLS says so
    controls: Literal["none", "battery", "all"] = "none"
    """What may be written to the gateway: `none`, `battery` or `all` (README: Controls)."""
    control_watch: Annotated[float, Field(ge=0, le=86_400)] = 300.0  # revert watch, seconds
    """Seconds a written value is watched for the gateway (or the cloud) reverting it."""
    control_reassert: bool = False  # write a reverted storage setting once more
    """Write a reverted storage setting once more."""
    control_rate_limit: Annotated[float, Field(ge=0, le=3_600)] = 10.0  # s per control write
    """Least seconds between two writes of one control; more are refused."""
    control_settle: Annotated[float, Field(ge=0, le=120)] = 5.0  # s before "ignored"
    """Seconds a local battery (or generator) write may take to show before it is `ignored`."""
    battery_control_path: Literal["auto", "local", "enlighten"] = "auto"
    """How battery settings are written: `local` (the gateway's tariff, firmware that honours
    it), `enlighten` (the cloud, firmware D8.3) or `auto` (learn which works)."""
    control_cloud_timeout: Annotated[float, Field(gt=0, le=900)] = 30.0
    """Seconds a battery write through Enlighten may take to show on the gateway."""
    control_relay_open_timeout: Annotated[float, Field(gt=0, le=900)] = 60.0
    """Seconds the grid relay may take to open after the command (it tops the battery up)."""
    control_relay_close_timeout: Annotated[float, Field(gt=0, le=900)] = 30.0
    """Seconds the grid relay may take to close after the command."""
    control_contact_timeout: Annotated[float, Field(gt=0, le=300)] = 5.0
    """Seconds a dry contact may take to show a write."""
    control_contact_phantom: Annotated[float, Field(ge=0, le=600)] = 90.0
    """Seconds after the bridge's own settings write in which dry contacts may read `open`
    although nothing moved (D8.3: 5-90 s); a change then is not taken for a revert."""

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
            object.__setattr__(self, "gateways", read_gateways_file(self.gateways_file))
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
            return [inherit_cadence(gateway, flat) for gateway in self.gateways]
        try:
            gateway = GatewaySettings(
                host=self.envoy_host or "auto",
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


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, `.env` and explicit overrides (CLI flags)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        raise ConfigError(describe_error(err)) from None
    except SettingsError as err:  # a source could not decode a value (GATEWAYS not JSON, ...)
        raise ConfigError(describe_source_error(err)) from None
    except UnicodeDecodeError:
        raise ConfigError(".env: not UTF-8 text") from None
