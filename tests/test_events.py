"""Event detection: grid and battery transitions."""

import json
from datetime import UTC, datetime

from envoy2mqtt.core.events import EventDetector, Watch

AT = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

# what the catalog's metrics declare (tests/test_roles.py checks the catalog says this)
WATCH = Watch(
    events={
        "grid_status": "grid",
        "battery_soc": "battery_soc",
        "battery_state": "battery",
        "battery_mode": "mode",
    },
    context=(
        "production_power",
        "consumption_power",
        "net_power",
        "grid_status",
        "battery_soc",
        "battery_power",
        "battery_state",
        "backup_runway",
    ),
)


def test_first_reading_raises_no_event() -> None:
    assert EventDetector(watch=WATCH).detect({"grid_status": "on-grid"}, AT) == []


def test_grid_outage_event_carries_context() -> None:
    detector = EventDetector(watch=WATCH)
    detector.detect({"grid_status": "on-grid", "battery_soc": 80}, AT)
    events = detector.detect(
        {
            "grid_status": "off-grid",
            "battery_soc": 79,
            "battery_power": 2500,
            "production_power": 0,
        },
        AT,
    )
    assert len(events) == 1
    body = json.loads(events[0].to_json("123"))
    assert body["type"] == "grid"
    assert body["from"] == "on-grid"
    assert body["to"] == "off-grid"
    assert body["at"] == "2026-07-01T12:00:00.000+00:00"
    assert body["context"] == {
        "grid_status": "off-grid",
        "battery_soc": 79,
        "battery_power": 2500,
        "production_power": 0,
    }
    assert body["id"]


def test_soc_threshold_crossings_both_ways() -> None:
    detector = EventDetector(soc_thresholds=(20, 10), watch=WATCH)
    detector.detect({"battery_soc": 25}, AT)
    down = detector.detect({"battery_soc": 9}, AT)
    assert [(e.extra["threshold"], e.extra["direction"]) for e in down] == [
        (20, "below"),
        (10, "below"),
    ]
    up = detector.detect({"battery_soc": 21}, AT)
    assert [(e.extra["threshold"], e.extra["direction"]) for e in up] == [
        (10, "above"),
        (20, "above"),
    ]
    assert detector.detect({"battery_soc": 22}, AT) == []


def test_battery_state_and_mode_changes() -> None:
    detector = EventDetector(watch=WATCH)
    detector.detect({"battery_state": "idle", "battery_mode": "backup"}, AT)
    events = detector.detect(
        {"battery_state": "discharging", "battery_mode": "self_consumption"}, AT
    )
    assert [(e.type, e.before, e.after) for e in events] == [
        ("battery", "idle", "discharging"),
        ("mode", "backup", "self_consumption"),
    ]


def test_event_ids_are_unique() -> None:
    detector = EventDetector(watch=WATCH)
    detector.detect({"grid_status": "on-grid"}, AT)
    a = detector.detect({"grid_status": "off-grid"}, AT)[0]
    b = detector.detect({"grid_status": "on-grid"}, AT)[0]
    assert a.id != b.id
