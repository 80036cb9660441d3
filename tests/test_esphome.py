"""The ESPHome kitchen display example validates with a real ESPHome (`esphome config`).

ESPHome pins dozens of packages (paho-mqtt 1.6, its own cryptography, platformio...), so it
gets a virtualenv of its own in the cache, never the project's .venv. Validating needs no
compiler and no network: the example uses LVGL's built-in fonts, nothing to download.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.cache import MARKER, cache_dir, locked, run

VERSION: Final = "2026.6.5"
ROOT: Final = Path(__file__).resolve().parents[1]
README: Final = ROOT / "README.md"
EXAMPLE: Final = ROOT / "examples" / "esphome"
CONFIG: Final = "kitchen-display.yaml"
SECRETS: Final = "secrets.example.yaml"  # copied to secrets.yaml, where ESPHome looks
FIELD: Final = re.compile(r'x\["(\w+)"\]')  # a summary field read in an on_json_message lambda
SECRET_FIELD: Final = re.compile(r"^\s*(?:ssid|password|broker|username):\s*(.*)$", re.MULTILINE)


def ensure_esphome(version: str = VERSION) -> Path:
    """The `esphome` executable of a cached virtualenv, made first if missing or partial."""
    root = cache_dir() / f"esphome-{version}"
    root.parent.mkdir(parents=True, exist_ok=True)
    esphome = root / "bin" / "esphome"
    with locked(root.parent / f"{root.name}.lock"):
        try:
            if json.loads((root / MARKER).read_text())["version"] == version:
                return esphome
        except (OSError, ValueError, KeyError):
            pass
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(root)])
        run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", f"esphome=={version}"])  # fmt: skip
        seconds = round(time.monotonic() - started, 1)
        (root / MARKER).write_text(json.dumps({"version": version, "seconds": seconds}))
        return esphome


@pytest.fixture(scope="session")
def esphome() -> Path:
    """ESPHome, installed once into its own cached virtualenv."""
    started = time.monotonic()
    found = ensure_esphome()
    print(f"ESPHome {VERSION}: {found} ready in {time.monotonic() - started:.1f} s")
    return found


class _Tolerant(yaml.SafeLoader):
    """A safe loader that reads ESPHome's tags (`!secret`, `!lambda`) as plain strings."""


_Tolerant.add_multi_constructor("!", lambda loader, _tag, node: loader.construct_scalar(node))


def strings(node: object) -> Iterator[str]:
    """Every string in a loaded YAML tree (the lambdas among them)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def readme_summary_keys() -> set[str]:
    """The fields of the example summary the README's ESP32 section shows."""
    readme = README.read_text(encoding="utf-8")
    found = re.search(r'^\s+(\{"pv":.*\})\s*$', readme, re.MULTILINE)
    assert found, "the README shows no example summary"
    return set(json.loads(found.group(1)))


@pytest.mark.timeout(900)  # the first run installs ESPHome and its pinned dependencies
def test_kitchen_display_validates(esphome: Path, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / CONFIG, tmp_path / CONFIG)
    shutil.copy(EXAMPLE / SECRETS, tmp_path / "secrets.yaml")
    started = time.monotonic()
    done = subprocess.run(
        [str(esphome), "config", str(tmp_path / CONFIG)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PLATFORMIO_CORE_DIR": str(tmp_path / "platformio")},
    )
    print(f"esphome config: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Configuration is valid!" in done.stderr

    text = (EXAMPLE / CONFIG).read_text()
    credentials = SECRET_FIELD.findall(text)
    assert len(credentials) == 6  # wifi, ota, broker: all from secrets.yaml, none inline
    assert all(value.startswith("!secret ") for value in credentials)
    source = yaml.load(text, Loader=_Tolerant)
    validated = yaml.load(done.stdout, Loader=_Tolerant)
    topic = source["substitutions"]["summary_topic"]
    assert topic.endswith("/summary")
    (subscription,) = validated["mqtt"]["on_json_message"]
    assert subscription["topic"] == topic
    # "not live" comes from the gateway's availability and the bridge's last will
    gateway = topic.removesuffix("/summary")
    base = gateway.rsplit("/", 1)[0]
    stale = {(m["topic"], m["payload"]) for m in validated["mqtt"]["on_message"]}
    assert stale == {(f"{gateway}/availability", "offline"), (f"{base}/bridge/state", "offline")}
    # the display reads only fields the summary has, and shows the headline ones
    used = {key for text in strings(subscription["then"]) for key in FIELD.findall(text)}
    assert used <= readme_summary_keys()
    assert {"pv", "load", "net", "soc", "bat", "grid"} <= used
