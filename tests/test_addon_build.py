"""What the images are built from: the add-on folder, the lock files, the Dockerfiles.

Docker itself cannot run here, so these check what a build would use: the add-on's options
against the settings they map to, its pictures, the lock against pyproject.toml's ranges, the
Dockerfiles installing from the lock on a patch-pinned base (and hadolint on both).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envoy2mqtt import __version__
from envoy2mqtt.addon import EXTRA, option_settings
from envoy2mqtt.app import ensure_state_dir
from envoy2mqtt.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "addon"


def addon_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))
    return config


# --- the add-on -----------------------------------------------------------------------------


def test_addon_asks_for_the_mqtt_service_and_the_lan() -> None:
    config = addon_config()
    assert "mqtt:want" in config["services"]
    assert config["host_network"] is True  # mDNS stops at Docker's bridge network
    assert config["version"] == __version__
    assert config["init"] is False  # the bridge handles SIGTERM itself
    assert set(yaml.safe_load((ADDON / "build.yaml").read_text())["build_from"]) == set(
        config["arch"]
    )


def test_every_option_is_a_setting_and_its_defaults_start_the_bridge() -> None:
    config = addon_config()
    schema, options = config["schema"], config["options"]
    assert set(options) <= set(schema)
    assert set(schema) - {EXTRA} <= set(Settings.model_fields)
    overrides = option_settings(options)
    settings = load_settings(_env_file=None, mqtt_host="core-mosquitto", **overrides)
    for name, value in overrides.items():
        assert getattr(settings, name) == value, name
        assert Settings.model_fields[name].default == value, f"{name}: not the setting's default"


# the Supervisor's forms: a type, bounds for numbers, choices for a list, "?" when optional
OPTION_FORM = re.compile(
    r"(bool|email|url|port|str|password|(int|float)(\([\d.]*,[\d.]*\))?|list\([^()]+\))\??"
)


def test_option_types_are_of_the_forms_the_supervisor_reads() -> None:
    for name, kind in addon_config()["schema"].items():
        kinds = kind if isinstance(kind, list) else [kind]
        assert all(OPTION_FORM.fullmatch(k) for k in kinds), f"{name}: {kind!r}"


def test_option_bounds_and_choices_are_the_settings_own() -> None:
    for name, kind in addon_config()["schema"].items():
        if not isinstance(kind, str):
            continue
        if match := re.fullmatch(r"float\(([\d.]+),([\d.]+)\)\??", kind):
            low, high = (float(part) for part in match.groups())
            bounds = {type(m).__name__: m for m in Settings.model_fields[name].metadata}
            assert (bounds["Ge"].ge, bounds["Le"].le) == (low, high), name
        if match := re.fullmatch(r"list\(([^)]*)\)\??", kind):
            choices = match.group(1).split("|")
            for choice in choices:
                load_settings(_env_file=None, **{name: choice})  # each is valid
            with pytest.raises(ConfigError):
                load_settings(_env_file=None, **{name: "not-a-choice"})


def test_every_option_is_explained() -> None:
    explained = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())["configuration"]
    assert set(explained) == set(addon_config()["schema"])
    assert all(entry["name"] and entry["description"] for entry in explained.values())
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in docs for name in addon_config()["schema"])


@pytest.mark.parametrize(("name", "size"), [("icon.png", (128, 128)), ("logo.png", (250, 100))])
def test_addon_pictures_are_pngs_of_the_store_sizes(name: str, size: tuple[int, int]) -> None:
    data = (ADDON / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == size


def test_addon_image_is_the_project_image_started_the_addon_way() -> None:
    dockerfile = (ADDON / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \$\{BUILD_FROM\}$", dockerfile, re.MULTILINE)
    assert 'CMD ["addon-run"]' in dockerfile
    for image in yaml.safe_load((ADDON / "build.yaml").read_text())["build_from"].values():
        assert image.endswith(f":{__version__}")  # the project image of the same release


# --- reproducible installs ------------------------------------------------------------------


def locked(path: Path) -> dict[str, str]:
    """name -> version of every pin, each of which must carry hashes."""
    text = path.read_text(encoding="utf-8")
    pins = dict(
        re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\]+) \\\n\s+--hash=sha256:", text, re.MULTILINE)
    )
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9._-]+==", text, re.MULTILINE)), (
        "a pin lacks hashes"
    )
    return {canonicalize_name(name): version for name, version in pins.items()}


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", []), ("requirements-demo.lock", ["demo"])]
)
def test_lock_pins_every_dependency_within_its_range(lock: str, extras: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pins = locked(ROOT / lock)
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {name}: run ./scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock}: {name}=={pins[name]} is outside {requirement.specifier}: run ./scripts/lock"
        )


def test_demo_lock_agrees_with_the_runtime_lock() -> None:
    runtime, demo = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-demo.lock")
    assert {name: demo.get(name) for name in runtime} == runtime


def test_image_and_demo_install_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(
        r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", dockerfile, re.MULTILINE
    )
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps /src" in dockerfile
    demo = (ROOT / "scripts" / "demo").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements-demo.lock" in demo
    assert "--no-deps -e ." in demo
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "requirements.lock" not in ignored  # the build context has it


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "addon/Dockerfile"])
def test_dockerfiles_are_hadolint_clean(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    done = subprocess.run(
        [hadolint, dockerfile], check=False, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- /data ownership --------------------------------------------------------------------------


def test_a_state_dir_this_user_cannot_write_says_how_to_fix_it(tmp_path: Path) -> None:
    """The Docker case: a root-owned bind mount on /data, the bridge running as uid 10001."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    if os.geteuid() == 0:
        uid, message = 10001, _as_user(10001, lambda: ensure_state_dir(data))
    else:
        data.chmod(0o555)  # not ours to write, as a bind mount of root's is not
        uid, message = os.getuid(), _caught(lambda: ensure_state_dir(data))
        data.chmod(0o755)
    assert message.startswith(f"STATE_DIR: cannot write to {data} as uid {uid}")
    assert f"chown -R {uid}" in message
    ensure_state_dir(data)  # its owner may


def _caught(call: Callable[[], None]) -> str:
    try:
        call()
    except ConfigError as err:
        return str(err)
    return "no error"


def _as_user(uid: int, call: Callable[[], None]) -> str:
    """What `call` raises in a child process that runs as `uid`."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: drop to uid, report through the pipe, never return to pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, _caught(call).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(child, 0)
    return message
