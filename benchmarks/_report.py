"""Tables the suite prints as Markdown and writes as CSV, and the machine they ran on."""

from __future__ import annotations

import csv
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

Cell = str | int | float | None


@dataclass(slots=True)
class Table:
    """One result table: `name` is its CSV file's stem."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row: Cell) -> None:
        """Append a row (one cell per column)."""
        if len(row) != len(self.columns):
            raise ValueError(f"{self.name}: {len(row)} cells for {len(self.columns)} columns")
        self.rows.append(row)

    def markdown(self) -> str:
        """The table in GitHub Markdown, with its notes below."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(_show(cell) for cell in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write_csv(self, folder: Path) -> Path:
        """Write `<folder>/<name>.csv` (header row, then the rows as measured)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(self.columns)
            writer.writerows(["" if cell is None else cell for cell in row] for row in self.rows)
        return path


def _show(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, float):
        if cell == 0 or abs(cell) >= 100:
            return f"{cell:,.0f}"
        if abs(cell) >= 10:
            return f"{cell:,.1f}"
        return f"{cell:.3g}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return cell


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mosquitto_version() -> str:
    """The first line of `mosquitto -h` (its version)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        out = subprocess.run(  # noqa: S603 - the broker binary, fixed arguments
            [binary, "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except OSError:
        return "not found"
    return out.splitlines()[0].strip() if out else "unknown"


def machine(mode: str) -> Table:
    """Where and how the suite ran."""
    table = Table("machine", "Machine", ("item", "value"))
    load = os.getloadavg()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    table.add("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M"))
    table.add("mode", mode)
    table.add("CPUs (nproc)", os.cpu_count() or 0)
    table.add("CPU model", cpu_model())
    table.add("memory (GiB)", round(memory, 1))
    table.add("kernel", platform.release())
    table.add("Python", sys.version.split()[0])
    for package in ("pyenphase", "aiohttp", "aiomqtt", "paho-mqtt"):
        table.add(package, importlib.metadata.version(package))
    table.add("broker", mosquitto_version())
    table.add("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load))
    return table
