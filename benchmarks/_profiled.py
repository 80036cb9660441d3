"""The bridge under cProfile, for the CPU profile at scale: `python benchmarks/_profiled.py`.

Started like the bridge (settings in the environment). SIGUSR1 starts profiling, SIGUSR2
stops it and writes the statistics to $E2M_PROFILE, so start-up is left out.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import time
from types import FrameType

from envoy2mqtt.cli import main

PROFILER = cProfile.Profile(time.process_time)  # CPU time: waiting in epoll is not work


def start(_signum: int, _frame: FrameType | None) -> None:
    """Begin measuring."""
    PROFILER.enable()


def stop(_signum: int, _frame: FrameType | None) -> None:
    """Stop measuring and write the statistics."""
    PROFILER.disable()
    PROFILER.dump_stats(os.environ["E2M_PROFILE"])


def run() -> int:
    """Install the signal handlers, then run the bridge."""
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return main(["run"])


if __name__ == "__main__":
    sys.exit(run())
