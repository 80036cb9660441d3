"""The event latency benchmark runs end to end (quick mode) and reports what it must."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.harness import benchmark_main


def test_event_latency_quick_reports_the_table_and_no_overlap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = benchmark_main("event_latency")(["--quick", "--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert code == 0, report
    for row in (
        "| grid: flip -> arrival | 6 |",
        "| grid: first read of new state -> arrival | 6 |",
        "| grid: confirming read -> arrival | 6 |",
        "| battery state: change -> arrival |",
        "| battery SOC threshold: change -> arrival |",
        "| bridge processing, publishes raising an event |",
        "| `/ivp/ensemble/relay` |",
        "| most fast (/ivp/*) requests in flight at once | 1 |",
        "| start -> first grid_status (s) |",
        "| most slow pages in flight at once | 1 |",
        "| expected events that never arrived | 0 |",
        "| events nobody caused | 0 |",
    ):
        assert row in report, report
    with (tmp_path / "event_latency.csv").open(encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["measure (ms)", "n", "p50", "p95", "p99", "max"]
    assert {row[0] for row in rows[1:]} >= {
        "grid: flip -> arrival",
        "battery state: change -> arrival",
    }
    assert (tmp_path / "event_latency_samples.csv").exists()
