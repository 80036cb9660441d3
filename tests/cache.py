"""Installs the real consumers (Home Assistant, Node-RED, ESPHome) share: a cache outside
the repository, one installer at a time, and commands that fail with their output."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

MARKER: Final = "installed.json"  # written last: an install without it is a partial one


class InstallError(RuntimeError):
    """A consumer could not be installed; the message carries the command's output."""


def cache_dir() -> Path:
    """Where installs are cached: $ENVOY2MQTT_CACHE, else ~/.cache/envoy2mqtt."""
    configured = os.environ.get("ENVOY2MQTT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "envoy2mqtt"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One installer at a time (two test runs may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run(command: Sequence[str]) -> None:
    """Run an install step; on failure raise InstallError with the end of its output."""
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
        raise InstallError(f"{' '.join(command)} failed:\n{output}")
