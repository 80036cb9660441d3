"""MQTT over TLS and with a password, against mosquitto listeners that demand them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import HOST, MosquittoFactory, collect
from tests.harness import bridge_settings, running

LEGACY = "3.9.36"  # plain HTTP: the gateway side is not what these tests are about
RETRIES_SEEN = 3.0  # seconds: at 0.5 s, 1 s, 2 s... back-off the bridge tries at least twice


def online(base: str) -> dict[str, bytes]:
    """What a bridge that got through publishes first."""
    return {f"{base}/bridge/state": b"online"}


async def bridge_got_through(port: int, base: str, **login: str) -> dict[str, bytes]:
    """The bridge's retained state as an observer on the plain listener sees it."""
    wanted = online(base)
    return await collect(
        HOST,
        port,
        f"{base}/bridge/#",
        until=lambda seen: all(seen.get(t) == p for t, p in wanted.items()),
        timeout=15,
        **login,  # type: ignore[arg-type]
    )


def settings_for(
    gateway: SimulatedGateway, port: int, base: str, tmp: Path, **mqtt: object
) -> Settings:
    """Bridge settings with these MQTT_* overrides."""
    return bridge_settings(gateway, port, base, tmp, **mqtt)


async def test_tls_with_ca_file_and_client_certificate(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(tls=True, require_client_cert=True)
    assert broker.pki is not None
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = settings_for(
            gateway,
            broker.tls_port,
            unique_prefix,
            tmp_path,
            mqtt_tls=True,
            mqtt_ca_file=broker.pki.ca_cert,
            mqtt_cert_file=broker.pki.client_cert,
            mqtt_key_file=broker.pki.client_key,
        )
        async with running(settings):
            seen = await bridge_got_through(broker.port, unique_prefix)
    assert seen == online(unique_prefix)
    assert f"New client connected from {HOST}" in broker.log()


async def test_tls_insecure_accepts_a_self_signed_broker(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(tls=True)  # signed by a CA the bridge has never heard of
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = settings_for(
            gateway, broker.tls_port, unique_prefix, tmp_path, mqtt_tls=True, mqtt_tls_insecure=True
        )
        async with running(settings):
            seen = await bridge_got_through(broker.port, unique_prefix)
    assert seen == online(unique_prefix)


async def test_tls_without_the_ca_says_which_setting_to_fix_and_keeps_trying(
    make_mosquitto: MosquittoFactory,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make_mosquitto(tls=True)
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = settings_for(gateway, broker.tls_port, unique_prefix, tmp_path, mqtt_tls=True)
        async with running(settings) as app:
            await asyncio.sleep(RETRIES_SEEN)
            connects = app.link.stats.connects
        attempts = broker.log().count("OpenSSL Error")
    assert connects == 0
    assert attempts >= 2, broker.log()[-2000:]
    messages = [r.getMessage() for r in caplog.records if r.name == "envoy2mqtt.mqtt.link"]
    assert any("CERTIFICATE_VERIFY_FAILED" in m and "MQTT_CA_FILE" in m for m in messages)
    assert any("MQTT_TLS_INSECURE" in m for m in messages)


async def test_username_and_password(
    make_mosquitto: MosquittoFactory, unique_prefix: str, tmp_path: Path
) -> None:
    broker = make_mosquitto(users={"bridge": "s3cret", "observer": "look"})
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = settings_for(
            gateway,
            broker.port,
            unique_prefix,
            tmp_path,
            mqtt_username="bridge",
            mqtt_password="s3cret",
        )
        async with running(settings):
            seen = await bridge_got_through(
                broker.port, unique_prefix, username="observer", password="look"
            )
    assert seen == online(unique_prefix)


async def test_a_wrong_password_is_named_clearly_and_retried_without_crashing(
    make_mosquitto: MosquittoFactory,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make_mosquitto(users={"bridge": "s3cret"})
    async with SimulatedGateway(capture=LEGACY) as gateway:
        settings = settings_for(
            gateway,
            broker.port,
            unique_prefix,
            tmp_path,
            mqtt_username="bridge",
            mqtt_password="wrong",
        )
        # `running` re-raises at the end of the block if the app had crashed
        async with running(settings) as app:
            await asyncio.sleep(RETRIES_SEEN)
            connects = app.link.stats.connects
    assert connects == 0
    refused = broker.log().count("disconnected, not authorised")  # only the bridge connects
    assert refused >= 2, broker.log()[-2000:]
    errors = [
        r for r in caplog.records if r.name == "envoy2mqtt.mqtt.link" and r.levelname == "ERROR"
    ]
    assert len(errors) == 1, "said once, not at every retry"
    message = errors[0].getMessage()
    assert "refused the login" in message
    assert "MQTT_USERNAME" in message
    assert "MQTT_PASSWORD" in message
    assert "wrong" not in message  # never the password itself
