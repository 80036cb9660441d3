"""A listening socket on 127.0.0.1 that can be dropped and re-opened on the same port."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Final

from aiohttp import web

HOST: Final = "127.0.0.1"
BACKLOG: Final = 128


class Listener:
    """Serves an aiohttp runner; `close` refuses connections at once, `open` re-binds."""

    def __init__(self, runner: web.AppRunner, *, port: int, tls: ssl.SSLContext | None) -> None:
        """Nothing is bound until `open`."""
        self.port = port
        self.runner = runner
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._generation = 0

    def open(self) -> None:
        """Bind now (so connections queue in the backlog) and start serving in a task."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._generation += 1
        task = asyncio.get_running_loop().create_task(self._serve(sock, self._generation))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def ready(self) -> None:
        """Wait until every `open` so far has finished starting."""
        await asyncio.gather(*self._pending, return_exceptions=True)

    def close(self) -> None:
        """Stop listening and drop every open connection, requests in flight included."""
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        server = self.runner.server
        for connection in server.connections if server is not None else []:
            connection.force_close()

    async def _serve(self, sock: socket.socket, generation: int) -> None:
        server = self.runner.server
        if server is None or generation != self._generation:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        listening = await loop.create_server(server, sock=sock, ssl=self._tls)
        if generation != self._generation:  # closed again while we were starting
            listening.close()
            return
        self._server = listening
