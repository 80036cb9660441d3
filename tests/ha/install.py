"""Install Home Assistant Core into its own cached virtualenv, once, with no first-start installs.

Home Assistant installs an integration's requirements the first time it loads it. Here they
are installed up front instead, read from the manifests inside the wheel, under the
`package_constraints.txt` the wheel ships, so Home Assistant can start with `--skip-pip` and
never reaches for the network. A marker file is written last: anything without it is a
partial install and is done again from scratch.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.cache import MARKER, InstallError, cache_dir, locked, run

VERSION: Final = "2024.3.3"  # the newest release that installs on Python 3.11
PYTHON_VERSION: Final = (3, 11)
# What our configuration.yaml loads, plus what Home Assistant sets up by itself
# (bootstrap's CORE_INTEGRATIONS and DEFAULT_INTEGRATIONS in 2024.3), and every platform the
# MQTT entry sets up (mqtt/const.py PLATFORMS: all of them, discovered or not; camera
# imports stream at once). Their manifests' dependencies are followed, not
# after_dependencies: those only order set-up (hassio, cloud) and are not loaded here.
DOMAINS: Final = frozenset(
    {
        "homeassistant", "persistent_notification", "logger", "system_log",
        "http", "api", "websocket_api", "auth", "config", "onboarding", "frontend",
        "mqtt", "recorder", "history", "energy",
        "application_credentials", "backup", "hardware", "network", "system_health",
        "automation", "person", "scene", "script", "tag", "zone",
        "counter", "input_boolean", "input_button", "input_datetime", "input_number",
        "input_select", "input_text", "schedule", "timer",
        "alarm_control_panel", "binary_sensor", "button", "camera", "stream", "climate",
        "cover", "device_tracker", "event", "fan", "humidifier", "image", "lawn_mower",
        "light", "lock", "number", "select", "sensor", "siren", "switch", "text", "update",
        "vacuum", "valve", "water_heater",
    }
)  # fmt: skip
# Left unpinned by Home Assistant 2024.3 and broken by later releases; each was found in its
# log (an import error at start).
LATE_CONSTRAINTS: Final = (
    "josepy<2",  # acme 2.8 (via hass-nabucasa, imported by http) uses josepy.ComparableX509
)


@dataclass(frozen=True, slots=True)
class Installation:
    """A complete Home Assistant virtualenv."""

    root: Path
    version: str
    seconds: float  # how long the install took when it was made

    @property
    def python(self) -> Path:
        """The virtualenv's interpreter."""
        return self.root / "venv" / "bin" / "python"


def ensure_installed(version: str = VERSION) -> Installation:
    """The cached installation of `version`, installing it first if it is missing or partial."""
    root = cache_dir() / f"ha-{version}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.parent / f"ha-{version}.lock"):
        if (found := complete(root, version)) is not None:
            return found
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        _install(root, version, DOMAINS)
        seconds = round(time.monotonic() - started, 1)
        (root / MARKER).write_text(json.dumps({**_identity(version), "seconds": seconds}))
        return Installation(root, version, seconds)


def _identity(version: str) -> dict[str, object]:
    """What makes an install current: another version, domain list or pin means redo it."""
    return {"version": version, "domains": sorted(DOMAINS), "pins": list(LATE_CONSTRAINTS)}


def complete(root: Path, version: str) -> Installation | None:
    """The installation in `root` if its marker says it is complete and current, else None."""
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    found = Installation(root, version, float(marker.pop("seconds", 0)))
    return found if marker == _identity(version) and found.python.exists() else None


def _install(root: Path, version: str, domains: frozenset[str]) -> None:
    venv = root / "venv"
    run([str(base_python()), "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    wheels = root / "wheel"
    run([*pip, "download", "--no-deps", "-d", str(wheels), f"homeassistant=={version}"])
    (wheel,) = wheels.glob("homeassistant-*.whl")
    constraints, requirements = read_wheel(wheel, domains)
    (root / "constraints.txt").write_text(constraints + "\n".join(LATE_CONSTRAINTS) + "\n")
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    run([*pip, "install", "--quiet", "-c", str(root / "constraints.txt"), str(wheel),
          "-r", str(root / "requirements.txt")])  # fmt: skip


def base_python() -> Path:
    """A Python 3.11 interpreter outside any virtualenv (Home Assistant 2024.3 wants 3.11/3.12)."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return Path(getattr(sys, "_base_executable", sys.executable))
    found = shutil.which("python3.11")
    if found is None:
        raise InstallError("Home Assistant 2024.3 needs python3.11 on PATH")
    return Path(found)


def read_wheel(wheel: Path, domains: frozenset[str]) -> tuple[str, list[str]]:
    """The wheel's pip constraints, and the requirements of `domains` and their dependencies."""
    with zipfile.ZipFile(wheel) as archive:
        constraints = archive.read("homeassistant/package_constraints.txt").decode()

        def manifest(domain: str) -> dict[str, list[str]]:
            path = f"homeassistant/components/{domain}/manifest.json"
            loaded: dict[str, list[str]] = json.loads(archive.read(path))
            return loaded

        requirements: set[str] = set()
        todo, seen = list(domains), set()
        while todo:
            domain = todo.pop()
            if domain in seen:
                continue
            seen.add(domain)
            found = manifest(domain)
            requirements.update(found.get("requirements", []))
            todo.extend(found.get("dependencies", []))
    return constraints, sorted(requirements)
