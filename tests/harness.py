"""Running the real bridge in a test: App + simulated gateway + real broker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from pydantic import SecretStr
from pyenphase import Envoy
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.app import App
from envoy2mqtt.gateway.gate import endpoint_class
from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import RequestRecord, SimulatedGateway

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bridge_settings(
    gateway: SimulatedGateway, port: int, base: str, state_dir: Path, **overrides: object
) -> Settings:
    """Settings for a bridge on this simulated gateway and broker (no .env, no environment)."""
    values: dict[str, object] = {
        "envoy_host": gateway.host,
        "envoy_token": SecretStr(gateway.make_token()) if gateway.uses_tls else None,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": port,
        "mqtt_base_topic": base,
        "ha_discovery_prefix": f"{base}-ha",
        "ha_status_topic": f"{base}-ha/status",
        "state_dir": state_dir,
        "quiet_window": "off",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


@contextlib.asynccontextmanager
async def running(bridge: Settings | App) -> AsyncIterator[App]:
    """The bridge (an App, or one made from settings) running until the block ends, then stopped."""
    app = bridge if isinstance(bridge, App) else App(bridge)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        yield app
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


@contextlib.asynccontextmanager
async def pyenphase_on(gateway: SimulatedGateway) -> AsyncIterator[Envoy]:
    """pyenphase on its own, set up and authenticated the way its users do it."""
    envoy = Envoy(gateway.host)
    envoy.set_retry_policy(max_attempts=1, wait_multiplier=0)
    try:
        await envoy.setup()
        if gateway.uses_tls:
            await envoy.authenticate(token=gateway.make_token())
        else:
            await envoy.authenticate(username="envoy")
        yield envoy
    finally:
        await envoy.close()


async def oracle(gateway: SimulatedGateway) -> EnvoyData:
    """What pyenphase itself reads from the simulated gateway (the expected values)."""
    async with pyenphase_on(gateway) as envoy:
        return await envoy.update()


def benchmark_main(script: str) -> Callable[[Sequence[str]], int]:
    """The `main` of benchmarks/<script>.py (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(script, BENCHMARKS / f"{script}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    main: Callable[[Sequence[str]], int] = module.main
    return main


def in_flight(log: Sequence[RequestRecord]) -> dict[str, int]:
    """The most requests the bridge had at the gateway at once: "all", and per endpoint class
    as the bridge's gate classes them ("fast": /ivp/* and the like, "slow": the pages).

    Requests never answered (status 0: the bridge gave up on them at its timeout, the
    simulator holds them until its fault is cleared) are left out.
    """
    moments = sorted(
        (moment, step, str(endpoint_class(r.path)))
        for r in log
        if r.status
        for moment, step in ((r.start, 1), (r.end, -1))
    )  # at one instant an answer ends before the next request starts (-1 sorts first)
    now: dict[str, int] = {"all": 0, "fast": 0, "slow": 0}
    most = dict(now)
    for _moment, step, kind in moments:
        for key in ("all", kind):
            now[key] += step
            most[key] = max(most[key], now[key])
    return most


def assert_polite(gateway: SimulatedGateway) -> None:
    """Never two requests of one class at once, so never more than two at all."""
    most = in_flight(gateway.stats.log)
    assert most["fast"] <= 1, most
    assert most["slow"] <= 1, most
    assert most["all"] <= 2, most
