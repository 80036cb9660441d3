"""Reading the catalog for one gateway, again only where its inputs changed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from envoy2mqtt.catalog.metric import Reading, Source, input_key, same_objects
from envoy2mqtt.catalog.sources import SOURCES
from envoy2mqtt.core.snapshot import Snapshot

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Cached:
    inputs: tuple[object, ...] | None  # the objects the readings were taken from
    readings: dict[str, Reading]


@dataclass(slots=True)
class CatalogReader:
    """One gateway's view of the catalog: every reading, with memory per source.

    A source is read again only when something it reads is a new object (see
    `metric.same_objects`): a fast-lane publish re-reads the grid and CT sources, not 60
    inverters. A source whose reader fails on data no capture had keeps its last good
    readings (logged once per gateway, with the traceback) instead of taking the whole
    gateway down. Memory is keyed by the source itself, and warnings are this gateway's own.
    """

    serial: str
    sources: Sequence[Source] = SOURCES
    warned: set[str] = field(default_factory=set)  # metric paths whose reader failed
    _cache: dict[int, _Cached] = field(default_factory=dict)  # id(source) -> last readings
    _broken: set[int] = field(default_factory=set)  # id(source) whose reader failed last time

    def readings(self, snapshot: Snapshot) -> dict[str, Reading]:
        """The catalog's readings of this snapshot, keyed by topic path."""
        out: dict[str, Reading] = {}
        for source in self.sources:
            out.update(self._read(source, snapshot))
        return out

    def _read(self, source: Source, snapshot: Snapshot) -> dict[str, Reading]:
        key = input_key(snapshot, source.inputs) if source.inputs is not None else None
        cached = self._cache.get(id(source))
        if (
            key is not None
            and cached is not None
            and cached.inputs is not None
            and same_objects(cached.inputs, key)
        ):
            return cached.readings  # nothing it reads changed
        try:
            fresh = {r.entity.path: r for r in source.readings(snapshot, self.warned)}
        except Exception:
            if id(source) not in self._broken:
                self._broken.add(id(source))
                log.warning(
                    "%s: cannot read part of the gateway's data; keeping its last good "
                    "values (please report this)",
                    self.serial,
                    exc_info=True,
                )
            if cached is None:
                return {}
            cached.inputs = None  # read again next time
            return cached.readings
        self._broken.discard(id(source))
        self._cache[id(source)] = _Cached(key, fresh)
        return fresh
