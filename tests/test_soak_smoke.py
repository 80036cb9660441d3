"""The soak benchmark runs end to end (quick mode): faults injected, nothing lost, no task leak."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.harness import benchmark_main


def test_quick_soak_loses_nothing_and_leaks_no_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = benchmark_main("soak")(["--quick", "--out", str(tmp_path)])
    report = capsys.readouterr().out
    with (tmp_path / "soak.csv").open(encoding="utf-8") as file:
        figures = {row["measure"]: float(row["value"]) for row in csv.DictReader(file)}
    assert code == 0, report
    assert figures["events_raised"] > 0, report
    assert figures["events_lost"] == 0, report
    assert figures["events_dropped"] == 0, report
    assert figures["events_received"] == figures["events_raised"], report
    assert figures["grid_events"] == figures["grid_changes"] > 0, report
    assert figures["tasks_end"] <= figures["tasks_start"], report
    assert figures["tasks_after_stop"] == 0, report
    # every kind of fault happened, and the bridge came back from each
    assert figures["broker_restarts"] >= 2, report
    assert figures["mqtt_connects"] == figures["broker_restarts"] + 1, report
    assert figures["gateway_outages"] >= 2, report
    assert figures["token_revocations"] >= 1, report
    assert figures["token_requests"] >= 2, report  # renewed after the revocation
    for row in ("| RSS growth |", "| asyncio tasks after warm-up / end |", "| messages published"):
        assert row in report, report
