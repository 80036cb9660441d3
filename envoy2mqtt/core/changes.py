"""What changed since the last publish: deadbands, heartbeats, holds, counter integrity,
debounce."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from envoy2mqtt.core.snapshot import Value

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Published:
    value: Value
    at: float


@dataclass(slots=True)
class ChangeDetector:
    """Decides which values to publish: changed beyond their deadband, or due for a refresh.

    Refreshing unchanged values every ``heartbeat`` seconds keeps late subscribers and
    Home Assistant's ``expire_after`` happy without re-publishing every poll.
    """

    heartbeat: float = 300.0
    _last: dict[str, _Published] = field(default_factory=dict)

    def diff(
        self,
        values: Mapping[str, Value],
        now: float,
        deadbands: Mapping[str, float] | None = None,
        pacing: Mapping[str, tuple[float, float]] | None = None,
    ) -> dict[str, Value]:
        """Return the values to publish now, and remember them as published.

        `pacing` gives a value a minimum interval between publishes, and a jump that is
        published at once all the same: (seconds, jump; 0 = no jump). A change held back is
        not lost: it differs from what was published, so a later diff publishes the newest.
        """
        out: dict[str, Value] = {}
        bands = deadbands or {}
        paced = pacing or {}
        for key, value in values.items():
            last = self._last.get(key)
            if last is None or now - last.at >= self.heartbeat:
                publish = True
            elif not _differs(last.value, value, bands.get(key, 0.0)):
                publish = False
            else:
                interval, jump = paced.get(key, (0.0, 0.0))
                publish = now - last.at >= interval or _jumped(last.value, value, jump)
            if publish:
                out[key] = value
                self._last[key] = _Published(value, now)
        return out

    def vanished(self, present: Collection[str]) -> list[str]:
        """Forget and return the keys that were published before but are gone now."""
        gone = [key for key in self._last if key not in present]
        for key in gone:
            del self._last[key]
        return gone

    def current(self) -> dict[str, Value]:
        """Every value as last published (for re-publishing after a reconnect)."""
        return {key: published.value for key, published in self._last.items()}

    def last(self, key: str) -> Value | None:
        """The value last published for `key` (None: never, or forgotten)."""
        published = self._last.get(key)
        return published.value if published is not None else None


@dataclass(slots=True)
class Hold:
    """Values whose changes are kept off the wire while they may be false (a dry contact read
    `open` after a settings write although no relay moved): the value last published stays.

    A held change that goes back is dropped; one still read when its hold ends is published.
    Either is logged once.
    """

    name: str = ""  # whose values, for the log (a gateway's serial)
    _paths: frozenset[str] = frozenset()
    _withheld: dict[str, Value] = field(default_factory=dict)  # path -> the change held

    def hold(self, paths: Collection[str]) -> None:
        """Hold these paths from now on; those held before and not among them are let go."""
        self._paths = frozenset(paths)

    def apply(
        self, values: Mapping[str, Value], published: Callable[[str], Value | None]
    ) -> Mapping[str, Value]:
        """`values`, each held change replaced by the value `published` last."""
        if not self._paths and not self._withheld:
            return values
        out = dict(values)
        for path, held in list(self._withheld.items()):
            value, before = values.get(path), published(path)
            if value is None:
                del self._withheld[path]
            elif value == before:
                del self._withheld[path]
                log.info(
                    "%s: %s read %s, back to %s while held: dropped", self.name, path, held, value
                )
            elif path not in self._paths:
                del self._withheld[path]
                log.info(
                    "%s: %s %s -> %s, still read after its hold: published",
                    self.name,
                    path,
                    before,
                    value,
                )
        for path in self._paths:
            value, before = values.get(path), published(path)
            if value is None or before is None or value == before:
                continue
            if path not in self._withheld:
                log.debug("%s: %s %s -> %s held", self.name, path, before, value)
            self._withheld[path] = value
            out[path] = before
        return out


def _jumped(old: Value, new: Value, jump: float) -> bool:
    if jump <= 0 or isinstance(old, str) or isinstance(new, str):
        return False
    return abs(new - old) >= jump


def _differs(old: Value, new: Value, deadband: float) -> bool:
    if isinstance(old, str) or isinstance(new, str):
        return old != new
    return abs(new - old) > deadband if deadband > 0 else new != old


@dataclass(slots=True)
class CounterGuard:
    """Keeps ``total_increasing`` counters from stepping backwards or dropping to zero.

    A glitch (a counter reading 0, or lower than before) holds the last good value and is
    logged once per counter until it recovers. A "today" counter (``daily``) may reset to a
    small value after midnight: once the day has changed, a drop to below ``reset_floor`` of
    the previous value counts as a genuine new day rather than a glitch. A reset arriving late
    (after the first reading of the new day) is still accepted, so no spike is published.
    """

    reset_floor: float = 0.1
    _good: dict[str, float] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)
    _new_day: set[str] = field(default_factory=set)

    def check(
        self, key: str, value: float, *, daily: bool = False, day_changed: bool = False
    ) -> float:
        """Return the value to publish for a counter reading."""
        if daily and day_changed:
            self._new_day.add(key)
        last = self._good.get(key)
        if last is None or value >= last:
            self._good[key] = value
            self._warned.discard(key)
            return value
        if key in self._new_day and 0 <= value <= last * self.reset_floor:
            self._new_day.discard(key)
            self._good[key] = value
            self._warned.discard(key)
            return value
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "%s went backwards (%s -> %s); holding the last good value", key, last, value
            )
        return last


@dataclass(slots=True)
class Debouncer:
    """Accepts a new state only after it has been read ``reads`` times in a row."""

    reads: int = 2
    _stable: dict[str, Value] = field(default_factory=dict)
    _candidate: dict[str, tuple[Value, int]] = field(default_factory=dict)

    def feed(self, key: str, value: Value, *, vouched: bool = False) -> Value:
        """Return the debounced value for this reading.

        `vouched`: the source's own state machine stands behind this reading (the relay's
        `open synchronizing`, say): it is believed at once, no confirming read awaited.
        """
        stable = self._stable.get(key)
        if stable is None:
            self._stable[key] = value
            return value
        if value == stable:
            self._candidate.pop(key, None)
            return stable
        seen_value, count = self._candidate.get(key, (value, 0))
        count = count + 1 if seen_value == value else 1
        if vouched or count >= self.reads:
            self._stable[key] = value
            self._candidate.pop(key, None)
            return value
        self._candidate[key] = (value, count)
        return stable

    def pending(self, key: str) -> bool:
        """Whether a new state has been read but not yet read often enough to be believed."""
        return key in self._candidate
