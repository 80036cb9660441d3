"""Draw the benchmark charts from the suite's CSVs: `python benchmarks/chart.py`.

docs/scale.png: the bridge's CPU and memory against the number of gateways.
docs/day.png: MQTT messages per hour over the simulated day, per site.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path
from typing import Final

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt  # after mpl.use: the backend must be chosen first

HERE: Final = Path(__file__).resolve().parent
RESULTS: Final = HERE / "results"
DOCS: Final = HERE.parent / "docs"
SHIPPED: Final = "as shipped"


def read(path: Path) -> list[dict[str, str]]:
    """A CSV's rows as dicts."""
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def scale_chart(rows: list[dict[str, str]], out: Path) -> Path:
    """CPU share and RSS of one bridge against its number of gateways."""
    figure, (cpu, rss) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    variants: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        variants[row["variant"]].append(row)
    for variant, points in variants.items():
        points.sort(key=lambda r: int(r["gateways"]))
        x = [int(r["gateways"]) for r in points]
        style = {"marker": "o"} if variant == SHIPPED else {"marker": "D", "linestyle": "none"}
        cpu.plot(x, [float(r["bridge CPU % of a core"]) for r in points], label=variant, **style)
        rss.plot(x, [float(r["bridge RSS MB"]) for r in points], label=variant, **style)
    for axes, target, unit in ((cpu, 100.0, "% of one core"), (rss, 500.0, "RSS (MB)")):
        axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
        axes.set_xscale("log")
        axes.set_xlabel("gateways in one bridge process")
        axes.set_ylabel(unit)
        axes.set_ylim(bottom=0)
        axes.grid(visible=True, which="both", alpha=0.3)
        axes.legend(loc="upper left")
    cpu.set_title("Bridge CPU")
    rss.set_title("Bridge memory")
    figure.suptitle("envoy2mqtt: many gateways, one process (default cadences)")
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def day_chart(rows: list[dict[str, str]], out: Path) -> Path:
    """Messages per hour, change detection against publishing everything, per site."""
    figure, axes = plt.subplots(figsize=(10, 4), constrained_layout=True)
    sites: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        sites[row["site"]].append(row)
    for index, (site, points) in enumerate(sites.items()):
        colour = f"C{index}"
        hours = [int(r["hour"]) for r in points]
        axes.plot(
            hours, [int(r["change detection"]) for r in points], color=colour, label=f"{site}"
        )
        axes.plot(
            hours,
            [int(r["everything"]) for r in points],
            color=colour,
            linestyle=":",
            label=f"{site}, everything",
        )
    axes.set_yscale("log")
    axes.set_xlabel("hour of the simulated day")
    axes.set_ylabel("MQTT messages per hour")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(ncol=3, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15))
    axes.set_title("Change detection (solid) against publishing every value read (dotted)")
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the suite's CSVs")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the PNGs go")
    args = parser.parse_args(argv)
    args.docs.mkdir(parents=True, exist_ok=True)
    written = []
    if (scale := args.results / "scale.csv").is_file():
        written.append(scale_chart(read(scale), args.docs / "scale.png"))
    if (hourly := args.results / "messages_hourly.csv").is_file():
        written.append(day_chart(read(hourly), args.docs / "day.png"))
    if not written:
        print(f"no scale.csv or messages_hourly.csv in {args.results}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
