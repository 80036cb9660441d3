"""`envoy2mqtt demo`: the bridge against the built-in simulated gateway, nothing to set up.

Starts an embedded broker (amqtt) unless MQTT_HOST is set, a simulated gateway replaying a
real capture with values drifting like a sunny day, and the bridge; then prints every topic
as it is published. Every 40 seconds the simulated grid fails or comes back, to show events.
On a broker of the user's own, what the demo left retained there (a fake gateway's discovery
configs and states) is removed again when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import SecretStr

from envoy2mqtt.app import App, install_signal_handlers
from envoy2mqtt.mqtt.ghosts import Ghosts
from envoy2mqtt.mqtt.topics import sanitize
from envoy2mqtt.settings import ConfigError, Settings
from envoy2mqtt.sim import Field, SimulatedGateway, list_captures

log = logging.getLogger(__name__)

OUTAGE_EVERY = 40.0
SYNC_TIMEOUT: Final = 5.0


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


async def print_topics(
    settings: Settings, serial: str, *, quiet: bool, until_values: int, stop: asyncio.Event
) -> None:
    """Print every message under the base topic (and discovery topics, shortened).

    With `until_values`, set `stop` once that many of the gateway's values have arrived.
    """
    base, discovery = settings.mqtt_base_topic, settings.ha_discovery_prefix
    values_root = f"{base}/{sanitize(serial)}/"
    values = 0
    async with _client(settings) as client:
        await client.subscribe(f"{base}/#")
        await client.subscribe(f"{discovery}/#")
        async for message in client.messages:
            topic = str(message.topic)
            text = _text(message.payload)
            if topic.startswith(discovery + "/"):
                text = f"(discovery config, {len(text)} bytes)" if text else "(removed)"
            if not quiet:
                print(f"{topic} = {text}", flush=True)
            if text and topic.startswith(values_root) and not topic.endswith("/availability"):
                values += 1
                if until_values and values >= until_values:
                    stop.set()


def _client(settings: Settings, **options: object) -> aiomqtt.Client:
    """A client of the demo's own on the broker the bridge uses."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return aiomqtt.Client(
        str(settings.mqtt_host),
        settings.mqtt_port,
        username=settings.mqtt_username,
        password=password,
        **options,  # type: ignore[arg-type]
    )


def _text(payload: object) -> str:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload).decode(errors="replace")
    return "" if payload is None else str(payload)


class RetainedLeftovers:
    """The topics the demo's bridge left retained on a broker, removed again at the end.

    MQTT 5's subscription options tell what this needs: `retainAsPublished` keeps the retain
    flag of each live message, and `retainHandling=2` leaves out what was retained before, so
    only what is published retained while the demo runs is seen. Of that, only the simulated
    gateway's own topics, the bridge's, and discovery configs of ours for that gateway count:
    anything else on the broker (another bridge's, Zigbee2MQTT's) is never touched.
    """

    def __init__(self, settings: Settings, serial: str) -> None:
        self._settings = settings
        self._base = settings.mqtt_base_topic
        self._discovery = settings.ha_discovery_prefix + "/"
        self._level = sanitize(serial)
        self._ghosts = Ghosts(self._base)
        self._sync = f"envoy2mqtt-demo/{uuid.uuid4().hex}"
        self._synced = asyncio.Event()
        self.topics: set[str] = set()
        self._client = _client(
            settings, protocol=aiomqtt.ProtocolVersion.V5, identifier=f"demo-{self._sync[-12:]}"
        )
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        options = SubscribeOptions(qos=1, retainAsPublished=True, retainHandling=2)
        try:
            for topic_filter in (f"{self._base}/#", f"{self._discovery}#", self._sync):
                await self._client.subscribe(topic_filter, options=options)
        except aiomqtt.MqttError:
            await self._client.__aexit__(None, None, None)
            raise
        self._reader = asyncio.create_task(self._read(), name="demo leftovers")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            # what the bridge published before it stopped is queued to us before this marker
            await self._client.publish(self._sync, b"sync", qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SYNC_TIMEOUT):
                    await self._synced.wait()
            await self._stop_reading()  # our own removals would come back to it
            for topic in sorted(self.topics):
                await self._client.publish(topic, b"", qos=1, retain=True)
            if self.topics:
                print(
                    f"# removed the {len(self.topics)} retained topics the demo published on "
                    f"{self._settings.mqtt_host}:{self._settings.mqtt_port}",
                    flush=True,
                )
        finally:
            await self._stop_reading()
            await self._client.__aexit__(kind, err, tb)

    async def _stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self) -> None:
        async for message in self._client.messages:
            topic = str(message.topic)
            if topic == self._sync:
                self._synced.set()
            elif message.retain:
                self._note(topic, _text(message.payload).encode())

    def _note(self, topic: str, payload: bytes) -> None:
        if not self._ours(topic, payload):
            return
        if payload:
            self.topics.add(topic)
        else:
            self.topics.discard(topic)  # removed already (a ghost sweep, a mode switch)

    def _ours(self, topic: str, payload: bytes) -> bool:
        if topic.startswith(self._discovery):
            if not payload:
                return topic in self.topics
            try:
                document = json.loads(payload)
            except ValueError:
                return False
            return isinstance(document, dict) and self._ghosts.owner(document) == self._level
        level = topic.removeprefix(self._base + "/").split("/", 1)[0]
        return level in (self._level, "bridge")


