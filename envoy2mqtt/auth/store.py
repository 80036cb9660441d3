"""The token cache: one file per gateway in STATE_DIR, mode 0600, written atomically."""

from __future__ import annotations

import json
import logging
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from envoy2mqtt.statefile import write_atomically

log = logging.getLogger(__name__)

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredToken:
    """A token as cached: for which gateway and account, and when it was obtained."""

    token: str = field(repr=False)  # never in a repr, so never in a log line by accident
    serial: str
    account: str = field(repr=False)
    obtained_at: datetime


class TokenStore:
    """Reads and writes cached tokens; failures are logged and never fatal."""

    def __init__(self, directory: Path) -> None:
        """Keep tokens under `directory` (created on first save)."""
        self.directory = directory

    def path(self, serial: str) -> Path:
        """The cache file of one gateway."""
        return self.directory / f"token-{_UNSAFE.sub('_', serial) or 'unknown'}.json"

    def load(self, serial: str) -> StoredToken | None:
        """The cached token of a gateway, or None if there is none (or it is unreadable)."""
        path = self.path(serial)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("cannot read the token cache %s: %s", path, err.strerror)
            return None
        self._tighten(path)
        try:
            body = json.loads(raw)
            stored = StoredToken(
                token=str(body["token"]),
                serial=str(body["serial"]),
                account=str(body["account"]),
                obtained_at=datetime.fromisoformat(str(body["obtained_at"])),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring the token cache %s: it is not in the expected format", path)
            return None
        return stored if stored.serial == serial else None

    def save(self, stored: StoredToken) -> bool:
        """Write the token atomically with mode 0600; False (and a warning) if that fails."""
        path = self.path(stored.serial)
        body = {
            "serial": stored.serial,
            "account": stored.account,
            "obtained_at": stored.obtained_at.isoformat(),
            "token": stored.token,
        }
        try:
            self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            write_atomically(path, json.dumps(body), mode=FILE_MODE)
        except OSError as err:
            log.warning(
                "cannot write the token cache %s: %s; the token will be fetched again after a "
                "restart",
                path,
                err.strerror,
            )
            return False
        return True

    def _tighten(self, path: Path) -> None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                path.chmod(FILE_MODE)
                log.warning("token cache %s was readable by others; now mode 0600", path)
        except OSError:
            pass  # reading worked; a mode we cannot fix is not worth failing for
