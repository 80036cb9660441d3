"""A real Mosquitto broker for tests, and small aiomqtt helpers that watch it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST: Final = "127.0.0.1"
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0
_MISSING: Final = "mosquitto not found: run ./scripts/test, which installs it"


class MosquittoError(RuntimeError):
    """The broker is missing, or would not start or stop."""


def _find(name: str, *fallbacks: str) -> str:
    """Locate a Mosquitto executable on PATH or where Debian puts it."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in fallbacks:
        if os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoError(f"{name}: {_MISSING}")


def _free_port() -> int:
    """A free port below the ephemeral range, so no client socket can steal it on restart."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(10_000, low - 1) if low > 11_000 else 0
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise MosquittoError("no free port on 127.0.0.1")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of a throwaway CA, a server certificate for 127.0.0.1/localhost and a client one."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path) -> Pki:
        """Write a fresh CA, server and client key pair into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envoy2mqtt test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(name: str, usage: x509.ObjectIdentifier, *sans: x509.GeneralName) -> bytes:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                    critical=False,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
            )
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            cert = builder.sign(ca_key, hashes.SHA256())
            (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        server_key = leaf(
            "server",
            ExtendedKeyUsageOID.SERVER_AUTH,
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address(HOST)),
        )
        client_key = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
        for name, pem in (("server", server_key), ("client", client_key)):
            path = directory / f"{name}.key"
            path.write_bytes(pem)
            path.chmod(0o600)
        return cls(
            ca_cert=directory / "ca.crt",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
            client_cert=directory / "client.crt",
            client_key=directory / "client.key",
        )

    def client_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext:
        """A client SSL context trusting only the test CA, presenting the client cert if asked."""
        context = ssl.create_default_context(cafile=self.ca_cert)
        if with_client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


class MosquittoFactory(Protocol):
    """The `make_mosquitto` fixture: start a broker with options; it stops after the test."""

    def __call__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        tls: bool = False,
        require_client_cert: bool = False,
        persistence: bool = False,
        extra_config: str = "",
    ) -> Mosquitto: ...


