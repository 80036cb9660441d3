"""An aiohttp app served on 127.0.0.1, plain or TLS, shared by the simulated services."""

from __future__ import annotations

import asyncio
import socket
import ssl
from types import TracebackType
from typing import Final, Self

from aiohttp import web

HOST: Final = "127.0.0.1"
BACKLOG: Final = 128
SHUTDOWN_TIMEOUT: Final = 1.0


class Listener:
    """Serves an aiohttp app on 127.0.0.1; `close` refuses connections at once, `open` re-binds.

    `port=0` picks a free port when first opened; later `open`s re-bind that same port,
    and `port`, `host` and `url` keep describing it after `stop`.
    """

    def __init__(self, *, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """Nothing runs until `start`."""
        self.port = port
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._generation = 0

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, `http://127.0.0.1:PORT` or `https://...` with TLS."""
        return f"{'https' if self._tls is not None else 'http'}://{self.host}"

    @property
    def running(self) -> bool:
        """Between `start` and `stop` (listening or not)."""
        return self._runner is not None

    async def start(
        self, app: web.Application, *, handler_cancellation: bool = False, listen: bool = True
    ) -> None:
        """Set `app` up and, unless `listen` is False, `open` and wait until it serves."""
        runner = web.AppRunner(
            app,
            handler_cancellation=handler_cancellation,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        self._runner = runner
        if listen:
            try:
                self.open()
            except OSError:  # port taken: leave nothing half-started behind
                await self.stop()
                raise
            await self.ready()

    async def stop(self, *, drop_requests: bool = True) -> None:
        """Stop listening and tear the app down (idempotent).

        `drop_requests` closes every connection at once, hung requests included;
        otherwise requests in flight get aiohttp's graceful `SHUTDOWN_TIMEOUT`.
        """
        if self._runner is None:
            return
        if drop_requests:
            self.close()
        else:
            self._unbind()
        await self.ready()
        await self._runner.cleanup()
        self._runner = None

    def open(self) -> None:
        """Bind now (so connections queue in the backlog) and start serving in a task."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
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
        self._unbind()
        server = self._runner.server if self._runner is not None else None
        for connection in server.connections if server is not None else []:
            connection.force_close()

    def _unbind(self) -> None:
        """Stop listening (and cancel any `open` still starting); connections stay."""
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, sock: socket.socket, generation: int) -> None:
        server = self._runner.server if self._runner is not None else None
        if server is None or generation != self._generation:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        listening = await loop.create_server(server, sock=sock, ssl=self._tls)
        if generation != self._generation:  # closed again while we were starting
            listening.close()
            return
        self._server = listening


class Served:
    """A simulated service on a `Listener`: its address, and `async with` to run it."""

    _listener: Listener

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        return self._listener.port

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form pyenphase's `Envoy(host)` wants."""
        return self._listener.host

    @property
    def url(self) -> str:
        """Base URL, `http://127.0.0.1:PORT` (or `https://...`)."""
        return self._listener.url

    async def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Start serving."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving."""
        await self.stop()
