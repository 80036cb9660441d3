"""Trust on first use for a gateway's self-signed certificate (PIN_GATEWAY_CERTIFICATE).

Gateways present self-signed certificates, so by default they are not verified at all. With
pinning on, the first connection stores the SHA-256 of the certificate in
``STATE_DIR/certificates/<host>.sha256``; every later connection must present the same
certificate, or it fails with an error naming the file to delete once the change is known to
be legitimate (a replaced gateway, or one that renewed its certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import ssl
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from envoy2mqtt.statefile import write_atomically

log = logging.getLogger(__name__)

FOLDER: Final = "certificates"
HTTPS_PORT: Final = 443
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


@functools.cache
def no_verify_ssl() -> ssl.SSLContext:
    """Gateways use self-signed certificates; like every peer, do not verify them.

    One context for all gateways: each context holds the CA store (~0.8 MB), which matters
    with hundreds of gateways in one process.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class PinMismatch(aiohttp.ServerFingerprintMismatch):
    """The gateway presented another certificate than the pinned one."""

    def __init__(self, expected: bytes, got: bytes, host: str, port: int, path: Path) -> None:
        """Keep aiohttp's details and the file that holds the pin."""
        super().__init__(expected, got, host, port)
        self.path = path

    def __str__(self) -> str:
        """What happened and what to do about it."""
        return (
            f"the gateway's certificate changed (SHA-256 {self.got.hex()}, pinned "
            f"{self.expected.hex()}): if the gateway was replaced or renewed its certificate, "
            f"delete {self.path} to trust the new one"
        )


class PinnedFingerprint(aiohttp.Fingerprint):
    """aiohttp's fingerprint check, failing with a `PinMismatch` that names the pin file."""

    def __init__(self, digest: bytes, path: Path) -> None:
        """Expect the certificate with this SHA-256 digest."""
        super().__init__(digest)
        self.path = path

    def check(self, transport: asyncio.Transport) -> None:
        """Raise `PinMismatch` unless the peer's certificate is the pinned one."""
        try:
            super().check(transport)
        except aiohttp.ServerFingerprintMismatch as err:
            raise PinMismatch(err.expected, err.got, err.host, err.port, self.path) from None


class CertificatePins:
    """The pinned certificate fingerprints of every gateway, one file per host in STATE_DIR."""

    def __init__(self, state_dir: Path) -> None:
        """Pins live in `state_dir/certificates`."""
        self.folder = state_dir / FOLDER

    def path(self, host: str) -> Path:
        """The file holding the pin for `host` (a host name or address, optionally :port)."""
        return self.folder / f"{_UNSAFE.sub('_', host)}.sha256"

    async def fingerprint(self, host: str, timeout: float) -> PinnedFingerprint | None:
        """The pin to check `host` against, learnt now if there is none yet.

        None for a gateway without TLS (firmware before 7 speaks plain HTTP): nothing to pin.
        Raises OSError or TimeoutError when the gateway cannot be reached to learn its pin.
        """
        path = self.path(host)
        stored = _read(path)
        if stored is None:
            stored = await peer_fingerprint(host, timeout)
            if stored is None:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, stored.hex() + "\n")
            log.info(
                "gateway %s: trusting its certificate from now on (SHA-256 %s, pinned in %s)",
                host,
                stored.hex(),
                path,
            )
        return PinnedFingerprint(stored, path)


def _read(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError(f"{path} does not hold a SHA-256 fingerprint: delete it to pin again")
    return digest


async def peer_fingerprint(host: str, timeout: float) -> bytes | None:
    """SHA-256 of the certificate `host` presents (None if it does not speak TLS)."""
    where = urlsplit(f"//{host}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store: nothing is verified
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: what it is, is what we pin
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                where.hostname, where.port or HTTPS_PORT, ssl=context
            )
    except ssl.SSLError:
        return None
    try:
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return hashlib.sha256(certificate).digest() if certificate else None
