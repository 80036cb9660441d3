"""The test broker itself: a real mosquitto that restarts in place, with auth and TLS."""

from __future__ import annotations

from collections.abc import Callable

import aiomqtt
import pytest

from tests.broker import Mosquitto, MosquittoFactory, Record, Recorder, collect


async def test_retained_message_round_trip(
    mosquitto_session: Mosquitto, unique_prefix: str
) -> None:
    broker = mosquitto_session
    topic = f"{unique_prefix}/state"
    async with Recorder(broker.host, broker.port, f"{unique_prefix}/#") as recorder:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.publish(topic, b"42", qos=1, retain=True)
        live = await recorder.wait_for(lambda records: len(records) == 1)
    assert (live[0].topic, live[0].payload, live[0].retain) == (topic, b"42", False)

    seen = await collect(broker.host, broker.port, f"{unique_prefix}/#", until=lambda s: topic in s)
    assert seen == {topic: b"42"}


async def test_collect_returns_what_arrived_when_time_runs_out(
    mosquitto_session: Mosquitto, unique_prefix: str
) -> None:
    broker = mosquitto_session
    seen = await collect(broker.host, broker.port, f"{unique_prefix}/#", timeout=0.2)
    assert seen == {}


def _count_reaches(count: int) -> Callable[[list[Record]], bool]:
    return lambda records: len(records) >= count


async def test_restarts_keep_the_port_and_the_recorder_follows(
    mosquitto: Mosquitto, unique_prefix: str
) -> None:
    port = mosquitto.port
    topic = f"{unique_prefix}/n"
    async with Recorder(mosquitto.host, port, topic) as recorder:
        for n in range(24):
            await mosquitto.restart_async(hard=n % 2 == 0)
            assert mosquitto.port == port
            await recorder.wait_connected(n + 2)
            async with aiomqtt.Client(mosquitto.host, port) as client:
                await client.publish(topic, str(n), qos=1)
            await recorder.wait_for(_count_reaches(n + 1))
    assert recorder.connections == 25
    assert [r.payload for r in recorder.records] == [str(n).encode() for n in range(24)]


async def test_persistence_keeps_retained_messages_over_a_restart(
    make_mosquitto: MosquittoFactory, unique_prefix: str
) -> None:
    broker = make_mosquitto(persistence=True)
    topic = f"{unique_prefix}/kept"
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(topic, b"yes", qos=1, retain=True)
    await broker.restart_async()
    seen = await collect(broker.host, broker.port, topic, until=bool)
    assert seen == {topic: b"yes"}


async def test_password_file_rejects_wrong_password_and_anonymous(
    make_mosquitto: MosquittoFactory, unique_prefix: str
) -> None:
    broker = make_mosquitto(users={"bridge": "s3cret", "ha": "other"})
    for username, password in (("bridge", "wrong"), (None, None), ("nobody", "s3cret")):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                broker.host, broker.port, username=username, password=password
            ):
                pass
    async with aiomqtt.Client(broker.host, broker.port, username="bridge", password="s3cret") as c:
        await c.publish(f"{unique_prefix}/ok", b"1", qos=1, retain=True)
    seen = await collect(
        broker.host,
        broker.port,
        f"{unique_prefix}/#",
        username="ha",
        password="other",
        until=bool,
    )
    assert seen == {f"{unique_prefix}/ok": b"1"}


async def test_tls_listener_trusts_the_test_ca_and_requires_a_client_cert(
    make_mosquitto: MosquittoFactory, unique_prefix: str
) -> None:
    broker = make_mosquitto(tls=True, require_client_cert=True)
    assert broker.pki is not None
    topic = f"{unique_prefix}/tls"
    context = broker.pki.client_context()
    for host in ("127.0.0.1", "localhost"):
        async with aiomqtt.Client(host, broker.tls_port, tls_context=context) as client:
            await client.publish(topic, host, qos=1, retain=True)
        seen = await collect(broker.host, broker.port, topic, until=bool)
        assert seen == {topic: host.encode()}

    without_cert = broker.pki.client_context(with_client_cert=False)
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            broker.host, broker.tls_port, tls_context=without_cert, timeout=1
        ) as c:
            await c.publish(topic, b"sneaky", qos=1)
