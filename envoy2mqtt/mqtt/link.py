"""The MQTT edge: the only module that imports aiomqtt.

Publishing never blocks the caller: messages go to an outbox that survives broker outages.
Events wait in order in a bounded queue: ``event_buffer`` events (MQTT_EVENT_BUFFER, default
10 000), the oldest dropped (and counted) only past that, each keeping the payload and the time
it was raised; they are QoS 1 and stay at the head of the queue until the broker acknowledges
them, so a reconnect may deliver one twice (same id), never lose it. Retained states coalesce
to the newest value per topic. Urgent messages jump the queue.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Final

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from envoy2mqtt.core.backoff import Backoff
from envoy2mqtt.mqtt.client import Client, ClosingSSLSocket
from envoy2mqtt.mqtt.link_protocol import Handler, RetainHandler
from envoy2mqtt.mqtt.outbox import Message, Outbox
from envoy2mqtt.mqtt.topics import OFFLINE, ONLINE
from envoy2mqtt.settings import ConfigError, Settings

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT: Final = 10.0
LOGIN_REFUSED: Final = (4, 5, 134, 135)  # bad user name or password / not authorized


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttOptions:
    """How to reach the broker: the MQTT_* settings of these names (`of` takes them by name)."""

    mqtt_host: str
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_client_id: str | None = None
    mqtt_keepalive: int = 30
    mqtt_tls: bool = False  # (or a CA file given)
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_tls_insecure: bool = False
    mqtt_event_buffer: int = 10_000
    will_topic: str = "envoy2mqtt/bridge/state"
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0

    @classmethod
    def of(cls, settings: Settings, *, will_topic: str) -> MqttOptions:
        """The MQTT_* settings of these names, the password revealed for the client only."""
        if not settings.mqtt_host:
            raise ConfigError("MQTT_HOST: missing (the broker's host name or address)")
        taken = {
            f.name: getattr(settings, f.name) for f in fields(cls) if f.name.startswith("mqtt_")
        }
        secret = settings.mqtt_password
        taken["mqtt_password"] = secret.get_secret_value() if secret is not None else None
        return cls(**taken, will_topic=will_topic)

    @property
    def tls(self) -> bool:
        """Whether to speak TLS: MQTT_TLS, or a CA file given."""
        return self.mqtt_tls or self.mqtt_ca_file is not None


"""`handler(topic, payload, retained)`: for those that must tell a retained message from a live
one (a retained command must never run again at every connect)."""
OnConnect = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class LinkStats:
    """Counters for health checks and benchmarks."""

    connects: int = 0
    published: int = 0
    events_dropped: int = 0
    last_publish: float = 0.0


class MqttLink:
    """A self-healing connection to the broker with a loss-free outbox."""

    def __init__(self, options: MqttOptions, on_connect: OnConnect | None = None) -> None:
        """Prepare the link; `run()` connects and keeps it connected."""
        self.options = options
        self.on_connect = on_connect
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        self.outbox = Outbox(options.mqtt_event_buffer)
        self._wake = asyncio.Event()
        self._handlers: dict[str, Handler] = {}
        self._flagged: dict[str, RetainHandler] = {}
        self._client: aiomqtt.Client | None = None
        self._identifier = options.mqtt_client_id or f"envoy2mqtt-{uuid.uuid4().hex[:10]}"

    # -- the caller's side: never blocks, never raises on a broker outage --------------------

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        urgent: bool = False,
    ) -> None:
        """Queue a retained state (coalesced per topic) or an urgent state."""
        self.outbox.put(Message(topic, _bytes(payload), qos, retain), urgent=urgent)
        self._wake.set()

    def publish_event(self, topic: str, payload: str | bytes) -> None:
        """Queue an event: QoS 1, in order, kept through outages up to `event_buffer`."""
        self.outbox.put_event(Message(topic, _bytes(payload), qos=1, retain=False))
        self.stats.events_dropped = self.outbox.events_dropped
        self._wake.set()

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler(topic, payload)` for messages on `topic`, a filter with wildcards or
        not (re-subscribed on every connect, so retained messages arrive again each time)."""
        self._handlers[topic] = handler

    def subscribe_with_retain(self, topic: str, handler: RetainHandler) -> None:
        """As `subscribe`, and the handler is told whether the message was retained."""
        self._flagged[topic] = handler

    @property
    def pending(self) -> int:
        """Messages waiting to be sent."""
        return len(self.outbox)

    async def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the outbox is empty (or the timeout passes); True if it emptied."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.02)
        return not self.pending

    # -- the connection ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, keep reconnecting with capped jittered back-off, and send the outbox."""
        backoff = Backoff(first=self.options.reconnect_min, cap=self.options.reconnect_max)
        outage_logged = False
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    self.stats.connects += 1
                    backoff.reset()
                    if outage_logged:
                        log.info("reconnected to MQTT broker %s", self._where())
                    else:
                        log.info("connected to MQTT broker %s", self._where())
                    outage_logged = False
                    await self._session(client)
            except aiomqtt.MqttError as err:
                self._client = None
                self.connected.clear()
                if not outage_logged:
                    level = logging.ERROR if _refused(err) else logging.WARNING
                    log.log(level, "MQTT broker %s: %s; retrying", self._where(), explain(err))
                    outage_logged = True
            await asyncio.sleep(backoff.failed())

    async def close(self, timeout: float = 3.0) -> None:
        """Publish `offline`, flush what can be flushed quickly, and disconnect."""
        client = self._client
        if client is None or not self.connected.is_set():
            return
        try:
            await asyncio.wait_for(self._flush(client), timeout)
            await client.publish(
                self.options.will_topic, OFFLINE, qos=1, retain=True, timeout=timeout
            )
        except (aiomqtt.MqttError, TimeoutError) as err:
            log.debug("could not say goodbye to the broker: %s", err)

    async def _session(self, client: aiomqtt.Client) -> None:
        for topic in (*self._handlers, *self._flagged):
            await client.subscribe(topic, qos=1)
        await client.publish(self.options.will_topic, ONLINE, qos=1, retain=True)
        self.connected.set()
        if self.on_connect is not None:
            await self.on_connect()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._read(client), name="mqtt reader")
                tasks.create_task(self._write(client), name="mqtt writer")
        except ExceptionGroup as group:
            # a lost connection fails the reader (and maybe the writer): one MqttError for run()
            lost, other = group.split(aiomqtt.MqttError)
            if lost is None or other is not None:
                raise
            raise lost.exceptions[0] from None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            topic, body, retained = str(message.topic), bytes(payload), bool(message.retain)
            calls = [h(topic, body) for p, h in self._handlers.items() if message.topic.matches(p)]
            calls += [
                h(topic, body, retained)
                for p, h in self._flagged.items()
                if message.topic.matches(p)
            ]
            for call in calls:
                try:
                    await call
                except Exception:
                    log.exception("handler for %s failed", topic)

    async def _write(self, client: aiomqtt.Client) -> None:
        while True:
            # flush first: what waited through an outage goes out now, not with the next publish
            self._wake.clear()
            await self._flush(client)
            await self._wake.wait()

    async def _flush(self, client: aiomqtt.Client) -> None:
        async def send(message: Message) -> None:
            await self._send(client, message)

        await self.outbox.flush(send)

    async def _send(self, client: aiomqtt.Client, message: Message) -> None:
        await client.publish(
            message.topic,
            message.payload,
            qos=message.qos,
            retain=message.retain,
            timeout=PUBLISH_TIMEOUT,
        )
        self.stats.published += 1
        self.stats.last_publish = time.time()

    def _make_client(self) -> aiomqtt.Client:
        opts = self.options
        tls_context: ssl.SSLContext | None = None
        if opts.tls:
            tls_context = ssl.create_default_context(
                cafile=str(opts.mqtt_ca_file) if opts.mqtt_ca_file else None
            )
            if opts.mqtt_cert_file:
                tls_context.load_cert_chain(
                    str(opts.mqtt_cert_file),
                    str(opts.mqtt_key_file) if opts.mqtt_key_file else None,
                )
            if opts.mqtt_tls_insecure:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
            tls_context.sslsocket_class = ClosingSSLSocket
        return Client(
            opts.mqtt_host,
            opts.mqtt_port,
            username=opts.mqtt_username,
            password=opts.mqtt_password,
            identifier=self._identifier,
            will=aiomqtt.Will(opts.will_topic, OFFLINE, qos=1, retain=True),
            keepalive=opts.mqtt_keepalive,
            tls_context=tls_context,
            tls_insecure=opts.mqtt_tls_insecure if opts.tls else None,
            timeout=PUBLISH_TIMEOUT,
            # urgent states and events must not wait for Nagle's algorithm
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    def _where(self) -> str:
        return f"{self.options.mqtt_host}:{self.options.mqtt_port}"


def _refused(err: aiomqtt.MqttError) -> bool:
    """Whether the broker refused the login (CONNACK 4/5, or 134/135 in MQTT 5 terms)."""
    return isinstance(err, MqttConnectError) and err.rc in LOGIN_REFUSED


def explain(err: aiomqtt.MqttError) -> str:
    """What went wrong, naming the setting to check where the error points at one."""
    if _refused(err):
        return f"the broker refused the login ({err}): check MQTT_USERNAME and MQTT_PASSWORD"
    if "CERTIFICATE_VERIFY_FAILED" in str(err):
        return (
            f"{err}: check MQTT_CA_FILE (the CA that signed the broker's certificate), or set "
            "MQTT_TLS_INSECURE=true for a self-signed broker"
        )
    return str(err) or type(err).__name__


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload
