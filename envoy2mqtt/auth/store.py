"""Cached tokens: what their claims say, when to renew them, and the files in STATE_DIR.

Renewal rule: a token is renewed once less than `min(TOKEN_RENEW_DAYS, lifetime / 4)` is
left. An owner token (a year) renews 30 days ahead, an installer token (12 hours) 3 hours
ahead; a flat 30 days would renew a 12-hour token on every check, and a daily check alone
would let it lapse, so the next check is due at the earlier of one day and the renewal time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")
EXPIRY_MARGIN: Final = timedelta(minutes=1)  # a token this close to expiry is not worth using
TYPICAL_LIFETIME: Final = {"installer": timedelta(hours=12), "owner": timedelta(days=365)}


def _time(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token's claims say: expiry, issue time, type (owner/installer), gateway."""

    expires_at: datetime | None
    issued_at: datetime | None
    kind: str | None
    serial: str | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, object]) -> TokenInfo:
        """Read the claims Enphase puts in its tokens."""
        kind, aud = claims.get("enphaseUser"), claims.get("aud")
        return cls(
            expires_at=_time(claims.get("exp")),
            issued_at=_time(claims.get("iat")),
            kind=str(kind) if kind else None,
            serial=aud if isinstance(aud, str) and aud else None,
        )

    @property
    def lifetime(self) -> timedelta:
        """How long the token was issued for (from its claims, else typical for its type)."""
        if self.expires_at is not None and self.issued_at is not None:
            return max(self.expires_at - self.issued_at, timedelta(0))
        return TYPICAL_LIFETIME.get(self.kind or "", TYPICAL_LIFETIME["owner"])

    def renew_at(self, renew_days: float) -> datetime | None:
        """When renewal becomes due: `min(renew_days, lifetime / 4)` before expiry."""
        if self.expires_at is None:
            return None
        return self.expires_at - min(timedelta(days=renew_days), self.lifetime / 4)

    def usable(self, now: datetime) -> bool:
        """Whether the token is still worth presenting (not about to expire mid-request)."""
        if self.expires_at is None:
            return True
        return self.expires_at - min(EXPIRY_MARGIN, self.lifetime / 20) > now

    def due(self, now: datetime, renew_days: float) -> bool:
        """Whether renewal is due."""
        renew_at = self.renew_at(renew_days)
        return renew_at is not None and now >= renew_at


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
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            # O_EXCL with mode 0600: the secret is never readable by others, not even briefly
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                os.fchmod(file.fileno(), FILE_MODE)  # whatever the umask
                json.dump(body, file)
                file.flush()
                os.fsync(file.fileno())
            tmp.replace(path)
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
