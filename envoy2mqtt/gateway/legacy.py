"""Digest auth for firmware < 7, with the request gate travelling along.

pyenphase passes the digest middleware per request, which replaces the session's own
middlewares (the gate and the per-request timeout), so the gate must travel with it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from pyenphase.auth import EnvoyAuth, EnvoyLegacyAuth

from envoy2mqtt.gateway.gate import Gate, Timeouts, answered_within, polite


class GatedLegacyAuth(EnvoyAuth):
    """pyenphase's digest auth, with the gate and the request timeout around its middleware."""

    def __init__(self, inner: EnvoyLegacyAuth, gate: Gate, timeouts: Timeouts) -> None:
        """Wrap `inner`; `timeouts` bound each request from when it holds its slot."""
        self._inner = inner
        self._gate = polite(gate)
        self._timed = answered_within(timeouts)

    async def setup(self, client: aiohttp.ClientSession) -> None:
        """As pyenphase's digest auth."""
        await self._inner.setup(client)

    @property
    def cookies(self) -> dict[str, str]:
        """As pyenphase's digest auth."""
        return self._inner.cookies

    @property
    def auth(self) -> Any:
        """The digest middleware, inside the gate and the request timeout."""
        digest = self._inner.auth
        if digest is None:
            return None
        gate, timed = self._gate, self._timed

        async def gated(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
            async def inner(req: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
                return await digest(req, handler)

            async def bounded(req: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
                return await timed(req, inner)

            return await gate(request, bounded)

        return gated

    @property
    def headers(self) -> dict[str, str]:
        """As pyenphase's digest auth."""
        return self._inner.headers

    def get_endpoint_url(self, endpoint: str) -> str:
        """As pyenphase's digest auth."""
        return self._inner.get_endpoint_url(endpoint)
