"""Install Home Assistant Core into its own cached virtualenv, once, with no first-start installs.

Home Assistant installs an integration's requirements the first time it loads it. Here they
are installed up front instead, read from the manifests inside the wheel, under the
`package_constraints.txt` the wheel ships, so Home Assistant can start with `--skip-pip` and
never reaches for the network. A marker file is written last: anything without it is a
partial install and is done again from scratch. Each release in `RELEASES` has a virtualenv of
its own, on the Python it wants (2024.3.3 on 3.11; 2025.4.4, the first with device-based
discovery tested here, on 3.13 from pyenv).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.cache import MARKER, InstallError, cache_dir, locked, run

VERSION: Final = "2024.3.3"  # the newest release that installs on Python 3.11
DEVICE_VERSION: Final = "2025.4.4"  # device-based discovery (2024.11+); needs Python 3.13
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
class Release:
    """One Home Assistant release the tests install: its interpreter and what it loads."""

    version: str
    python: tuple[int, int]
    domains: frozenset[str]
    late_constraints: tuple[str, ...] = ()


RELEASES: Final = {
    VERSION: Release(VERSION, (3, 11), DOMAINS, LATE_CONSTRAINTS),
    # 2025.4's bootstrap also sets up analytics (onboarding needs it); MQTT added notify
    DEVICE_VERSION: Release(
        DEVICE_VERSION, (3, 13), DOMAINS | {"analytics", "notify"}, ("josepy<2",)
    ),
}


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
        _install(root, RELEASES[version])
        seconds = round(time.monotonic() - started, 1)
        (root / MARKER).write_text(json.dumps({**_identity(version), "seconds": seconds}))
        return Installation(root, version, seconds)


def _identity(version: str) -> dict[str, object]:
    """What makes an install current: another version, domain list or pin means redo it."""
    release = RELEASES[version] if version in RELEASES else Release(version, (0, 0), frozenset())
    return {
        "version": version,
        "domains": sorted(release.domains),
        "pins": list(release.late_constraints),
    }


def complete(root: Path, version: str) -> Installation | None:
    """The installation in `root` if its marker says it is complete and current, else None."""
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    found = Installation(root, version, float(marker.pop("seconds", 0)))
    return found if marker == _identity(version) and found.python.exists() else None


def _install(root: Path, release: Release) -> None:
    version = release.version
    venv = root / "venv"
    run([str(base_python(release.python)), "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    wheels = root / "wheel"
    run([*pip, "download", "--no-deps", "-d", str(wheels), f"homeassistant=={version}"])
    (wheel,) = wheels.glob("homeassistant-*.whl")
    constraints, requirements = read_wheel(wheel, release.domains)
    pins = "\n".join(release.late_constraints)
    (root / "constraints.txt").write_text(f"{constraints}\n{pins}\n")
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    run([*pip, "install", "--quiet", "-c", str(root / "constraints.txt"), str(wheel),
          "-r", str(root / "requirements.txt")])  # fmt: skip


def base_python(wanted: tuple[int, int]) -> Path:
    """An interpreter of the `wanted` Python outside any virtualenv: this one, pythonX.Y on
    PATH, or pyenv's (`pyenv root`/versions/X.Y.*)."""
    if sys.version_info[:2] == wanted:
        return Path(getattr(sys, "_base_executable", sys.executable))
    name = f"python{wanted[0]}.{wanted[1]}"
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for found in sorted(Path(pyenv).glob(f"versions/{wanted[0]}.{wanted[1]}.*/bin/{name}")):
        return found
    on_path = shutil.which(name)
    if on_path is None:
        raise InstallError(f"Home Assistant needs {name} (on PATH or from pyenv)")
    return Path(on_path)


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
