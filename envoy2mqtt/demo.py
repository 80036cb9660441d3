"""`envoy2mqtt demo`: the bridge against the built-in simulated gateway, nothing to set up.

Starts an embedded broker (amqtt) unless MQTT_HOST is set, a simulated gateway replaying a
real capture with values drifting like a sunny day, and the bridge; then prints every topic
as it is published. Every 40 seconds the simulated grid fails or comes back, to show events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
from pydantic import SecretStr

from envoy2mqtt.app import App, install_signal_handlers
from envoy2mqtt.settings import ConfigError, Settings
from envoy2mqtt.sim import SimulatedGateway, list_captures

log = logging.getLogger(__name__)

OUTAGE_EVERY = 40.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[None]:
    """An in-process MQTT broker on 127.0.0.1 (amqtt), for demos without a broker."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from amqtt.broker import Broker
    except ImportError:
        raise SystemExit(
            "no MQTT_HOST set and the embedded broker is not installed: "
            "pip install 'envoy2mqtt[demo]', or set MQTT_HOST"
        ) from None
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        broker = Broker(config)
        await broker.start()
    try:
        yield
    finally:
        await broker.shutdown()


async def print_topics(host: str, port: int, base: str, discovery: str) -> None:
    """Print every message under the base topic (and discovery topics, shortened)."""
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{base}/#")
        await client.subscribe(f"{discovery}/#")
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload
            text = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload)
            if topic.startswith(discovery + "/"):
                text = f"(discovery config, {len(text)} bytes)" if text else "(removed)"
            print(f"{topic} = {text}", flush=True)


async def outages(gateway: SimulatedGateway) -> None:
    """Fail and restore the simulated grid now and then, so events show up."""
    while True:
        await asyncio.sleep(OUTAGE_EVERY)
        on = not gateway.grid_on
        gateway.set_grid(on)
        print(f"# simulated gateway: grid {'restored' if on else 'FAILED'}", flush=True)


async def demo(
    settings: Settings, capture: str, *, duration: float = 0, quiet: bool = False
) -> int:
    """Run the demo until Ctrl-C (or `duration` seconds)."""
    if capture not in list_captures():
        raise ConfigError(
            f"--capture: there is no capture named {capture!r}; "
            "`envoy2mqtt demo --list-captures` lists them"
        )
    async with contextlib.AsyncExitStack() as stack:
        updates: dict[str, object] = {}
        if not settings.mqtt_host:
            port = free_port()
            await stack.enter_async_context(embedded_broker(port))
            updates.update(mqtt_host="127.0.0.1", mqtt_port=port)
            print(f"# embedded MQTT broker on 127.0.0.1:{port}", flush=True)
        gateway = await stack.enter_async_context(SimulatedGateway(capture=capture, drift=True))
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="envoy2mqtt-")))
        updates.update(
            envoy_host=gateway.host,
            envoy_token=SecretStr(gateway.make_token()) if gateway.uses_tls else None,
            gateways=[],
            state_dir=state_dir,
            poll_interval=min(settings.poll_interval, 10.0),
        )
        run_settings = settings.model_copy(update=updates)
        print(
            f"# simulated gateway {gateway.serial} (firmware {gateway.firmware}, capture "
            f"{capture}) on {gateway.host}",
            flush=True,
        )
        app = App(run_settings)
        stop = asyncio.Event()
        install_signal_handlers(stop)
        async with asyncio.TaskGroup() as tasks:
            helpers = [tasks.create_task(outages(gateway))]
            if not quiet:
                helpers.append(
                    tasks.create_task(
                        print_topics(
                            str(run_settings.mqtt_host),
                            run_settings.mqtt_port,
                            run_settings.mqtt_base_topic,
                            run_settings.ha_discovery_prefix,
                        )
                    )
                )
            if duration:
                asyncio.get_running_loop().call_later(duration, stop.set)
            await app.run(stop)
            for task in helpers:
                task.cancel()
    print("# demo stopped", file=sys.stderr)
    return 0
