"""The topic reference (docs/topics.md, linked from the README) is generated from the catalog
and must not drift."""

from pathlib import Path

from envoy2mqtt.cli import END, START, with_reference
from envoy2mqtt.mqtt.reference import topic_reference

REFERENCE = Path(__file__).parent.parent / "docs" / "topics.md"


def test_the_topic_reference_is_current() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert START in text
    assert END in text
    assert with_reference(text, topic_reference()) == text, (
        "the topic reference is stale: run `envoy2mqtt topics --readme docs/topics.md`"
    )


def test_reference_lists_the_core_metrics() -> None:
    reference = topic_reference()
    for key in ("production_power", "net_power", "grid_import_power", "grid_status"):
        assert key in reference
