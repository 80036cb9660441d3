"""An unreachable gateway is said in words that say what to check, once per attempt."""

from __future__ import annotations

import asyncio
import socket

import pytest

from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayUnavailable


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_refused_names_the_host_and_the_setting() -> None:
    host = f"127.0.0.1:{closed_port()}"
    async with GatewayClient(host, timeout=2) as client:
        with pytest.raises(GatewayUnavailable) as caught:
            await client.connect()
    assert str(caught.value) == (
        f"reading /info: cannot reach the gateway at {host}: connection refused - check ENVOY_HOST"
    )


async def test_silent_gateway_is_one_attempt_per_connect_with_a_hint() -> None:
    """pyenphase alone tries /info four times (https, then http, each): the bridge once."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with GatewayClient(f"127.0.0.1:{port}", timeout=1) as client:
            with pytest.raises(GatewayUnavailable) as caught:
                await client.connect()
    finally:
        # closing a server leaves what it accepted open (Python 3.11): close each one
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
    connections = len(accepted)
    assert "did not answer in time - check ENVOY_HOST" in str(caught.value)
    assert connections == 2, connections  # https, then pyenphase's http fallback: no retries
