"""How many rows Home Assistant's recorder wrote for a gateway: its `states` table, counted."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

POLL_60S_ROWS_PER_HOUR: Final = 60  # an integration polling every 60 s: one row a minute at most


@dataclass(frozen=True, slots=True)
class RecorderRows:
    """States rows of one gateway's entities written in a window of time."""

    seconds: float
    by_entity: Counter[str]

    @property
    def total(self) -> int:
        """Rows in the window."""
        return sum(self.by_entity.values())

    @property
    def per_hour(self) -> float:
        """Rows per hour at the window's rate."""
        return self.total * 3600 / self.seconds

    @property
    def poll_60s_per_hour(self) -> int:
        """What a 60 s poll would write at most: one row a minute per entity that changed."""
        return len(self.by_entity) * POLL_60S_ROWS_PER_HOUR

    def report(self, title: str, top: int = 10) -> str:
        """A Markdown summary: totals, the 60 s poll bound, the busiest entities."""
        lines = [
            f"### {title}",
            "",
            "| measure | value |",
            "|---|---|",
            f"| window | {self.seconds:.0f} s |",
            f"| states rows | {self.total} |",
            f"| rows per hour | {self.per_hour:,.0f} |",
            f"| entities with rows | {len(self.by_entity)} |",
            f"| a 60 s poll, at most (rows per hour) | {self.poll_60s_per_hour:,} |",
            f"| ratio to a 60 s poll | {self.per_hour / max(self.poll_60s_per_hour, 1):.1f}x |",
            "",
            "| entity | rows | rows per hour | one row every |",
            "|---|---|---|---|",
        ]
        for entity, rows in self.by_entity.most_common(top):
            every = self.seconds / rows
            lines.append(
                f"| `{entity}` | {rows} | {rows * 3600 / self.seconds:,.0f} | {every:.1f} s |"
            )
        return "\n".join(lines)


def states_rows(database: Path, serial: str, since: float, until: float) -> RecorderRows:
    """Rows of `states` for the gateway's entities with last_updated in [since, until) (epoch s)."""
    prefix = f"envoy_{serial.lower()}_"
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        found = db.execute(
            "SELECT m.entity_id, COUNT(*) FROM states AS s"
            " JOIN states_meta AS m ON s.metadata_id = m.metadata_id"
            " WHERE s.last_updated_ts >= ? AND s.last_updated_ts < ?"
            " GROUP BY m.entity_id",
            (since, until),
        ).fetchall()
    counts = Counter(
        {entity: rows for entity, rows in found if entity.partition(".")[2].startswith(prefix)}
    )
    return RecorderRows(until - since, counts)
