"""A whole test site: Mosquitto, Home Assistant with its MQTT integration, bridges on gateways."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto
from tests.ha.bridge import HOST, bridge_env, bridge_process, discovery_configs
from tests.ha.client import HomeAssistantApi
from tests.ha.install import VERSION, Installation, ensure_installed
from tests.ha.process import HomeAssistant


def noon_offset() -> float:
    """A UTC offset that makes it noon now, local time."""
    return 12 * 3600 - time.time() % 86400


@dataclass(slots=True)
class Gateway:
    """A simulated gateway and the bridge process publishing it."""

    capture: str
    sim: SimulatedGateway
    base: str  # the bridge's MQTT base topic
    workdir: Path
    process: subprocess.Popen[bytes]
    started: float  # time.time() when its bridge started

    @property
    def serial(self) -> str:
        """The gateway's serial."""
        return self.sim.serial

    def bridge_log(self) -> str:
        """What the bridge logged."""
        return (self.workdir / "bridge.log").read_text(errors="replace")


@dataclass(slots=True)
class Settled:
    """A gateway's retained discovery configs and the entities Home Assistant made of them."""

    configs: dict[str, dict[str, Any]]  # config topic -> payload
    entities: list[dict[str, Any]]  # entity registry entries with our unique ids


@dataclass(slots=True)
class HaSite:
    """Everything a Home Assistant test needs, started in order and stopped in reverse."""

    workdir: Path
    version: str = VERSION  # the Home Assistant release (tests/ha/install.py RELEASES)
    installation: Installation | None = None
    broker: Mosquitto | None = None
    ha: HomeAssistant | None = None
    api: HomeAssistantApi | None = None
    gateways: dict[str, Gateway] = field(default_factory=dict)
    first_start: float = 0.0  # seconds from spawning Home Assistant to RUNNING and onboarded
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        self.installation = await asyncio.to_thread(ensure_installed, self.version)
        self.broker = self._stack.enter_context(Mosquitto(self.workdir / "mosquitto"))
        self.ha = await self._stack.enter_async_context(
            HomeAssistant(self.installation, self.workdir / "home-assistant")
        )
        self.api = await self._stack.enter_async_context(HomeAssistantApi(self.ha.url))
        started = time.monotonic()
        await self.ha.start(self.api)
        await self.api.onboard()
        await self.api.wait_running()
        self.first_start = time.monotonic() - started
        await self.api.set_up_mqtt(HOST, self.broker.port)

    async def add_gateway(
        self, capture: str, base: str, settings: Mapping[str, str] | None = None
    ) -> Gateway:
        """Start a simulated gateway on `capture` and a bridge publishing it under `base`
        (with more `settings`, as environment variables)."""
        assert self.broker is not None
        # values drift as in the demo, around local noon whatever the hour: the sun is up
        sim = SimulatedGateway(capture=capture, drift=True, seed=12, utc_offset_s=noon_offset())
        await self._stack.enter_async_context(sim)
        workdir = self.workdir / f"bridge-{sim.serial}"
        env = {**bridge_env(sim, self.broker.port, base, workdir / "state"), **(settings or {})}
        started = time.time()
        process = await self._stack.enter_async_context(bridge_process(env, workdir))
        gateway = Gateway(capture, sim, base, workdir, process, started)
        self.gateways[capture] = gateway
        return gateway

    async def restart_bridge(self, gateway: Gateway, settings: Mapping[str, str]) -> None:
        """Stop the gateway's bridge (SIGTERM) and start it again with these settings changed."""
        assert self.broker is not None
        gateway.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.process.wait, 15)
        env = {
            **bridge_env(gateway.sim, self.broker.port, gateway.base, gateway.workdir / "state"),
            **settings,
        }
        gateway.started = time.time()
        gateway.process = await self._stack.enter_async_context(
            bridge_process(env, gateway.workdir)
        )

    async def settled(self, gateway: Gateway, timeout: float = 90.0) -> Settled:
        """Wait until every retained config of the gateway is an entity, and stays so."""
        assert self.broker is not None
        assert self.api is not None
        last: Settled | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    now = Settled(
                        await discovery_configs(self.broker.port, gateway.serial),
                        await self.entities(gateway),
                    )
                    counts = (len(now.configs), len(now.entities))
                    steady = last is not None and counts == (len(last.configs), len(last.entities))
                    if steady and counts[0] and counts[0] == counts[1]:
                        return now
                    last = now
                    await asyncio.sleep(2)
        assert last is not None
        return last  # the caller's assertions show what did not settle

    async def entities(self, gateway: Gateway) -> list[dict[str, Any]]:
        """The entity registry entries of one gateway (by our unique ids)."""
        assert self.api is not None
        prefix = f"envoy2mqtt_{gateway.serial}_"
        entries = await self.api.command("config/entity_registry/list")
        return [e for e in entries if e["unique_id"].startswith(prefix)]
