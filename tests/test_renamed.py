"""Renamed battery settings (issue 20): one name per value, the old topics still carrying the
same values until the next release, and one Home Assistant entity per value, keeping its id."""

from __future__ import annotations

import json
import logging
from typing import Final

import pytest

from envoy2mqtt import catalog
from envoy2mqtt.catalog.metric import Entity
from envoy2mqtt.catalog.sources import SOURCES
from envoy2mqtt.control import executor
from envoy2mqtt.control.controls import CONTROLS, current_name
from envoy2mqtt.control.executor import current_path
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.mqtt.discovery import unique_id
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.reference import deprecation_notice, renamed_topics, topic_reference
from envoy2mqtt.mqtt.topics import Topics
from tests.links import RecordingLink
from tests.test_catalog_inputs import snapshots

BATTERY_SITE: Final = "8.2.4286_with_3cts_and_battery_split"
# old topic -> new topic: the old one keeps its meaning (and value) for one more release
RENAMED: Final = {
    "battery_configured_reserve_soc": "reserve_soc",
    "battery_reserve_soc": "backup_target_soc",
    "storage_reserve_soc": "tariff_reserve_soc",
    "storage_very_low_soc": "very_low_soc",
}


def published() -> tuple[str, RecordingLink]:
    """The battery site published once: its serial and what went out."""
    snap = snapshots()[BATTERY_SITE]
    link = RecordingLink()
    GatewayPublisher(
        link, Topics(), snap.gateway, clock=Clock(monotonic=lambda: 0.0)
    ).publish_snapshot(snap)
    return snap.gateway.serial, link


def test_the_catalog_renames_are_the_ones_documented() -> None:
    assert dict(renamed_topics()) == RENAMED
    notice = deprecation_notice()
    assert notice is not None
    assert all(f"{old} -> {new}" in notice for old, new in RENAMED.items())
    reference = topic_reference()
    assert all(f"| `{old}` | `{new}` |" in reference for old, new in RENAMED.items())


def test_new_names_carry_the_values_and_the_old_topics_the_same_ones() -> None:
    serial, link = published()
    retained = link.retained()

    def state(path: str) -> bytes:
        return retained[f"envoy2mqtt/{serial}/{path}"]

    # the capture (backup mode): the controller runs and holds 100 %, the tariff file says
    # 20 %, the very-low level is 10 %
    assert {new: state(new) for new in RENAMED.values()} == {
        "reserve_soc": b"100",
        "backup_target_soc": b"100",
        "tariff_reserve_soc": b"20",
        "very_low_soc": b"10",
    }
    for old, new in RENAMED.items():
        assert state(old) == state(new), old


def test_each_value_is_announced_once_keeping_its_unique_id() -> None:
    serial, link = published()
    configs = {
        topic: json.loads(payload)
        for topic, payload in link.retained().items()
        if topic.startswith("homeassistant/") and payload
    }
    by_state = {}
    for config in configs.values():
        assert config["state_topic"] not in by_state, config["state_topic"]
        by_state[config["state_topic"]] = config
    for old, new in RENAMED.items():
        assert f"envoy2mqtt/{serial}/{old}" not in by_state  # no second entity
        config = by_state[f"envoy2mqtt/{serial}/{new}"]
        # the entity of this value keeps the id (and config topic) it had under its old name
        assert config["unique_id"] == unique_id(serial, old)
        assert config["default_entity_id"].endswith(f"_{new}")  # new installations: new ids
    ids = [c["unique_id"] for c in configs.values()]
    assert len(ids) == len(set(ids))


def test_no_old_name_is_a_current_one() -> None:
    keys = {
        metric.key
        for source in SOURCES
        for metric in getattr(getattr(source, "source", source), "metrics", ())
    }
    assert not keys & set(RENAMED)
    controls = {c.key for c in CONTROLS}
    assert not controls & {old for c in CONTROLS for old in c.deprecated_names}


def test_an_old_control_name_is_taken_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    assert current_name("battery_reserve_soc") == "reserve_soc"
    assert current_name("reserve_soc") is None
    assert current_name("dry_contact/NC1/battery_reserve_soc") is None  # not a device's
    caplog.set_level(logging.WARNING)
    executor._deprecated_said.clear()  # a fresh process, as far as this name goes
    first = current_path("battery_reserve_soc")
    current_path("battery_reserve_soc")
    assert (first, current_path("reserve_soc")) == ("reserve_soc", "reserve_soc")
    said = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert said == [
        "the command name battery_reserve_soc is deprecated: use reserve_soc "
        "(it will be removed in the next release)"
    ]


def test_entity_paths_of_a_renamed_metric() -> None:
    entity: Entity = catalog.values(snapshots()[BATTERY_SITE])["backup_target_soc"].entity
    assert (entity.path, entity.unique_path, entity.deprecated_paths) == (
        "backup_target_soc",
        "battery_reserve_soc",
        ("battery_reserve_soc",),
    )
