"""Configuration: environment, files, CLI flags; one clear line on a bad setting."""

import subprocess
import sys
from pathlib import Path

import pytest

from envoy2mqtt.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "ENVOY_HOST",
        "ENVOY_TOKEN",
        "ENVOY_PASSWORD",
        "MQTT_HOST",
        "MQTT_PORT",
        "GATEWAYS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVOY_HOST", "127.0.0.1:8443")
    monkeypatch.setenv("MQTT_PORT", "1884")
    settings = load_settings(mqtt_port="1999")
    assert settings.mqtt_port == 1999
    assert settings.gateway_list()[0].host == "127.0.0.1:8443"
    assert settings.mqtt_base_topic == "envoy2mqtt"
    assert settings.ha_discovery_prefix == "homeassistant"


def test_bad_port_names_the_setting_not_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(mqtt_port="abc")
    assert str(err.value).startswith("MQTT_PORT:")
    assert "abc" not in str(err.value)


def test_url_instead_of_host_is_explained() -> None:
    with pytest.raises(ConfigError, match=r"ENVOY_HOST: .*not a URL"):
        load_settings(envoy_host="https://envoy.local/").gateway_list()


def test_secret_from_file_is_secret(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    settings = load_settings(envoy_host="h", envoy_password_file=str(secret))
    assert settings.envoy_password is not None
    assert settings.envoy_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.gateway_list())


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ENVOY_PASSWORD_FILE: cannot read"):
        load_settings(envoy_host="h", envoy_password_file=str(tmp_path / "nope"))


def test_gateways_file(tmp_path: Path) -> None:
    path = tmp_path / "gateways.yaml"
    path.write_text(
        "gateways:\n"
        "  - host: 127.0.0.1:1\n    name: garage\n    token: abc\n"
        "  - host: 127.0.0.1:2\n    cadence: {fast: 2}\n"
    )
    gateways = load_settings(gateways_file=str(path)).gateway_list()
    assert [g.host for g in gateways] == ["127.0.0.1:1", "127.0.0.1:2"]
    assert gateways[1].cadence.fast == 2
    assert "abc" not in repr(gateways)


def test_bad_gateway_entry_is_located(tmp_path: Path) -> None:
    path = tmp_path / "gateways.yaml"
    path.write_text("- host: a\n- name: no-host\n")
    with pytest.raises(ConfigError, match=r"gateway #2: HOST: missing"):
        load_settings(gateways_file=str(path))


def test_quiet_window_and_thresholds() -> None:
    settings = load_settings(envoy_host="h", quiet_window="off", soc_thresholds="30, 15")
    assert settings.cadence().quiet_start is None
    assert settings.soc_thresholds == [30, 15]
    with pytest.raises(ConfigError, match="QUIET_WINDOW"):
        load_settings(quiet_window="late")


def test_cli_prints_one_clear_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoy2mqtt.cli", "run", "--mqtt-port", "seventy"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "ENVOY_HOST": "127.0.0.1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("envoy2mqtt: configuration error: MQTT_PORT:")
    assert "Traceback" not in result.stderr
