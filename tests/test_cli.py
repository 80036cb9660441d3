"""The command line fails in one clear line, never with a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envoy2mqtt.healthcheck import HEALTH_FILE, HealthFile, check_health

CLI = [sys.executable, "-m", "envoy2mqtt.cli"]


def test_topics_into_a_closed_pipe_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before a byte is written (`| head` that quit)
    try:
        writer = subprocess.run(
            [*CLI, "topics"], stdout=write_end, stderr=subprocess.PIPE, check=False, timeout=60
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in writer.stderr, writer.stderr.decode()
    assert b"BrokenPipe" not in writer.stderr
    assert writer.returncode == 0


def test_demo_with_an_unknown_capture_says_so_in_one_line() -> None:
    done = subprocess.run(
        [*CLI, "demo", "--capture", "bogus"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "envoy2mqtt: configuration error: --capture: there is no capture named 'bogus'; "
        "`envoy2mqtt demo --list-captures` lists them"
    ]
    listed = subprocess.run(
        [*CLI, "demo", "--list-captures"], check=False, capture_output=True, text=True, timeout=60
    )
    assert "8.2.4286_with_3cts_and_battery_split" in listed.stdout.split()


def _written(state: Path, **body: object) -> None:
    (state / HEALTH_FILE).write_text(json.dumps(body), encoding="utf-8")


def test_health_fails_when_the_bridge_that_wrote_the_file_is_gone(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    _written(tmp_path, pid=gone.pid, last_publish=now, started=now, last_online=now)
    ok, message = check_health(tmp_path, max_age=60)
    assert not ok
    assert "not running" in message


def test_health_fails_when_no_gateway_was_online_within_the_grace(tmp_path: Path) -> None:
    now = time.time()
    _written(tmp_path, pid=os.getpid(), last_publish=now, started=now - 700, last_online=None)
    ok, message = check_health(tmp_path, max_age=60, gateway_grace=300)
    assert not ok
    assert "no gateway has been online" in message
    _written(tmp_path, pid=os.getpid(), last_publish=now, started=now - 700, last_online=now - 5)
    assert check_health(tmp_path, max_age=60, gateway_grace=300)[0]
    _written(tmp_path, pid=os.getpid(), last_publish=now, started=now - 10, last_online=None)
    assert check_health(tmp_path, max_age=60, gateway_grace=300)[0]  # still starting


def test_health_file_remembers_when_a_gateway_was_last_online(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / HEALTH_FILE, started=time.time() - 1000)
    health.write(last_publish=time.time(), connected=True, online=1)
    health.write(last_publish=time.time(), connected=True, online=0)
    ok, message = check_health(tmp_path, max_age=60, gateway_grace=300)
    assert ok, message


def _subcommand(name: str) -> argparse.ArgumentParser:
    from envoy2mqtt.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action.choices, dict) and name in action.choices:
            parser: argparse.ArgumentParser = action.choices[name]
            return parser
    raise AssertionError(name)


def test_every_setting_flag_says_what_it_is_and_its_default() -> None:
    from envoy2mqtt.settings import Settings
    from envoy2mqtt.settings.flags import TEST_ONLY

    helps = {a.dest.removeprefix("setting_"): a.help for a in _subcommand("run")._actions}
    for name, field in Settings.model_fields.items():
        if name == "gateways" or name in TEST_ONLY:
            continue  # JSON only (GATEWAYS_FILE is its flag); test-only: environment only
        text = helps.get(name)
        assert text, f"--{name.replace('_', '-')} has no help"
        assert field.description
        assert " ".join(field.description.split()).replace("%", "%%") in text
        default = field.get_default(call_default_factory=True)
        if default not in (None, "", []) and "SecretStr" not in str(field.annotation):
            assert "(default: " in text, text
    assert "(default: 60.0)" in str(helps["poll_interval"])
    assert "(default: none)" in str(helps["controls"])


def _run_help() -> str:
    done = subprocess.run(
        [*CLI, "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_run_help_is_grouped_by_topic_without_test_only_settings() -> None:
    text = _run_help()
    headings = [line.rstrip(":") for line in text.splitlines() if re.fullmatch(r"\S.*:", line)]
    assert headings == [
        "options",
        "gateway",
        "MQTT",
        "Home Assistant",
        "cadences (seconds)",
        "controls (README: Controls)",
        "load shedding (README: Load shedding)",
        "advanced",
    ]
    mqtt = text.split("\nMQTT:\n", 1)[1].split("\n\n", 1)[0]
    assert "--mqtt-host" in mqtt
    assert "--poll-interval" not in mqtt
    for flag in ("--enlighten-login-url", "--entrez-token-url"):
        assert flag not in text
    assert "--shedding-dry-run [BOOL], --no-shedding-dry-run" in text


def test_test_only_settings_stay_settings_but_have_no_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from envoy2mqtt.cli import build_parser
    from envoy2mqtt.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENLIGHTEN_LOGIN_URL", "http://127.0.0.1:9/login")
    assert load_settings().enlighten_login_url == "http://127.0.0.1:9/login"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--enlighten-login-url", "x"])
    example = (Path(__file__).parent.parent / ".env.example").read_text(encoding="utf-8")
    for_testing = example.split("--- For testing", 1)[1]
    assert "#ENLIGHTEN_LOGIN_URL=" in for_testing
    assert "#ENTREZ_TOKEN_URL=" in for_testing


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], False),
        (["--shedding-dry-run"], True),
        (["--shedding-dry-run", "true"], True),
        (["--shedding-dry-run", "false"], False),
        (["--no-shedding-dry-run"], False),
        (["--shedding-dry-run", "--mqtt-port", "1884"], True),  # bare, then another flag
    ],
)
def test_a_boolean_flag_works_bare(
    argv: list[str], expected: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from envoy2mqtt.cli import build_parser
    from envoy2mqtt.settings import load_settings
    from envoy2mqtt.settings.flags import setting_overrides

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHEDDING_DRY_RUN", raising=False)
    args = build_parser().parse_args(["run", *argv])
    assert load_settings(**setting_overrides(args)).shedding_dry_run is expected


def test_a_no_flag_takes_no_value() -> None:
    done = subprocess.run(
        [*CLI, "run", "--no-shedding-dry-run", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--no-shedding-dry-run takes no value" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "own"),
    [
        ("token", ["--show", "--renew", "--envoy-host"]),
        ("health", ["--max-age", "--state-dir"]),
        ("demo", ["--capture", "--until-values", "--mqtt-host"]),
    ],
)
def test_other_commands_show_only_their_own_options(command: str, own: list[str]) -> None:
    done = subprocess.run(
        [*CLI, command, "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for flag in own:
        assert flag in done.stdout
    for flag in ("--poll-interval", "--ha-compat", "--control-watch", "--shedding-dry-run"):
        assert flag not in done.stdout, flag
    assert len(done.stdout.splitlines()) < 40
    # not listed, still accepted: settings are settings everywhere
    assert _subcommand(command).parse_args(["--poll-interval", "30"]).setting_poll_interval == "30"


def test_health_without_a_bridge_names_the_folder_it_looked_in(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "health"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    folder = tmp_path / ".local/state/envoy2mqtt"
    assert done.stdout.startswith(f"no health file in {folder}: is the bridge running"), done
    assert "Traceback" not in done.stderr
