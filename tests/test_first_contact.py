"""A new user's first minutes: the README's two paths, as that user would take them.

`./scripts/demo` in a fresh clone whose venv has the oldest pip the README supports (Debian 12's
23.0.1), and `cp .env.example .env && envoy2mqtt run` with only the addresses changed; both must
show values, and neither a traceback. The demo pointed at a broker of the user's own must leave
nothing of its fake gateway retained there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import aiomqtt
import pytest

from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, collect

ROOT = Path(__file__).resolve().parents[1]
OLDEST_PIP = "pip==23.0.1"  # what a venv gets on Debian 12 (python3 3.11.2)
VALUE = re.compile(r"^envoy2mqtt/\d+/production_power = -?\d", re.MULTILINE)


def clean_environment(home: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without any envoy2mqtt setting, with a home of the test's own."""
    names = {name.upper() for name in Settings.model_fields}
    names |= {f"{name}_FILE" for name in names}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.pop("XDG_STATE_HOME", None)
    env.pop("VIRTUAL_ENV", None)
    env["HOME"] = str(home)
    env.update(settings)
    return env


def debian_python() -> str:
    """Debian's own python3 when it is a 3.11 (the README's oldest), else the one running."""
    system = Path("/usr/bin/python3")
    if system.exists():
        version = subprocess.run(
            [str(system), "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
            capture_output=True,
            text=True,
            check=False,
        )
        has_venv = subprocess.run(
            [str(system), "-c", "import ensurepip, venv"], capture_output=True, check=False
        )
        if version.stdout.strip() == "True" and has_venv.returncode == 0:
            return str(system)
    return shutil.which("python3") or sys.executable


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_runs_from_a_fresh_clone_with_the_oldest_pip(tmp_path: Path) -> None:
    clone = tmp_path / "envoy2mqtt"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run([debian_python(), "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    pip = [str(clone / ".venv/bin/python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", OLDEST_PIP], check=True, timeout=300)
    env = clean_environment(tmp_path)

    first = subprocess.run(
        ["./scripts/demo", "--until-values", "1", "--duration", "120"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=700,
        check=False,
    )

    assert first.returncode == 0, first.stderr[-4000:]
    assert VALUE.search(first.stdout), first.stdout[-2000:]
    assert "Traceback" not in first.stderr, first.stderr[-4000:]
    assert "project.license" not in first.stderr  # setuptools' deprecation, ~45 lines of it
    # nothing changed since: the second run starts without installing anything
    again = subprocess.run(
        ["./scripts/demo", "--list-captures"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "Installing" not in again.stderr
    assert "8.2.4286_with_3cts_and_battery_split" in again.stdout.split()


async def test_bridge_runs_from_the_shipped_env_example(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cwd, home = tmp_path / "bridge", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    shutil.copy(ROOT / ".env.example", cwd / ".env")
    # firmware 5: the example's "nothing needed" case, so only the two addresses are set here
    async with SimulatedGateway(capture="5.0.49") as gateway:
        env = clean_environment(
            home,
            ENVOY_HOST=gateway.host,  # never the example's LAN: no mDNS either, with a host
            MQTT_HOST=mosquitto.host,
            MQTT_PORT=str(mosquitto.port),
        )
        bridge = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "envoy2mqtt.cli",
            "run",
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            seen = await collect(
                mosquitto.host,
                mosquitto.port,
                f"envoy2mqtt/{gateway.serial}/#",
                until=lambda s: f"envoy2mqtt/{gateway.serial}/production_power" in s,
                timeout=60,
            )
            healthy = await _health_from_elsewhere(tmp_path, env)
        finally:
            if bridge.returncode is None:
                bridge.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bridge.communicate(), timeout=30)
    log = err.decode(errors="replace")
    assert f"envoy2mqtt/{gateway.serial}/production_power" in seen, log[-3000:]
    assert float(seen[f"envoy2mqtt/{gateway.serial}/production_power"]) >= 0
    assert "Traceback" not in log, log[-3000:]
    assert bridge.returncode == 0, log[-3000:]
    # the state went where `health` looks from any other folder: not into the bridge's cwd
    assert not (cwd / "state").exists()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr


async def _health_from_elsewhere(
    tmp_path: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`envoy2mqtt health` run from another folder, once the bridge's health file says ok."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.CompletedProcess[str]([], 1, "", "")
    for _ in range(30):  # the health file is rewritten every few seconds
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "envoy2mqtt.cli", "health"],
            cwd=elsewhere,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode == 0:
            break
        await asyncio.sleep(1)
    return done


async def test_demo_removes_what_it_left_retained_on_a_users_broker(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    someone_elses = "homeassistant/sensor/kitchen_plug/power/config"
    async with _publisher(mosquitto) as client:
        await client.publish(someone_elses, b'{"name":"plug"}', qos=1, retain=True)
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "envoy2mqtt.cli",
        "demo",
        "--quiet",
        "--until-values",
        "5",
        "--duration",
        "60",
        "--mqtt-host",
        mosquitto.host,
        "--mqtt-port",
        str(mosquitto.port),
        cwd=tmp_path,
        env=clean_environment(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(demo.communicate(), timeout=120)
    assert demo.returncode == 0, err.decode()[-3000:]
    removed = re.search(rb"# removed the (\d+) retained topics the demo published", out)
    assert removed, out.decode()[-2000:]
    assert int(removed.group(1)) > 100  # hundreds of discovery configs and states

    left = await collect(mosquitto.host, mosquitto.port, "#", timeout=2)

    assert {topic: payload for topic, payload in left.items() if payload} == {
        someone_elses: b'{"name":"plug"}'
    }


def _publisher(mosquitto: Mosquitto) -> aiomqtt.Client:
    return aiomqtt.Client(mosquitto.host, mosquitto.port)