async def outages(gateway: SimulatedGateway) -> None:
    """Fail and restore the simulated grid now and then, so events show up."""
    while True:
        await asyncio.sleep(OUTAGE_EVERY)
        on = not gateway.grid_on
        gateway.set_grid(on)
        print(f"# simulated gateway: grid {'restored' if on else 'FAILED'}", flush=True)


async def demo(
    settings: Settings,
    capture: str,
    *,
    duration: float = 0,
    quiet: bool = False,
    until_values: int = 0,
    field: bool = False,
) -> int:
    """Run the demo until Ctrl-C (or `duration` seconds, or `until_values` values); with
    `field`, the simulated gateway behaves as field reports describe current firmware."""
    if capture not in list_captures():
        raise ConfigError(
            f"--capture: there is no capture named {capture!r}; "
            "`envoy2mqtt demo --list-captures` lists them"
        )
    async with contextlib.AsyncExitStack() as stack:
        updates: dict[str, object] = {}
        own_broker = not settings.mqtt_host
        if own_broker:
            port = free_port()
            await stack.enter_async_context(embedded_broker(port))
            updates.update(mqtt_host="127.0.0.1", mqtt_port=port)
            print(f"# embedded MQTT broker on 127.0.0.1:{port}", flush=True)
        behaviour = Field.current_firmware() if field else Field.off()
        if field:
            print(
                "# the gateway behaves as in the field: production.json takes 30-55 s", flush=True
            )
        gateway = await stack.enter_async_context(
            SimulatedGateway(capture=capture, drift=True, field=behaviour)
        )
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
        if not own_broker:  # the embedded broker forgets everything when the demo ends
            try:
                await stack.enter_async_context(RetainedLeftovers(run_settings, gateway.serial))
            except aiomqtt.MqttError as err:
                print(
                    f"# cannot watch what the demo leaves retained on the broker ({err}): its "
                    "discovery configs and states stay there after it stops",
                    file=sys.stderr,
                )
        app = App(run_settings)
        stop = asyncio.Event()
        install_signal_handlers(stop)
        async with asyncio.TaskGroup() as tasks:
            helpers = [tasks.create_task(outages(gateway))]
            if not quiet or until_values:
                helpers.append(
                    tasks.create_task(
                        print_topics(
                            run_settings,
                            gateway.serial,
                            quiet=quiet,
                            until_values=until_values,
                            stop=stop,
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
