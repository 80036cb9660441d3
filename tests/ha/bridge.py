"""The real bridge as a user runs it (the CLI in a process of its own), and what it retained."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

import aiomqtt

from envoy2mqtt.sim import SimulatedGateway

HOST: Final = "127.0.0.1"
DISCOVERY_PREFIX: Final = "homeassistant"  # the default, as Home Assistant's MQTT has it


def bridge_env(
    gateway: SimulatedGateway, broker_port: int, base: str, state_dir: Path
) -> dict[str, str]:
    """The settings of a bridge for one simulated gateway, as environment variables."""
    env = {
        "ENVOY_HOST": gateway.host,
        "MQTT_HOST": HOST,
        "MQTT_PORT": str(broker_port),
        "MQTT_BASE_TOPIC": base,
        "STATE_DIR": str(state_dir),
        "QUIET_WINDOW": "off",  # a test may run at any hour
    }
    if gateway.uses_tls:
        env["ENVOY_TOKEN"] = gateway.make_token()
    return env


@contextlib.asynccontextmanager
async def bridge_process(
    env: Mapping[str, str], workdir: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`python -m envoy2mqtt.cli run` with these settings, stopped with SIGTERM at the end."""
    process = _spawn(env, workdir)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)


def _spawn(env: Mapping[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "bridge.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "envoy2mqtt.cli", "run"],
            env={**os.environ, **env},
            cwd=workdir,  # no stray .env is read
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def retained(port: int, topic_filter: str, quiet: float = 1.0) -> dict[str, bytes]:
    """The retained messages under `topic_filter`: gathered until `quiet` s pass without one."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(HOST, port) as client:
        await client.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            while True:
                async with asyncio.timeout(quiet):
                    message = await anext(aiter(client.messages))
                if message.retain and isinstance(message.payload, bytes) and message.payload:
                    found[message.topic.value] = message.payload
    return found


async def discovery_configs(port: int, serial: str) -> dict[str, dict[str, Any]]:
    """The retained discovery configs of one gateway (per-entity mode), by topic."""
    configs = await retained(port, f"{DISCOVERY_PREFIX}/#")
    return {
        topic: json.loads(payload)
        for topic, payload in configs.items()
        if topic.split("/")[-3:-2] == [serial] and topic.endswith("/config")
    }


async def unique_ids(port: int, serial: str) -> dict[str, str]:
    """Every unique id the gateway's retained configs announce (per entity or per device),
    with the config topic that holds it."""
    configs = await retained(port, f"{DISCOVERY_PREFIX}/#")
    found: dict[str, str] = {}
    for topic, payload in configs.items():
        if not topic.endswith("/config") or b"envoy2mqtt" not in payload:
            continue
        document = json.loads(payload)
        for component in document.get("cmps", {"": document}).values():
            uid = component.get("unique_id", component.get("uniq_id"))
            if isinstance(uid, str) and uid.startswith(f"envoy2mqtt_{serial}_"):
                found[uid] = topic
    return found
