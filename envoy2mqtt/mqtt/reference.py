"""The topic reference: a Markdown table generated from the catalog, so it never drifts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from envoy2mqtt.catalog.base import Gated
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Family, GatewayMetrics, Metric, Source
from envoy2mqtt.catalog.sources import SOURCES

# family kind -> (section title, what the id level of its topics is)
KINDS: Final = {
    "ct": ("CT meters", "<ct type>"),
    "inverter": ("Microinverters", "<inverter serial>"),
    "battery": ("IQ Batteries (Encharge)", "<battery serial>"),
    "acb": ("AC Batteries (ACB)", "<battery serial>"),
    "enpower": ("IQ System Controller (Enpower)", "<serial>"),
    "collar": ("IQ Meter Collar", "<serial>"),
    "c6cc": ("C6 Combiner Controller", "<serial>"),
    "dry_contact": ("Dry contacts", "<relay id>"),
    "generator": ("Generator", "<generator id>"),
}
_PHASE_KEY: Final = re.compile(r"_l([123])$")
_PHASE_TEXT: Final = re.compile(r"phase L1$")

HEADER: Final = """\
All topics are below `<base>/<gateway serial>/` (`<base>` is `envoy2mqtt` unless configured).
Each carries one plain value, retained: a number in the unit shown, or a word. A value the
gateway does not report is not published at all (never a made-up 0). Per-phase topics
(`_l1`, `_l2`, `_l3`) exist only where the gateway reports phases."""


def _sections() -> Iterator[tuple[str, str, tuple[Metric[object], ...]]]:
    """(title, topic prefix, metrics) for every part of the catalog."""
    gateway: list[Metric[object]] = []
    families: list[tuple[str, str, tuple[Metric[object], ...]]] = []
    for source in SOURCES:
        inner: Source = source.source if isinstance(source, Gated) else source
        if isinstance(inner, GatewayMetrics):
            gateway.extend(inner.metrics)  # type: ignore[arg-type]
        elif isinstance(inner, Family):
            title, level = KINDS.get(inner.kind, (inner.kind, "<id>"))
            families.append((title, f"{inner.kind}/{level}/", inner.metrics))
    yield "Gateway", "", tuple(gateway)
    yield from families


def _home_assistant(metric: Metric[object]) -> str:
    parts = [metric.component]
    parts += [part for part in (metric.device_class, metric.state_class) if part]
    notes = []
    if metric.category == DIAGNOSTIC:
        notes.append("diagnostic")
    if not metric.enabled:
        notes.append("disabled by default")
    text = " · ".join(parts)
    return f"{text} ({', '.join(notes)})" if notes else text


def _meaning(metric: Metric[object]) -> str:
    text = metric.description or metric.name
    if metric.options:
        text += f" ({' / '.join(metric.options)})"
    return text


def _row(prefix: str, metric: Metric[object]) -> str | None:
    key, meaning = metric.key, _meaning(metric)
    if match := _PHASE_KEY.search(key):
        if match.group(1) != "1":
            return None  # one row stands for L1-L3
        key = _PHASE_KEY.sub("_l<n>", key)
        meaning = _PHASE_TEXT.sub("per phase (L1-L3)", metric.description or metric.name)
    unit = metric.unit or ("on / off" if metric.component == "binary_sensor" else "")
    if metric.payload_on and metric.payload_on != "on":
        unit = f"{metric.payload_on} / {metric.payload_off}"
    cells = (f"`{prefix}{key}`", unit, _home_assistant(metric), meaning)
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def renamed_topics() -> list[tuple[str, str]]:
    """(old topic, new topic) of every renamed value: the old one is published until the
    next release, with the same value."""
    return [
        (f"{prefix}{old}", f"{prefix}{metric.key}")
        for _title, prefix, metrics in _sections()
        for metric in metrics
        for old in metric.deprecated_names
    ]


def deprecation_notice() -> str | None:
    """The start-up line saying which old topic names are still published; None: none are."""
    renamed = renamed_topics()
    if not renamed:
        return None
    pairs = ", ".join(f"{old} -> {new}" for old, new in renamed)
    return (
        f"renamed topics ({pairs}): the old names are deprecated, published with the same "
        "values for this release only (they will be removed in the next release)"
    )


def topic_reference() -> str:
    """Every topic the catalog can publish, as Markdown: pattern, unit, HA entity, meaning."""
    lines = [HEADER]
    for title, prefix, metrics in _sections():
        lines += ["", f"### {title}", "", "| Topic | Unit | Home Assistant | Meaning |"]
        lines.append("|---|---|---|---|")
        lines += [row for metric in metrics if (row := _row(prefix, metric)) is not None]
    renamed = renamed_topics()
    if renamed:
        lines += ["", "### Renamed (the old names are published until the next release)", ""]
        lines += ["| Old topic (deprecated) | Use instead |", "|---|---|"]
        lines += [f"| `{old}` | `{new}` |" for old, new in renamed]
    return "\n".join(lines) + "\n"
