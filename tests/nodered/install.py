"""Install Node-RED from the npm registry into a cache outside the repository, once.

The install goes to a scratch folder and is renamed into place with its marker file written,
so a half-finished install (an interrupted run) is never mistaken for a complete one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.cache import MARKER, InstallError, cache_dir, locked, run

VERSION: Final = "4.1.8"  # the release the manual trial used


@dataclass(frozen=True, slots=True)
class Installation:
    """A complete Node-RED install."""

    root: Path
    version: str
    seconds: float  # how long the install took when it was made

    @property
    def red_js(self) -> Path:
        """Node-RED's entry point, run with `node`."""
        return self.root / "node_modules" / "node-red" / "red.js"


def ensure_installed(version: str = VERSION) -> Installation:
    """The cached Node-RED `version`, installed first if it is missing or partial."""
    root = cache_dir() / f"node-red-{version.rsplit('.', 1)[0]}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.parent / f"{root.name}.lock"):
        if (found := _complete(root, version)) is not None:
            return found
        scratch = root.with_name(f"{root.name}.partial")
        shutil.rmtree(scratch, ignore_errors=True)
        started = time.monotonic()
        _npm_install(scratch, version)
        seconds = round(time.monotonic() - started, 1)
        (scratch / MARKER).write_text(json.dumps({"version": version, "seconds": seconds}))
        shutil.rmtree(root, ignore_errors=True)  # an older 4.1.x, or a broken one
        scratch.rename(root)
        return Installation(root, version, seconds)


def _complete(root: Path, version: str) -> Installation | None:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    found = Installation(root, version, float(marker.get("seconds", 0)))
    return found if marker.get("version") == version and found.red_js.exists() else None


def _npm_install(prefix: Path, version: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm not found: Node-RED needs Node.js (18.5 or later) and npm")
    prefix.mkdir(parents=True)
    # no optional packages (a native bcrypt Node-RED does without) and no install scripts:
    # nothing but the registry is contacted
    command = [
        npm, "install", "--prefix", str(prefix), "--omit=dev", "--omit=optional",
        "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier",
        "--loglevel=error", f"node-red@{version}",
    ]  # fmt: skip
    run(command)
