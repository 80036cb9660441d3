"""What the documentation promises about each entity, read from the topic reference tables
(docs/topics.md, linked from the README)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REFERENCE: Final = Path(__file__).resolve().parents[2] / "docs" / "topics.md"
START: Final = "<!-- topic-reference:start -->"
END: Final = "<!-- topic-reference:end -->"
STATE_CLASSES: Final = frozenset({"measurement", "total", "total_increasing"})
_ROW: Final = re.compile(r"^\| `(?P<topic>[^`]+)` \|(?P<unit>[^|]*)\|(?P<ha>[^|]*)\|")
_PLACEHOLDER: Final = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class Documented:
    """One row of the reference: a topic pattern and what Home Assistant should make of it."""

    topic: str  # as written, e.g. "inverter/<inverter serial>/power"
    pattern: re.Pattern[str]
    unit: str | None  # None for binary sensors (that column lists their payloads)
    component: str
    device_class: str | None
    state_class: str | None
    diagnostic: bool
    disabled: bool


def _pattern(topic: str) -> re.Pattern[str]:
    parts: list[str] = []
    for i, piece in enumerate(_PLACEHOLDER.split(topic)):
        if i:
            parts.append(r"\d" if parts[-1].endswith("_l") else "[^/]+")
        parts.append(re.escape(piece))
    return re.compile("".join(parts))


def _row(topic: str, unit: str, ha: str) -> Documented:
    classes, _, notes = ha.partition("(")
    component, *rest = [word.strip() for word in classes.split("·")]
    state = [word for word in rest if word in STATE_CLASSES]
    device = [word for word in rest if word not in STATE_CLASSES]
    return Documented(
        topic=topic,
        pattern=_pattern(topic),
        unit=(unit or None) if component == "sensor" else None,
        component=component,
        device_class=device[0] if device else None,
        state_class=state[0] if state else None,
        diagnostic="diagnostic" in notes,
        disabled="disabled by default" in notes,
    )


def documented(readme: Path = REFERENCE) -> list[Documented]:
    """Every row of the topic reference."""
    text = readme.read_text(encoding="utf-8")
    reference = text[text.index(START) : text.index(END)]
    rows = (_ROW.match(line) for line in reference.splitlines())
    return [_row(m["topic"], m["unit"].strip(), m["ha"].strip()) for m in rows if m is not None]


def find(rows: list[Documented], path: str) -> list[Documented]:
    """The rows whose topic pattern is this entity's topic (below `<base>/<serial>/`)."""
    return [row for row in rows if row.pattern.fullmatch(path)]
