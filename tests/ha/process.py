"""A Home Assistant Core process on 127.0.0.1, its config directory in a test's tmp folder."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Final, Self

from tests.ha.client import HomeAssistantApi
from tests.ha.install import Installation

HOST: Final = "127.0.0.1"
# Only what the tests need, so nothing tries to reach the internet: no default_config (cloud,
# analytics uploads, zeroconf/ssdp/dhcp/bluetooth/usb discovery, met.no weather, ...).
CONFIGURATION: Final = """\
homeassistant:
  name: envoy2mqtt test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
http:
  server_host: {host}
  server_port: {port}
recorder:
  commit_interval: 1  # tests read the states table: rows land within a second
  auto_purge: false
energy:
"""
_RECORD: Final = re.compile(
    r"^\S+ \S+ (?:WARNING|ERROR|CRITICAL) \([^)]*\) \[[^\]]+\] .*$", re.MULTILINE
)


def complaints(log: str, about: re.Pattern[str]) -> list[str]:
    """The warning and error records of a log (first lines) that match `about`."""
    return [line for line in _RECORD.findall(log) if about.search(line)]


def free_port() -> int:
    """A free port below the ephemeral range, so no client socket takes it across a restart."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


class HomeAssistant:
    """Home Assistant Core started with `--skip-pip` (everything it needs is installed)."""

    def __init__(self, installation: Installation, workdir: Path) -> None:
        self.installation = installation
        self.config_dir = workdir / "config"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.output_path = workdir / "home-assistant.out"  # every start's log, appended
        self.start_seconds: list[float] = []
        self._process: list[subprocess.Popen[bytes] | None] = [None]
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(host=HOST, port=self.port)
        )
        weakref.finalize(self, _reap, self._process)  # never outlive the test run

    @property
    def database(self) -> Path:
        """The recorder's SQLite database."""
        return self.config_dir / "home-assistant_v2.db"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        process = self._process[0]
        return process is not None and process.poll() is None

    async def start(self, api: HomeAssistantApi, timeout: float = 180.0) -> float:
        """Start and wait until its HTTP API answers; return the seconds that took."""
        started = time.monotonic()
        self._process[0] = self._spawn()
        async with asyncio.timeout(timeout):
            while not await api.answers():
                if not self.running:
                    raise RuntimeError(f"Home Assistant exited:\n{self.log()[-4000:]}")
                await asyncio.sleep(0.2)
            if api.token is not None:
                await api.wait_running(timeout)
        seconds = time.monotonic() - started
        self.start_seconds.append(seconds)
        return seconds

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.output_path.open("ab") as output:
            return subprocess.Popen(
                [str(self.installation.python), "-m", "homeassistant", "--config",
                 str(self.config_dir), "--skip-pip", "--log-no-color"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def stop(self, timeout: float = 60.0) -> None:
        """Stop it as a service manager would (SIGTERM), killing it if it hangs."""
        process, self._process[0] = self._process[0], None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    async def restart(self, api: HomeAssistantApi) -> float:
        """Stop, then start again on the same port and config; the seconds the start took."""
        await self.stop()
        return await self.start(api)

    def log(self) -> str:
        """Everything it logged, across restarts."""
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _reap(slot: list[subprocess.Popen[bytes] | None]) -> None:
    process = slot[0]
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()