class Mosquitto:
    """A real mosquitto on 127.0.0.1, on a port it keeps across restarts.

    `users` switches on a password file and `allow_anonymous false`; `tls` adds a TLS
    listener on `tls_port` (the plain `port` stays, for observers); `persistence` keeps
    sessions and retained messages in `workdir` across restarts (autosaved every second,
    so they survive `kill()` too).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        tls: bool = False,
        require_client_cert: bool = False,
        persistence: bool = False,
        extra_config: str = "",
    ) -> None:
        self.binary = _find("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
        self.host: Final = HOST
        self.workdir = workdir
        self.users = dict(users or {})
        self.persistence = persistence
        self.extra_config = extra_config
        self.require_client_cert = require_client_cert
        self.pki = Pki.create(workdir / "pki") if tls else None
        self.port = _free_port()
        self._tls_port = _free_port() if tls else None
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        self._output_path = workdir / "mosquitto.out"
        # One slot the finalizer can hold without keeping `self` alive.
        self._process: list[subprocess.Popen[bytes] | None] = [None]
        self._started_once = False
        workdir.mkdir(parents=True, exist_ok=True)
        if self.users:
            self._write_password_file()
        # A broker must never outlive the test run, even if a fixture's teardown is skipped.
        weakref.finalize(self, _reap, self._process)

    @property
    def tls_port(self) -> int:
        """The TLS listener's port."""
        if self._tls_port is None:
            raise MosquittoError("this broker was created without tls=True")
        return self._tls_port

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        process = self._process[0]
        return process is not None and process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the broker and return once every listener accepts connections."""
        if self.running:
            return self
        self._write_config()
        deadline = time.monotonic() + timeout
        while True:
            marks = self._output_sizes()
            process = self._spawn()
            if self._wait_ready(process, deadline):
                self._started_once = True
                return self
            output = self.output(since=marks)
            if "Address already in use" not in output or time.monotonic() > deadline:
                raise MosquittoError(f"mosquitto did not start on port {self.port}:\n{output}")
            if not self._started_once:  # a fresh broker may move; a restarted one may not
                self.port = _free_port()
                self._tls_port = _free_port() if self._tls_port is not None else None
                self._write_config()
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the broker gracefully (SIGTERM), as a service manager would."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill the broker (SIGKILL): no goodbye to clients, no last save."""
        self._end(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, *, hard: bool = False, down_for: float = 0.0) -> Self:
        """Stop (or with `hard`, kill) the broker and start it again on the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start()

    async def start_async(self) -> Self:
        """`start()` without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def restart_async(self, *, hard: bool = False, down_for: float = 0.0) -> Self:
        """`restart()` without blocking the event loop, so clients notice the outage."""
        await asyncio.to_thread(self.kill if hard else self.stop)
        await asyncio.sleep(down_for)
        return await self.start_async()

    def log(self) -> str:
        """The broker's log so far (handy in assertion messages)."""
        return _read(self.log_path)

    def output(self, since: tuple[int, int] = (0, 0)) -> str:
        """The broker's log and its stdout/stderr (start-up errors land there)."""
        return _read(self.log_path, since[0]) + _read(self._output_path, since[1])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Mosquitto {self.host}:{self.port} {state}>"

    def _output_sizes(self) -> tuple[int, int]:
        return _size(self.log_path), _size(self._output_path)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._output_path.open("ab") as output:
            process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._process[0] = process
        return process

    def _wait_ready(self, process: subprocess.Popen[bytes], deadline: float) -> bool:
        ports = [self.port] if self._tls_port is None else [self.port, self._tls_port]
        while process.poll() is None:
            if all(_accepts(port) for port in ports):
                return True
            if time.monotonic() > deadline:
                self._end(signal.SIGKILL, STOP_TIMEOUT)
                raise MosquittoError(f"mosquitto not ready on {ports}:\n{self.output()}")
            time.sleep(0.01)
        return False

    def _end(self, signum: signal.Signals, timeout: float) -> None:
        process, self._process[0] = self._process[0], None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
            raise MosquittoError(f"mosquitto ignored {signum.name}:\n{self.output()}") from None

    def _write_password_file(self) -> None:
        passwd = _find("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
        path = self.workdir / "passwd"
        path.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run(
                [passwd, *create, "-b", str(path), user, password],
                check=True,
                capture_output=True,
            )

    def _write_config(self) -> None:
        lines = [
            "# written by tests/broker.py",
            "per_listener_settings false",
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to a user who cannot read workdir
        if self.users:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        lines += ["", f"listener {self.port} {HOST}"]
        if self.pki is not None:
            lines += [
                "",
                f"listener {self.tls_port} {HOST}",
                f"cafile {self.pki.ca_cert}",
                f"certfile {self.pki.server_cert}",
                f"keyfile {self.pki.server_key}",
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        if self.extra_config:
            lines += ["", self.extra_config]
        self.config_path.write_text("\n".join(lines) + "\n")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read(path: Path, offset: int = 0) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


def _reap(slot: list[subprocess.Popen[bytes] | None]) -> None:
    process = slot[0]
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


async def collect(
    host: str,
    port: int,
    topic_filter: str,
    *,
    until: Callable[[dict[str, bytes]], bool] | None = None,
    timeout: float = 5.0,
    username: str | None = None,
    password: str | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> dict[str, bytes]:
    """Subscribe and gather topic -> last payload until `until` holds or `timeout` passes.

    Returns what it has either way, so the caller's assert shows what did arrive.
    """
    seen: dict[str, bytes] = {}
    async with aiomqtt.Client(
        host, port, username=username, password=password, tls_context=tls_context, timeout=timeout
    ) as client:
        await client.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for message in client.messages:
                    seen[message.topic.value] = _payload(message)
                    if until is not None and until(seen):
                        break
    return seen


@dataclass(frozen=True, slots=True)
class Record:
    """One message as a subscriber saw it."""

    t: float  # time.monotonic() on arrival
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Recorder:
    """Records every message matching `topic_filter`, in order, across broker restarts.

    Entering returns once subscribed. If the broker goes away the recorder reconnects and
    resubscribes (so retained messages arrive again, with retain=True, as on the wire).
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic_filter: str = "#",
        *,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.records: list[Record] = []
        self.connections = 0
        self.last_error: aiomqtt.MqttError | None = None
        self._username, self._password = username, password
        self._host, self._port, self._filter, self._qos = host, port, topic_filter, qos
        self._tls_context = tls_context
        self._changed = asyncio.Condition()
        self._subscribed = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"recorder {self._filter}")
        try:
            await self.wait_connected()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def latest(self) -> dict[str, bytes]:
        """Topic -> last payload recorded."""
        return {record.topic: record.payload for record in self.records}

    def on(self, topic: str) -> list[Record]:
        """The records of one topic."""
        return [record for record in self.records if record.topic == topic]

    async def wait_connected(self, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Wait until subscribed on at least the `count`-th connection (2: after one outage)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self._subscribed and self.connections >= count)
        except TimeoutError:
            raise TimeoutError(
                f"recorder not connected within {timeout}s ({self.connections} connections so "
                f"far, last error: {self.last_error!r})"
            ) from None

    async def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 5.0
    ) -> list[Record]:
        """Wait until `predicate(records)` holds; TimeoutError lists the recent records."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: predicate(self.records))
        except TimeoutError:
            recent = "\n".join(f"  {r}" for r in self.records[-20:])
            raise TimeoutError(
                f"not met within {timeout}s; {len(self.records)} records, the last:\n{recent}"
            ) from None
        return self.records

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    username=self._username,
                    password=self._password,
                    tls_context=self._tls_context,
                    timeout=5,
                ) as client:
                    await client.subscribe(self._filter, qos=self._qos)
                    async with self._changed:
                        self.connections += 1
                        self._subscribed = True
                        self._changed.notify_all()
                    async for message in client.messages:
                        record = Record(
                            time.monotonic(),
                            message.topic.value,
                            _payload(message),
                            bool(message.retain),
                            int(message.qos),
                        )
                        async with self._changed:
                            self.records.append(record)
                            self._changed.notify_all()
            except aiomqtt.MqttError as err:
                self.last_error = err
                self._subscribed = False
                await asyncio.sleep(0.05)
