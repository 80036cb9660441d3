"""Foreign exceptions into ours, once, at the edge: I/O and protocol errors only.

A gateway that does not answer, refuses us, or answers something that cannot be parsed is a
`GatewayError` (the bridge marks it offline and backs off). An exception our own code raises
is a bug, not an offline gateway: it passes through untouched, traceback and all. A
`KeyError`/`TypeError`/... counts as the gateway's garbage only when pyenphase raised it while
parsing the gateway's answer; the adapter checks the raw JSON it reads itself and raises
`GatewayUnavailable` there.
"""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Final

import aiohttp
import orjson
from pyenphase.exceptions import EnvoyAuthenticationError, EnvoyAuthenticationRequired, EnvoyError

from envoy2mqtt.gateway.errors import (
    CertificateChanged,
    GatewayAuthError,
    GatewayError,
    GatewayUnavailable,
)

# what parsing an answer of another shape than expected raises inside pyenphase's models
SHAPE_ERRORS: Final = (KeyError, TypeError, ValueError, AttributeError, IndexError)
PARSER: Final = "pyenphase"
OURS: Final = "envoy2mqtt"


class translated:  # noqa: N801 - used like a function: `async with translated("...")`
    """Translate pyenphase/aiohttp exceptions into GatewayError; let everything else through."""

    def __init__(self, doing: str, host: str | None = None) -> None:
        """`doing` starts each message ("reading /info", ...); `host` says what to check."""
        self.doing = doing
        self.host = host

    def __enter__(self) -> None:
        """Nothing to set up."""

    def __exit__(
        self,
        _kind: type[BaseException] | None,
        err: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        """Raise our error in place of a foreign one."""
        if not isinstance(err, Exception):
            return
        ours: GatewayError | None = unreachable(err, self.doing, self.host) if self.host else None
        if ours is None:
            ours = translation(err, self.doing)
        if ours is not None:
            raise ours from err

    async def __aenter__(self) -> None:
        """Nothing to set up."""

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Raise our error in place of a foreign one."""
        self.__exit__(kind, err, tb)


def translation(err: Exception, doing: str) -> GatewayError | None:
    """Our error for a foreign one; None for one that is not the gateway's doing."""
    if isinstance(err, GatewayError):
        return None
    if (changed := _fingerprint_mismatch(err)) is not None:
        return CertificateChanged(f"{doing}: {changed}")
    if isinstance(err, EnvoyAuthenticationRequired | EnvoyAuthenticationError):
        return GatewayAuthError(f"{doing}: the gateway refused our credentials")
    if isinstance(err, TimeoutError):
        return GatewayUnavailable(f"{doing}: the gateway did not answer in time")
    if isinstance(err, aiohttp.ClientError):
        return GatewayUnavailable(f"{doing}: {type(err).__name__}")
    if isinstance(err, EnvoyError):
        return GatewayUnavailable(f"{doing}: {err}")
    if isinstance(err, orjson.JSONDecodeError):
        return GatewayUnavailable(f"{doing}: the gateway answered something that is not JSON")
    # lxml's XMLSyntaxError and ElementTree's ParseError are SyntaxErrors: an /info that is
    # not XML (nothing else parses text at run time)
    if isinstance(err, SyntaxError):
        return GatewayUnavailable(f"{doing}: the gateway answered something that is not XML")
    if isinstance(err, SHAPE_ERRORS) and raised_by_parser(err):
        return GatewayUnavailable(
            f"{doing}: unexpected data from the gateway ({type(err).__name__}: {err})"
        )
    return None


def unreachable(err: BaseException, doing: str, host: str) -> GatewayUnavailable | None:
    """A gateway we could not talk to at all, said so that the user knows what to check."""
    for cause in _chain(err):
        if isinstance(cause, aiohttp.ServerFingerprintMismatch):
            return None  # a changed certificate is told apart (CertificateChanged)
        if isinstance(cause, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return GatewayUnavailable(
                f"{doing}: the TLS handshake with the gateway at {host} failed ({cause}) "
                "- check that ENVOY_HOST is the gateway and not another device"
            )
        if isinstance(cause, aiohttp.ClientConnectorError):
            return GatewayUnavailable(
                f"{doing}: cannot reach the gateway at {host}: {_why(cause)} - check ENVOY_HOST"
            )
        if isinstance(cause, TimeoutError):
            return GatewayUnavailable(
                f"{doing}: the gateway at {host} did not answer in time - check ENVOY_HOST, "
                "and that the gateway is powered and on the network"
            )
    return None


def _why(err: aiohttp.ClientConnectorError) -> str:
    os_error = err.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(os_error, socket.gaierror):
        return "the name does not resolve"
    return os_error.strerror or type(os_error).__name__


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and len(out) < 8:  # chains are short; never follow a cycle
        out.append(cause)
        cause = cause.__cause__ or cause.__context__
    return out


def raised_by_parser(err: BaseException) -> bool:
    """Whether pyenphase, not our code, raised `err`: the innermost of their frames and ours.

    Frames of other libraries (aiohttp, the standard library) do not count, so a shape error
    in our aiohttp middleware, called from within pyenphase's request, stays ours.
    """
    owner = None
    tb = err.__traceback__
    while tb is not None:
        package = str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0]
        if package in (PARSER, OURS):
            owner = package
        tb = tb.tb_next
    return owner == PARSER


def _fingerprint_mismatch(err: BaseException) -> aiohttp.ServerFingerprintMismatch | None:
    """A changed pinned certificate, however deep pyenphase wrapped it."""
    cause: BaseException | None = err
    for _ in range(8):  # chains are short; never follow a cycle
        if cause is None or isinstance(cause, aiohttp.ServerFingerprintMismatch):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
