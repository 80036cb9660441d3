"""Written values, once read back as asked, watched for a while in case they go back. Pure.

Enphase's cloud puts a locally set storage mode back within a minute or two on some sites;
the normal lane's reads show it. Only readings that began after the confirming read-back
count: a full read already under way during the write still carries the old value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from envoy2mqtt.control.commands import Transaction, same_value
from envoy2mqtt.core.snapshot import Value


@dataclass(frozen=True, slots=True, kw_only=True)
class Watched:
    """A value written and confirmed, watched until `until` (monotonic seconds)."""

    path: str
    requested: Value
    since: float  # when the read-back that confirmed it began
    until: float
    transaction: Transaction = None
    reasserted: bool = False  # written once more after a revert already


@dataclass(slots=True)
class Watches:
    """The values being watched, by command path."""

    _watched: dict[str, Watched] = field(default_factory=dict)

    def arm(self, watched: Watched) -> None:
        """Watch a confirmed value (replacing an older watch of the same control)."""
        self._watched[watched.path] = watched

    def forget(self, path: str) -> None:
        """Stop watching a control (a new command for it is on its way)."""
        self._watched.pop(path, None)

    def get(self, path: str) -> Watched | None:
        """The watch of a control, if there is one."""
        return self._watched.get(path)

    def check(
        self, actual: Callable[[str], Value | None], read_since: float, now: float
    ) -> list[tuple[Watched, Value]]:
        """The watched values a reading begun at `read_since` shows gone back, with the value
        they went back to; those and the expired ones are no longer watched."""
        out: list[tuple[Watched, Value]] = []
        for path, watched in list(self._watched.items()):
            if now > watched.until:
                del self._watched[path]
                continue
            if read_since < watched.since:
                continue
            value = actual(path)
            if value is not None and not same_value(value, watched.requested):
                del self._watched[path]
                out.append((watched, value))
        return out

    def paths(self) -> list[str]:
        """The command paths watched now."""
        return list(self._watched)

    def __len__(self) -> int:
        """How many values are watched."""
        return len(self._watched)
