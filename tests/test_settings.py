"""Configuration: environment, files, CLI flags; one clear line on a bad setting."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args, get_origin

import pytest

from envoy2mqtt.cli import build_parser
from envoy2mqtt.settings import ConfigError, Settings, load_settings
from envoy2mqtt.settings.flags import setting_overrides
from envoy2mqtt.settings.forms import HaRelease

ROOT = Path(__file__).resolve().parents[1]


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
        "SOC_THRESHOLDS",
        "STATE_DIR",
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


# --- every form a list setting comes in -------------------------------------------------------

_SAMPLES: dict[type, tuple[str, str, list[object]]] = {
    int: ("20,10", "[20, 10]", [20, 10]),
    float: ("1.5, 2", "[1.5, 2]", [1.5, 2.0]),
    str: ("a,b", '["a", "b"]', ["a", "b"]),
}


def _list_settings() -> dict[str, type]:
    """Every setting that is a list of plain values (GATEWAYS, a list of objects, is JSON only)."""
    found = {}
    for name, field in Settings.model_fields.items():
        if get_origin(field.annotation) is list:
            (item,) = get_args(field.annotation)
            if item in _SAMPLES:
                found[name] = item
    return found


def test_there_are_list_settings_to_check() -> None:
    assert "soc_thresholds" in _list_settings()


@pytest.mark.parametrize("name", sorted(_list_settings()))
def test_a_list_setting_reads_the_comma_and_the_json_form_everywhere(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    comma, json_form, expected = _SAMPLES[_list_settings()[name]]
    for text in (comma, json_form):
        monkeypatch.setenv(name.upper(), text)
        assert getattr(load_settings(), name) == expected, f"environment {text!r}"
        monkeypatch.delenv(name.upper())
        (tmp_path / ".env").write_text(f"{name.upper()}={text}\n", encoding="utf-8")
        assert getattr(load_settings(), name) == expected, f".env {text!r}"
        (tmp_path / ".env").unlink()
        flag = "--" + name.replace("_", "-")
        args = build_parser().parse_args(["run", flag, text])
        assert getattr(load_settings(**setting_overrides(args)), name) == expected, flag


def test_the_shipped_example_loads(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    settings = load_settings()
    assert settings.soc_thresholds == [20, 10]
    assert settings.state_dir.is_absolute()  # never ./state: `health` runs from elsewhere


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SOC_THRESHOLDS", "20,ten", "SOC_THRESHOLDS: Input should be a valid integer"),
        ("SOC_THRESHOLDS", "[20,", "SOC_THRESHOLDS: expected a JSON list"),
        ("GATEWAYS", "not json", "GATEWAYS: cannot be read (not valid JSON"),
    ],
)
def test_a_bad_value_in_env_is_one_line_naming_the_setting(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    (tmp_path / ".env").write_text(f"{name}={value}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "envoy2mqtt.cli", "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ENVOY_HOST": "127.0.0.1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"envoy2mqtt: configuration error: {expected}"), lines[0]


# --- where the state lives ------------------------------------------------------------------


def test_state_dir_follows_xdg_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_settings().state_dir == tmp_path / "xdg" / "envoy2mqtt"
    monkeypatch.setenv("XDG_STATE_HOME", "relative")  # the spec says: ignore it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_settings().state_dir == tmp_path / "home" / ".local/state/envoy2mqtt"
    monkeypatch.setenv("STATE_DIR", "/data")  # the Docker image's and the add-on's
    assert load_settings().state_dir == Path("/data")


def test_ha_compat_is_a_release_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVOY_HOST", "127.0.0.1")
    monkeypatch.setenv("HA_COMPAT", "2024.10")  # JSON would read this as the float 2024.1
    assert load_settings().ha_compat == HaRelease(2024, 10)
    assert load_settings(ha_compat=" 2024.11.3 ").ha_compat == HaRelease(2024, 11)
    assert str(load_settings().ha_compat) == "2024.10"


@pytest.mark.parametrize(
    "text",
    [
        "2024.13",  # the setting once took it, and the bridge failed at start reading it
        "2023.12",  # a release, but older than any the payloads suit
        "2024.11.0b1",  # the parser once took it: no pre-release to support
        "2024.1.2.3",  # both once took it
        "2024",
    ],
)
def test_ha_compat_refuses_what_is_not_a_release_to_support(text: str) -> None:
    with pytest.raises(ConfigError, match="HA_COMPAT"):
        load_settings(envoy_host="127.0.0.1", ha_compat=text)


@pytest.mark.parametrize(
    ("text", "release"),
    [("2024.11", HaRelease(2024, 11)), ("2023.12.4", HaRelease(2023, 12))],
)
def test_a_release_parses_alike_for_settings_and_evidence(text: str, release: HaRelease) -> None:
    assert HaRelease.parse(text) == release


@pytest.mark.parametrize("text", ["2024.13", "2024.11.0b1", "2024.1.2.3", "24.1", "x"])
def test_what_is_not_a_release_does_not_parse(text: str) -> None:
    with pytest.raises(ValueError, match="not a Home Assistant release"):
        HaRelease.parse(text)
