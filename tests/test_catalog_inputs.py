"""Catalog sources declare what they read; the publisher skips those whose inputs are unchanged.

If a source read a part of the snapshot it does not declare, the publisher would keep
publishing stale values for it after that part changed. These tests blank every undeclared
part of real captures (as the bridge reads them) and require the very same readings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtType

from envoy2mqtt import catalog
from envoy2mqtt.catalog.derived import BATTERY_CHARGED, BATTERY_DISCHARGED
from envoy2mqtt.catalog.ensemble import C6_COMBINERS, COLLARS
from envoy2mqtt.catalog.metric import SNAPSHOT_PARTS, Reading, Source
from envoy2mqtt.core.snapshot import AuthStatus, GatewayInfo, Snapshot
from envoy2mqtt.gateway.overlay import LaneReadings
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.sim import list_captures, load_capture
from tests.links import RecordingLink
from tests.test_properties import TOPICS, Replay, read_like_the_bridge

AT = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
AUTH = AuthStatus(
    method="token", token_expires_at=AT, token_type="owner", last_success=AT, failures=2
)
DERIVED = {BATTERY_CHARGED: 1234.0, BATTERY_DISCHARGED: 567.0}
STRANGER = GatewayInfo(serial="000000000000", firmware="0.0.0", model="Other")
DATA_FIELDS = tuple(f.name for f in dataclasses.fields(EnvoyData))
EMPTY = EnvoyData()


@functools.cache
def snapshots() -> dict[str, Snapshot]:
    """Every capture the bridge can read, as it reads it, with auth and derived values."""
    out: dict[str, Snapshot] = {}
    for name in list_captures():
        capture = load_capture(name)
        documents = {n: r.document for n, r in capture.recordings.items() if r.is_json}
        read = asyncio.run(read_like_the_bridge(Replay(capture, documents, capture.serial)))
        if read is not None:
            info, data = read
            out[name] = Snapshot(info, data, AT, AUTH, DERIVED)
    return out


def blanked(snapshot: Snapshot, inputs: tuple[str, ...]) -> Snapshot:
    """The snapshot with every part not in `inputs` emptied or replaced by another's."""
    empty: dict[str, Any] = {
        name: getattr(EMPTY, name) for name in DATA_FIELDS if name not in inputs
    }
    return Snapshot(
        snapshot.gateway if "gateway" in inputs else STRANGER,
        dataclasses.replace(snapshot.data, **empty),
        snapshot.taken_at,
        snapshot.auth if "auth" in inputs else None,
        snapshot.derived if "derived" in inputs else {},
    )


def of(source: Source, snapshot: Snapshot) -> list[Reading]:
    return list(source.readings(snapshot))


def test_every_source_declares_known_inputs() -> None:
    known = {*DATA_FIELDS, *SNAPSHOT_PARTS}
    for source in catalog.SOURCES:
        assert source.inputs is not None, source
        assert set(source.inputs) <= known, source.inputs


def test_sources_read_only_what_they_declare() -> None:
    assert len(snapshots()) >= len(list_captures()) - 1  # 3.7.0: pyenphase cannot read it
    read_somewhere: set[int] = set()
    for name, snapshot in snapshots().items():
        for index, source in enumerate(catalog.SOURCES):
            assert source.inputs is not None
            full = of(source, snapshot)
            read_somewhere |= {index} if full else set()
            assert of(source, blanked(snapshot, source.inputs)) == full, (name, source.inputs)
    # every source was exercised by some capture, but the IQ Meter Collar and the C6 Combiner
    # Controller: no capture has either
    unread = {catalog.SOURCES[i] for i in set(range(len(catalog.SOURCES))) - read_somewhere}
    assert unread == {COLLARS, C6_COMBINERS}


class Reads:
    """A snapshot (or its data) that notes every part a reader asks for."""

    def __init__(self, real: object, seen: set[str], *, top: bool) -> None:
        self._real, self._seen, self._top = real, seen, top

    def __getattr__(self, name: str) -> object:
        value = getattr(self._real, name)
        if self._top and name == "data":
            return Reads(value, self._seen, top=False)
        if not self._top or name in SNAPSHOT_PARTS:
            self._seen.add(name)
        return value


def test_sources_declare_what_they_read_and_read_what_they_declare() -> None:
    unexercised = {"collar", "c6cc"}  # no capture has an IQ Meter Collar or a C6 Combiner
    for source in catalog.SOURCES:
        assert source.inputs is not None
        seen: set[str] = set()
        for snapshot in snapshots().values():
            list(source.readings(cast(Snapshot, Reads(snapshot, seen, top=True))))
        assert seen <= set(source.inputs), source.inputs
        assert set(source.inputs) - seen <= unexercised, source.inputs


def test_publisher_rereads_exactly_what_changed() -> None:
    """Lane updates (CT readings, a grid flip) via the caching publisher equal a fresh read."""
    snapshot = snapshots()["8.2.4286_with_3cts_and_battery_split"]
    publisher = GatewayPublisher(RecordingLink(), TOPICS, snapshot.gateway)
    publisher.publish_snapshot(snapshot)
    net = snapshot.data.ctmeters[CtType.NET_CONSUMPTION]
    assert net is not None
    lanes = LaneReadings(
        grid=(1.0, "off-grid" if snapshot.data.enpower else "on-grid"),
        meters=(1.0, ({CtType.NET_CONSUMPTION: dataclasses.replace(net, active_power=4321)}, {})),
    )
    data = lanes.over(snapshot.data)
    assert data.inverters is snapshot.data.inverters  # untouched parts stay the same objects
    assert lanes.over(data) is data  # laying the same readings over again changes nothing
    later = dataclasses.replace(snapshot, data=data)
    publisher.publish_snapshot(later)
    cached = {path: r.value for path, r in publisher.catalog.readings(later).items()}
    assert cached == {path: r.value for path, r in catalog.values(later).items()}
    assert cached["net_power"] == 4321
    assert cached["ct/net-consumption/active_power"] == 4321


@pytest.mark.parametrize("name", ["auth", "derived", "gateway"])
def test_snapshot_parts_change_the_sources_that_read_them(name: str) -> None:
    snapshot = snapshots()["8.2.4286_with_3cts_and_battery_split"]
    readers = [s for s in catalog.SOURCES if s.inputs is not None and name in s.inputs]
    assert readers
    if name == "derived":  # a storage CT site: derived counters only where there is none
        snapshot = dataclasses.replace(
            snapshot, data=dataclasses.replace(snapshot.data, ctmeters={})
        )
    others = tuple(p for p in SNAPSHOT_PARTS if p != name)
    assert any(
        of(s, blanked(snapshot, (*DATA_FIELDS, *others))) != of(s, snapshot) for s in readers
    )
