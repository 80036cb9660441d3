"""The add-on's start-up: options -> settings, the broker from a stand-in Supervisor.

The stand-in answers `GET /services/mqtt` on 127.0.0.1 as the Supervisor does (the envelope
`{"result": "ok", "data": {...}}`, `400 Service not enabled` without a broker, `403` for an
add-on that did not ask for the service); the end-to-end test then runs `envoy2mqtt addon-run`
for real against it, a real Mosquitto with a password and a simulated gateway.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from envoy2mqtt.addon import AddonEnvironment, addon_startup, option_settings
from envoy2mqtt.healthcheck import HEALTH_FILE
from envoy2mqtt.settings import ConfigError
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, MosquittoFactory, Recorder

TOKEN = "supervisor-token-for-tests-only"  # the stand-in's, not a secret
BROKER_PASSWORD = "mosquitto-addon-password-xyz"  # the test broker's


@dataclass
class Supervisor:
    """A stand-in for the Supervisor's services API."""

    service: dict[str, object] | None  # None: no broker add-on installed
    status: int = 200
    requests: list[str] = field(default_factory=list)
    url: str = ""

    async def mqtt(self, request: web.Request) -> web.Response:
        self.requests.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        if self.status == 403:
            return web.json_response(
                {"result": "error", "message": "No access to mqtt service!"}, status=403
            )
        if self.service is None:
            return web.json_response(
                {"result": "error", "message": "Service not enabled"}, status=400
            )
        return web.json_response({"result": "ok", "data": self.service})


@asynccontextmanager
async def supervisor(
    service: dict[str, object] | None, status: int = 200
) -> AsyncIterator[Supervisor]:
    stand_in = Supervisor(service, status)
    app = web.Application()
    app.router.add_get("/services/mqtt", stand_in.mqtt)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stand_in.url = f"http://127.0.0.1:{port}"
    try:
        yield stand_in
    finally:
        await runner.cleanup()


def mosquitto_service(port: int = 1883) -> dict[str, object]:
    """What the Mosquitto add-on registers with the Supervisor."""
    return {
        "addon": "core_mosquitto",
        "host": "127.0.0.1",
        "port": port,
        "ssl": False,
        "protocol": "3.1.1",
        "username": "addons",
        "password": BROKER_PASSWORD,
    }


