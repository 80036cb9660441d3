"""The load-shedding benchmark runs (its --quick form) and reports every command as arrived."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.harness import benchmark_main


def test_shedding_quick_reports_every_command_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = benchmark_main("shedding")(["--quick", "--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "| commands that never arrived | 0 |" in report
    assert "| restores not in priority order | 0 |" in report
    assert "| commands nobody asked for | 0 |" in report
    with (tmp_path / "shedding.csv").open(encoding="utf-8") as file:
        rows = {row[0]: row for row in csv.reader(file)}
    assert rows["flip -> last tier-1 OFF arrives"][1] == "5"  # one sample per outage
    assert rows["ON -> next ON (RESTORE_STAGGER)"][1] == "10"  # two gaps per return
