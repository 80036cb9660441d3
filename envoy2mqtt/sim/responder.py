"""What a healthy gateway answers: auth rules, recorded replies, writes (see `writes`)."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from aiohttp import web

from .behaviour import Behaviour
from .capture import Capture, Recorded, file_name
from .credentials import TokenGate, legacy_passwords, needs_digest
from .digest import DigestAuthority
from .drift import Drift
from .faults import UNAUTHORIZED_PAGE
from .state import SimState
from .writes import Writes

log = logging.getLogger(__name__)

NOT_FOUND: Final = b'{ "error" : "404 - Not Found" }'
VALID_TOKEN_PAGE: Final = b"<!DOCTYPE html><h2>Valid token.</h2>\n"


class Responder:
    """Answers requests from a capture, enforcing the auth its firmware would."""

    def __init__(
        self,
        capture: Capture,
        state: SimState,
        *,
        tokens: TokenGate,
        drift: Drift | None,
        writes: Writes,
        behaviour: Behaviour,
    ) -> None:
        """Firmware 7+ checks bearer tokens; older firmware Digest on guarded endpoints."""
        self._capture = capture
        self._state = state
        self.tokens = tokens
        self._drift = drift
        self.writes = writes
        self._behaviour = behaviour
        self._digest = (
            None if capture.uses_tls else DigestAuthority(legacy_passwords(capture.serial))
        )

    async def respond(self, request: web.Request) -> web.Response:
        """The reply a healthy gateway would send."""
        path = request.path
        self.writes.due()  # the cloud's reverts, by the clock
        self._behaviour.due()
        if path == "/info":
            return reply(self._capture.recordings["info"])
        if self._digest is None:
            if path == "/auth/check_jwt":
                return self._check_jwt(request)
            if not self._bearer_ok(request):
                return self.unauthorized()
        elif needs_digest(path):
            header = request.headers.get("Authorization")
            if self._digest.verify(header, request.method, request.raw_path) is None:
                return self.unauthorized()
        if request.method not in ("GET", "HEAD"):
            return await self._write(request.method, path, await _json_body(request))
        if self._drift is not None:
            self._drift.advance()
        name = file_name(path)
        recorded = self._behaviour.serve(name, self._state.reply(name))
        if recorded is None:
            return web.Response(status=404, body=NOT_FOUND, content_type="application/json")
        return reply(recorded)

    async def _write(self, method: str, path: str, body: Any) -> web.Response:
        answered = self._behaviour.write(method, path, body)
        if answered is not None:
            self.writes.record(method, path, body, answered.status)
            return answered
        response = await self.writes.handle(method, path, body)
        self._behaviour.written(path, response.status)
        return response

    def unauthorized(self) -> web.Response:
        """401 as this firmware sends it (HTML, or a Digest challenge)."""
        if self._digest is None:
            return html(401, UNAUTHORIZED_PAGE)
        return web.Response(
            status=401,
            text="Error: 401",
            headers={"WWW-Authenticate": self._digest.challenge()},
        )

    def _bearer_ok(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.tokens.accepts(token.strip())
        session = request.cookies.get("sessionId")
        return session is not None and self.tokens.session_valid(session)

    def _check_jwt(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not self.tokens.accepts(token):
            return self.unauthorized()
        response = html(200, VALID_TOKEN_PAGE)
        session = self.tokens.open_session(token)
        response.set_cookie("sessionId", session, path="/", secure=True, httponly=True)
        return response


def reply(recorded: Recorded) -> web.Response:
    """A recorded reply with its recorded status and content type."""
    return web.Response(
        status=recorded.status,
        body=recorded.body,
        headers={"Content-Type": recorded.content_type},
    )


def html(status: int, body: bytes) -> web.Response:
    """An HTML reply."""
    return web.Response(status=status, body=body, content_type="text/html")


async def _json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None
