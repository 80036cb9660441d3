"""The command line fails in one clear line, never with a traceback."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

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
    from envoy2mqtt.settings.sections import TEST_ONLY

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
