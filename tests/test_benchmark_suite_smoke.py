"""The benchmark suite runs from one command and writes well-formed tables (figures unchecked)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "suite.py"
CHART = ROOT / "benchmarks" / "chart.py"

TABLES = {
    "machine": ("item", "value"),
    "cpu": ("site", "values/snapshot", "CPU µs/snapshot", "CPU µs/message"),
    "messages": ("site", "msgs/h change detection", "msgs/h everything", "fewer messages %"),
    "messages_hourly": ("site", "hour", "change detection", "everything"),
    "top_metrics": ("site", "metric", "msgs/h"),
    "requests": ("site", "endpoint", "requests/min"),
    "rss": ("site", "RSS MB", "bridge CPU % of a core"),
    "scale": ("gateways", "bridge CPU % of a core", "bridge RSS MB", "grid latency p99 s"),
    "targets": ("target", "measured", "met"),
}


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`python benchmarks/suite.py --quick`, once for the module: (CSV folder, stdout)."""
    out = tmp_path_factory.mktemp("results")
    done = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_table_is_printed_and_written(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    for name, columns in TABLES.items():
        rows = read(out / f"{name}.csv")
        assert rows, f"{name}.csv has no rows"
        assert set(columns) <= rows[0].keys(), (name, rows[0].keys())
        assert all(len(row) == len(rows[0]) and None not in row.values() for row in rows)
    for title in ("### CPU time per snapshot", "### MQTT traffic", "### Many gateways"):
        assert title in stdout
    header = next(line for line in stdout.splitlines() if line.startswith("| gateways |"))
    assert header.count("|") - 1 == len(read(out / "scale.csv")[0])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_figures_are_numbers_and_the_audit_holds(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    cpu = read(out / "cpu.csv")
    assert {row["site"] for row in cpu} == {"small", "battery", "large"}
    assert all(float(row["CPU µs/snapshot"]) > 0 for row in cpu)
    messages = read(out / "messages.csv")
    assert {row["site"] for row in messages} == {"legacy", "small", "battery"}
    for row in messages:
        assert int(row["msgs/h change detection"]) < int(row["msgs/h everything"])
        assert row["left outside deadband"] == "0"  # every change delivered within one cadence
    (fleet,) = read(out / "scale.csv")
    assert fleet["gateways"] == "10"
    assert fleet["missed"] == "0"
    assert float(fleet["bridge RSS MB"]) > 0
    assert 0 < float(fleet["bridge CPU % of a core"]) < 100
    requests = read(out / "requests.csv")
    assert any(r["endpoint"] == "/ivp/ensemble/relay" for r in requests if r["site"] == "battery")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_chart_renders_png_from_the_csvs(quick_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = quick_run
    done = subprocess.run(
        [sys.executable, str(CHART), "--results", str(out), "--docs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("scale.png", "day.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
