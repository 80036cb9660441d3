"""Pinning the gateway's certificate: trust on first use, a clear error when it changes."""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import envoy2mqtt.sim.gateway
from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import CertificateChanged
from envoy2mqtt.gateway.pinning import CertificatePins
from envoy2mqtt.sim import SimulatedGateway
from envoy2mqtt.sim.tls import certificate_pem
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running

HTTPS = "7.6.175_with_cts"  # firmware 7: HTTPS with a self-signed certificate
LEGACY = "3.9.36"  # plain HTTP: nothing to pin


def sha256_of(pem: bytes) -> str:
    """The fingerprint aiohttp checks: SHA-256 of the DER certificate."""
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@contextmanager
def other_certificate(folder: Path) -> Iterator[bytes]:
    """Simulated gateways started inside the block present a new certificate (its PEM)."""
    cert, key = certificate_pem.__wrapped__()  # a fresh pair, not the process-wide one
    (folder / "other.crt").write_bytes(cert)
    (folder / "other.key").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "other.crt", folder / "other.key")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envoy2mqtt.sim.gateway, "server_context", lambda: context)
        yield cert


async def connect(gateway: SimulatedGateway, pins: CertificatePins | None) -> None:
    """Connect and read once, as the bridge does."""
    tokens = FixedToken(gateway.make_token()) if gateway.uses_tls else None
    async with GatewayClient(gateway.host, tokens=tokens, timeout=5, pins=pins) as client:
        await client.connect()
        await client.read_normal()


async def test_first_use_pins_the_certificate_and_the_same_one_keeps_working(
    tmp_path: Path,
) -> None:
    pins = CertificatePins(tmp_path)
    async with SimulatedGateway(capture=HTTPS) as gateway:
        await connect(gateway, pins)
        pinned = pins.path(gateway.host).read_text().strip()
        await connect(gateway, pins)
        await connect(gateway, pins)
    assert pinned == sha256_of(certificate_pem()[0])
    assert pins.path(gateway.host).read_text().strip() == pinned
    assert pins.path(gateway.host).parent == tmp_path / "certificates"


async def test_a_changed_certificate_fails_naming_the_file_to_delete(tmp_path: Path) -> None:
    pins = CertificatePins(tmp_path)
    original = sha256_of(certificate_pem()[0])
    with other_certificate(tmp_path) as other:
        async with SimulatedGateway(capture=HTTPS) as replaced:
            # pinned on an earlier run, when this address answered with the original
            pin = pins.path(replaced.host)
            pin.parent.mkdir(parents=True)
            pin.write_text(original + "\n")
            await check_refused_then_accepted(replaced, pins, original, sha256_of(other))


async def check_refused_then_accepted(
    replaced: SimulatedGateway, pins: CertificatePins, original: str, other: str
) -> None:
    """A clear refusal; deleting the pin file accepts the new certificate."""
    pin = pins.path(replaced.host)
    with pytest.raises(CertificateChanged) as refused:
        await connect(replaced, pins)
    message = str(refused.value)
    assert str(pin) in message
    assert "delete" in message
    assert other in message
    assert pin.read_text().strip() == original, "a mismatch never re-pins by itself"

    pin.unlink()  # the user accepts the new certificate
    await connect(replaced, pins)
    assert pin.read_text().strip() == other


async def test_plain_http_gateways_have_nothing_to_pin(tmp_path: Path) -> None:
    pins = CertificatePins(tmp_path)
    async with SimulatedGateway(capture=LEGACY) as gateway:
        await connect(gateway, pins)
    assert not pins.path(gateway.host).exists()


async def test_a_damaged_pin_file_is_reported_not_ignored(tmp_path: Path) -> None:
    pins = CertificatePins(tmp_path)
    async with SimulatedGateway(capture=HTTPS) as gateway:
        pin = pins.path(gateway.host)
        pin.parent.mkdir(parents=True)
        pin.write_text("not a fingerprint\n")
        with pytest.raises(CertificateChanged, match=str(pin)):
            await connect(gateway, pins)


async def test_the_bridge_pins_on_first_use_and_reports_a_change_while_running(
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="envoy2mqtt")
    state = tmp_path / "state"
    async with SimulatedGateway(capture=HTTPS) as gateway:
        port, host = gateway.port, gateway.host
        settings = bridge_settings(
            gateway, mosquitto_session.port, unique_prefix, state, pin_gateway_certificate=True
        )
        pin = CertificatePins(state).path(host)
        availability = f"{unique_prefix}/{gateway.serial}/availability"
        async with (
            Recorder("127.0.0.1", mosquitto_session.port, availability) as recorder,
            running(settings),
        ):
            await recorder.wait_for(lambda r: [x.payload for x in r] == [b"online"], 20)
            assert pin.read_text().strip() == sha256_of(certificate_pem()[0])
            await gateway.stop()
            # the same address now answers with another certificate (and accepts the token)
            with other_certificate(tmp_path):
                async with SimulatedGateway(capture=HTTPS, port=port) as impostor:
                    assert impostor.host == host
                    await recorder.wait_for(lambda r: r[-1].payload == b"offline", 20)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("certificate changed" in m and str(pin) in m for m in errors), errors
    assert any("pinned in" in r.getMessage() for r in caplog.records)
