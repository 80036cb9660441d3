"""A real Node-RED on 127.0.0.1: start it, deploy flows through its Admin API, read its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import aiohttp

from tests.nodered.install import Installation

HOST: Final = "127.0.0.1"
SETTINGS: Final = Path(__file__).with_name("settings.js")
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 10.0
TAP: Final = re.compile(r"\[function:[^\]]*\] TAP (\{.*\})$", re.MULTILINE)


class NodeRedError(RuntimeError):
    """Node-RED would not start, or refused a deploy."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class NodeRed:
    """Node-RED from `installation`, with a fresh userDir in `workdir`, until the block ends."""

    def __init__(self, installation: Installation, workdir: Path) -> None:
        self.installation = installation
        self.workdir = workdir
        self.port = _free_port()
        self.log_path = workdir / "node-red.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The Admin API's root."""
        return f"http://{HOST}:{self.port}"

    async def __aenter__(self) -> Self:
        node = shutil.which("node")
        if node is None:
            raise NodeRedError("node not found: Node-RED needs Node.js 18.5 or later")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [node, str(self.installation.red_js), "--settings", str(SETTINGS),
                   "--userDir", str(self.workdir)]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "E2M_NODE_RED_PORT": str(self.port)},
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def deploy(self, flows: Sequence[Mapping[str, object]]) -> None:
        """Replace every flow with `flows` (a full deploy, as the editor's Deploy button does)."""
        headers = {"Node-RED-API-Version": "v1", "Node-RED-Deployment-Type": "full"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/flows", json=list(flows), headers=headers) as response,
        ):
            if response.status >= 300:
                raise NodeRedError(f"deploy refused ({response.status}): {await response.text()}")

    def log(self) -> str:
        """Node-RED's console output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def taps(self) -> list[dict[str, object]]:
        """What the tap nodes (`flows.tap`) logged, oldest first."""
        return [json.loads(match) for match in TAP.findall(self.log())]

    async def wait_for(self, predicate: Callable[[NodeRed], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate(self)` holds; TimeoutError shows the end of the log."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    self._check_alive()
                    await asyncio.sleep(0.1)
        except TimeoutError:
            tail = self.log()[-3000:]
            raise TimeoutError(f"not met within {timeout}s; Node-RED log:\n{tail}") from None

    async def _wait_ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    while not await self._answers(session):
                        self._check_alive()
                        await asyncio.sleep(0.1)
            except TimeoutError:
                raise NodeRedError(f"Node-RED not ready on {self.url}:\n{self.log()}") from None

    async def _answers(self, session: aiohttp.ClientSession) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{self.url}/flows") as response:
                return response.status == 200
        return False

    def _check_alive(self) -> None:
        if self._process is None or self._process.returncode is not None:
            raise NodeRedError(f"Node-RED exited:\n{self.log()[-3000:]}")
