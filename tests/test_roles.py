"""Behaviour comes from the catalog's metric fields, never from a metric's name elsewhere."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime

import pytest
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.system_production import EnvoySystemProduction

from envoy2mqtt import catalog
from envoy2mqtt.catalog.metric import GatewayMetrics, Metric
from envoy2mqtt.catalog.reader import CatalogReader
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.topics import Topics
from tests.links import RecordingLink
from tests.test_events import WATCH

INFO = GatewayInfo(serial="122238082763", firmware="8.2.4286", phase_count=3)
T0 = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)


def production(watts: int, phases: dict[str, int] | None = None) -> EnvoyData:
    def reading(w: int) -> EnvoySystemProduction:
        return EnvoySystemProduction(
            watt_hours_lifetime=5_000_000,
            watt_hours_last_7_days=70_000,
            watt_hours_today=12_000,
            watts_now=w,
        )

    data = EnvoyData()
    data.system_production = reading(watts)
    data.system_production_phases = {k: reading(v) for k, v in (phases or {}).items()}
    return data


def test_catalog_declares_events_context_and_summary() -> None:
    from tests.test_catalog_inputs import snapshots  # every capture, read as the bridge does

    snapshot = snapshots()["8.2.4286_with_3cts_and_battery_split"]
    roles = Roles.of(r.entity for r in catalog.values(snapshot).values())
    assert dict(roles.watch.events) == dict(WATCH.events)
    assert set(roles.watch.context) == set(WATCH.context)
    assert dict(roles.summary) == {
        "pv": "production_power",
        "load": "house_load_power",  # the later of the two wins (consumption_power first)
        "net": "net_power",
        "imp": "grid_import_power",
        "exp": "grid_export_power",
        "soc": "battery_soc",
        "bat": "battery_power",
        "grid": "grid_status",
        "run": "backup_runway",
    }
    assert roles.debounced == {"grid_status"}


def test_negative_night_production_is_clamped_per_phase_too() -> None:
    link = RecordingLink()
    publisher = GatewayPublisher(link, Topics(), INFO, clock=Clock(monotonic=lambda: 0.0))
    data = production(-3, {"L1": -1, "L2": -2, "L3": 4})
    publisher.publish_snapshot(Snapshot(INFO, data, T0))
    state = link.retained()
    base = f"envoy2mqtt/{INFO.serial}"
    assert state[f"{base}/production_power"] == b"0"
    assert state[f"{base}/production_power_l1"] == b"0"  # missed by the old name-keyed clamp
    assert state[f"{base}/production_power_l2"] == b"0"
    assert state[f"{base}/production_power_l3"] == b"4"


def test_net_power_is_not_clamped() -> None:
    roles = Roles.of(r.entity for r in catalog.values(Snapshot(INFO, production(5))).values())
    assert "production_power" in roles.clamped
    assert not {p for p in roles.clamped if p.startswith(("net", "battery", "consumption"))}


def test_broken_reader_warns_once_per_gateway_not_once_per_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_snapshot: Snapshot) -> int:
        raise TypeError("garbage")

    source = GatewayMetrics((Metric(key="production_power", name="Production", read=broken),))
    data = production(100)
    with caplog.at_level(logging.WARNING):
        for serial in ("111111111111", "222222222222"):
            info = dataclasses.replace(INFO, serial=serial)
            pub = GatewayPublisher(
                RecordingLink(), Topics(), info, clock=Clock(monotonic=lambda: 0.0)
            )
            pub.catalog = CatalogReader(serial, sources=(source,))
            for _ in range(3):
                pub.publish_snapshot(Snapshot(info, data, T0))
    warnings = [r for r in caplog.records if "cannot read production_power" in r.getMessage()]
    assert len(warnings) == 2  # once for each gateway: one gateway's failure silences no other


def test_pacing_from_metric_kinds_and_urgent_metrics_are_never_held() -> None:
    from tests.test_catalog_inputs import snapshots

    snapshot = snapshots()["8.2.4286_with_3cts_and_battery_split"]
    entities = [r.entity for r in catalog.values(snapshot).values()]
    intervals = {"energy": 60.0, "power": 15.0, "measurement": 30.0}
    roles = Roles.of(entities, intervals, power_jump=500.0)
    assert roles.pacing["production_energy_lifetime"] == (60.0, 0.0)
    assert roles.pacing["grid_import_energy"] == (60.0, 0.0)
    assert roles.pacing["production_power"] == (15.0, 500.0)
    assert roles.pacing["battery_power"] == (15.0, 500.0)
    for urgent in ("grid_status", "battery_soc", "battery_state", "battery_mode"):
        assert urgent not in roles.pacing
    assert Roles.of(entities).pacing == {}  # no intervals: every change is published


def test_the_summary_load_is_the_house_load_where_there_are_batteries() -> None:
    from envoy2mqtt.mqtt.summary import summary_json
    from tests.test_catalog_inputs import snapshots

    for name, snapshot in snapshots().items():
        readings = catalog.values(snapshot)
        values = {path: r.value for path, r in readings.items()}
        summary = summary_json(values, Roles.of(r.entity for r in readings.values()).summary)
        load = json.loads(summary).get("load") if summary else None
        expected = values.get("house_load_power", values.get("consumption_power"))
        assert load == (round(expected) if isinstance(expected, float) else expected), name
