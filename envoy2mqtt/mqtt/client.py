"""aiomqtt's client with one race mended (used only by the link).

aiomqtt hands paho's "register write" to the event loop with `call_soon_threadsafe(add_writer,
sock.fileno(), ...)`: the file number is taken when scheduled, the writer added later. When the
broker drops the connection in between, the socket is closed by then and asyncio logs
`Exception in callback BaseSelectorEventLoop.add_writer(...) OSError: [Errno 9] Bad file
descriptor` (or, worse, the number belongs to a new socket). Here the number is taken when
the writer is added, and a socket closed meanwhile is simply not watched: the connection is
gone and the link's reconnect takes over.

paho also leaks the TLS socket when the handshake fails (an unknown CA, say): `ClosingSSLSocket`
closes it then, so every failed attempt gives its file descriptor back at once.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt


class Client(aiomqtt.Client):
    """aiomqtt.Client, registering paho's writes only on sockets that are still open."""

    def _on_socket_register_write(
        self,
        client: mqtt.Client,
        userdata: Any,  # noqa: ARG002 - paho's callback signature
        sock: Any,
    ) -> None:
        def write() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # a broken connection: aiomqtt's way out
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            fileno = sock.fileno()
            if fileno < 0:
                return  # closed before the loop got here
            try:
                self._loop.add_writer(fileno, write)
            except (OSError, ValueError):
                return  # closed meanwhile

        self._loop.call_soon_threadsafe(register)


class ClosingSSLSocket(ssl.SSLSocket):
    """An SSLSocket that closes itself when its blocking handshake fails (paho drops it open)."""

    def do_handshake(self, block: bool = False) -> None:
        """Shake hands; on failure close the socket before raising."""
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake in progress: not a failure
        except BaseException:
            self.close()
            raise