def environment(tmp_path: Path, options: dict[str, object], url: str) -> AddonEnvironment:
    path = tmp_path / "data" / "options.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(options), encoding="utf-8")
    return AddonEnvironment(
        supervisor_url=url, supervisor_token=SecretStr(TOKEN), addon_options_file=path
    )


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("ENVOY_HOST", "MQTT_HOST", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


# --- options -> settings --------------------------------------------------------------------


async def test_options_map_to_settings_and_a_set_broker_is_not_looked_up(tmp_path: Path) -> None:
    options: dict[str, object] = {
        "envoy_host": "192.0.2.7",
        "envoy_username": "owner@example.com",
        "envoy_password": "enlighten-pw",
        "envoy_serial": "",  # left empty in the UI: not set
        "mqtt_host": "broker.lan",
        "mqtt_port": 1884,
        "mqtt_username": "me",
        "mqtt_password": "my-pw",
        "poll_interval": 30,
        "controls": "battery",
        "log_level": "DEBUG",
        "extra_settings": ["STATE_INTERVAL_POWER=5", "quiet_window = off"],
    }
    async with supervisor(mosquitto_service()) as stand_in:
        startup = await addon_startup(environment(tmp_path, options, stand_in.url))
    settings = startup.settings
    assert stand_in.requests == []  # the user's broker wins: the Supervisor is not asked
    (gateway,) = settings.gateway_list()
    assert (gateway.host, gateway.serial, gateway.username) == (
        "192.0.2.7",
        None,
        "owner@example.com",
    )
    assert gateway.password is not None
    assert gateway.password.get_secret_value() == "enlighten-pw"
    assert (settings.mqtt_host, settings.mqtt_port, settings.mqtt_username) == (
        "broker.lan",
        1884,
        "me",
    )
    assert (settings.poll_interval, settings.controls, settings.log_level) == (
        30,
        "battery",
        "DEBUG",
    )
    assert (settings.state_interval_power, settings.quiet_window) == (5, "off")
    assert settings.state_dir == tmp_path / "data"  # the add-on's persistent /data
    assert startup.broker_from == "the add-on options"


def test_an_unknown_extra_setting_is_named_and_its_value_is_not() -> None:
    with pytest.raises(ConfigError, match="'NO_SUCH_THING' is not NAME=value") as caught:
        option_settings({"extra_settings": ["NO_SUCH_THING=hunter2"]})
    assert "hunter2" not in str(caught.value)


async def test_an_unset_host_means_the_gateway_is_found_by_itself(tmp_path: Path) -> None:
    async with supervisor(mosquitto_service()) as stand_in:
        startup = await addon_startup(environment(tmp_path, {"envoy_host": ""}, stand_in.url))
    (gateway,) = startup.settings.gateway_list()
    assert gateway.host == "auto"


# --- the broker from the Supervisor ----------------------------------------------------------


async def test_broker_and_credentials_come_from_the_supervisor(tmp_path: Path) -> None:
    async with supervisor(mosquitto_service(1885)) as stand_in:
        startup = await addon_startup(environment(tmp_path, {"mqtt_host": ""}, stand_in.url))
    settings = startup.settings
    assert stand_in.requests == [f"Bearer {TOKEN}"]
    assert (settings.mqtt_host, settings.mqtt_port, settings.mqtt_username) == (
        "127.0.0.1",
        1885,
        "addons",
    )
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == BROKER_PASSWORD
    assert settings.mqtt_tls is False
    assert startup.broker_from == "the Supervisor's MQTT service"


async def test_credentials_the_user_set_win_over_the_supervisors(tmp_path: Path) -> None:
    options: dict[str, object] = {"mqtt_username": "mine", "mqtt_password": "my-own-pw"}
    async with supervisor(mosquitto_service()) as stand_in:
        settings = (await addon_startup(environment(tmp_path, options, stand_in.url))).settings
    assert (settings.mqtt_host, settings.mqtt_username) == ("127.0.0.1", "mine")
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "my-own-pw"


@pytest.mark.parametrize(
    ("service", "status", "says"),
    [
        (None, 200, "offers no MQTT broker (400: Service not enabled): install and start the"),
        (mosquitto_service(), 403, "needs `services: [mqtt:want]`"),
    ],
)
async def test_a_supervisor_without_a_broker_says_what_to_do(
    tmp_path: Path, service: dict[str, object] | None, status: int, says: str
) -> None:
    async with supervisor(service, status) as stand_in:
        with pytest.raises(ConfigError, match=r"Supervisor") as caught:
            await addon_startup(environment(tmp_path, {}, stand_in.url))
    assert says in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_supervisor_down_is_one_clear_line(tmp_path: Path) -> None:
    async with supervisor(None) as stand_in:
        url = stand_in.url  # nothing listens there once the block ends
    with pytest.raises(ConfigError) as caught:
        await addon_startup(environment(tmp_path, {}, url))
    message = str(caught.value)
    assert message.startswith(f"cannot ask the Supervisor at {url} for the MQTT broker")
    assert "set mqtt_host" in message
    assert TOKEN not in message


def test_not_running_as_an_add_on_says_so(tmp_path: Path) -> None:
    env = AddonEnvironment(addon_options_file=tmp_path / "options.json")
    with pytest.raises(ConfigError, match=r"no add-on options at .*elsewhere use `envoy2mqtt run`"):
        asyncio.run(addon_startup(env))


# --- the real start-up, end to end ------------------------------------------------------------


async def test_addon_run_bridges_with_the_supervisors_broker_and_never_logs_secrets(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker: Mosquitto = make_mosquitto(users={"addons": BROKER_PASSWORD})
    async with (
        SimulatedGateway(capture="7.6.175_with_cts") as gateway,
        supervisor(mosquitto_service(broker.port)) as stand_in,
    ):
        token = gateway.make_token()
        options: dict[str, object] = {
            "envoy_host": gateway.host,
            "envoy_token": token,
            "mqtt_base_topic": unique_prefix,
            "ha_discovery_prefix": f"{unique_prefix}-ha",
            "quiet_window": "off",
            "extra_settings": [f"HA_STATUS_TOPIC={unique_prefix}-ha/status"],
        }
        env = environment(tmp_path, options, stand_in.url)
        availability = f"{unique_prefix}/{gateway.serial}/availability"
        async with Recorder(
            "127.0.0.1",
            broker.port,
            f"{unique_prefix}/#",
            username="addons",
            password=BROKER_PASSWORD,
        ) as recorder:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "envoy2mqtt.cli", "addon-run"),
                env={
                    "PATH": "/usr/bin:/bin",
                    "SUPERVISOR_URL": stand_in.url,
                    "SUPERVISOR_TOKEN": TOKEN,
                    "ADDON_OPTIONS_FILE": str(env.addon_options_file),
                },
                cwd=tmp_path,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                await recorder.wait_for(
                    lambda r: any(x.topic == availability and x.payload == b"online" for x in r),
                    timeout=30,
                )
            finally:
                process.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(process.communicate(), timeout=15)
    log = err.decode()
    assert process.returncode == 0, log
    assert "MQTT broker 127.0.0.1:" in log
    assert "from the Supervisor's MQTT service" in log
    for secret in (BROKER_PASSWORD, TOKEN, token):
        assert secret not in log
    assert (tmp_path / "data" / HEALTH_FILE).exists()  # state in the add-on's /data
