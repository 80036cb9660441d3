"""The README's topic reference is generated from the catalog and must not drift."""

from pathlib import Path

from envoy2mqtt.cli import END, START, with_reference
from envoy2mqtt.mqtt.reference import topic_reference

README = Path(__file__).parent.parent / "README.md"


def test_readme_topic_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text
    assert END in text
    assert with_reference(text, topic_reference()) == text, (
        "README topic reference is stale: run `envoy2mqtt topics --readme README.md`"
    )


def test_reference_lists_the_core_metrics() -> None:
    reference = topic_reference()
    for key in ("production_power", "net_power", "grid_import_power", "grid_status"):
        assert key in reference
