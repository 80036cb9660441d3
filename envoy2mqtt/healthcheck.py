"""The health file the running bridge keeps in STATE_DIR, and `envoy2mqtt health` reading it.

Docker's HEALTHCHECK runs `envoy2mqtt health` in a separate process: the file is how the
two meet. Unhealthy: no file, a file from a bridge process that is gone, nothing published
for `max_age`, or no gateway online for `gateway_grace` seconds.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from envoy2mqtt.statefile import write_atomically

HEALTH_FILE: Final = "health.json"


@dataclass(slots=True)
class HealthFile:
    """What the bridge writes every few seconds."""

    path: Path
    started: float
    last_online: float | None = None  # when a gateway was last seen online

    def write(self, *, last_publish: float, connected: bool, online: int) -> None:
        """Replace the file atomically; a full disk or a read-only STATE_DIR is not fatal."""
        now = time.time()
        if online:
            self.last_online = now
        body = {
            "pid": os.getpid(),
            "written": now,
            "started": self.started,
            "last_publish": last_publish or None,
            "connected": connected,
            "gateways_online": online,
            "last_online": self.last_online,
        }
        with suppress(OSError):
            write_atomically(self.path, json.dumps(body), sync=False)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def check_health(state_dir: Path, max_age: float, gateway_grace: float = 300.0) -> tuple[bool, str]:
    """Whether the bridge is healthy, and why not (for Docker's HEALTHCHECK)."""
    try:
        body = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # the usual cause besides a stopped bridge: `health` and `run` see different STATE_DIRs
        return False, (
            f"no health file in {state_dir}: is the bridge running, with this STATE_DIR "
            "(the same environment or .env as `envoy2mqtt run`)?"
        )
    if not isinstance(body, dict) or not _alive(body.get("pid")):
        return False, f"the bridge that wrote {state_dir / HEALTH_FILE} is not running"
    now = time.time()
    last = body.get("last_publish")
    if not isinstance(last, int | float):
        return False, "the bridge has not published anything yet"
    age = now - last
    if age > max_age:
        return False, f"the bridge last published {age:.0f} s ago (limit {max_age:.0f} s)"
    online = body.get("last_online")
    since = online if isinstance(online, int | float) else body.get("started")
    if isinstance(since, int | float) and now - since > gateway_grace:
        return False, (
            f"no gateway has been online for {now - since:.0f} s "
            f"(HEALTH_GATEWAY_GRACE {gateway_grace:.0f} s): check ENVOY_HOST and the log"
        )
    return True, f"ok: last published {age:.0f} s ago, {body.get('gateways_online', 0)} online"
