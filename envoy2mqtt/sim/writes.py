"""What the simulated gateway does with writes, and how real gateways let writes down.

The endpoints and bodies are the ones pyenphase sends: the tariff document PUT whole,
the grid relay, a dry contact's position, a dry contact's complete settings (a partial set
is refused: it can crash a real gateway), the generator mode. A write changes what the
gateway reports from then on. `WriteFault` switches in what happens in the field: the write
is taken with a 200 and ignored (a storage mode with optimised schedules on), taken and put
back a while later (Enphase's cloud), refused as installer-only, or never answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aiohttp import web

from .faults import UNAUTHORIZED_PAGE
from .relay import Relay
from .setters import BadWrite, Setters, Undo
from .state import SimState

log = logging.getLogger(__name__)

FORBIDDEN_PAGE: Final = b"<html><body><h1>403 Forbidden</h1></body></html>\n"


class WriteFault(StrEnum):
    """How the gateway lets a write down; `NONE` is a gateway that does as it is told."""

    NONE = "none"
    IGNORE = "ignore"  # answer 200 and change nothing
    REVERT = "revert"  # take it, then put the old value back `revert_after` seconds later
    REJECT = "reject"  # 403, as for an installer-only setting and an owner's token
    UNAUTHORIZED = "unauthorized"  # 401 on writes only
    TIMEOUT = "timeout"  # never answer until the fault is cleared


@dataclass(frozen=True, kw_only=True, slots=True)
class WritePlan:
    """A write fault, the endpoint paths it hits (None = every write) and the revert delay."""

    fault: WriteFault = WriteFault.NONE
    paths: frozenset[str] | None = None
    revert_after: float = 60.0

    def applies_to(self, path: str) -> bool:
        """Whether a write to `path` is affected."""
        return self.fault is not WriteFault.NONE and (self.paths is None or path in self.paths)


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One write received: when (the gateway's clock), method, path, JSON body, status."""

    at: float
    method: str
    path: str
    body: Any
    status: int


class Writes:
    """The gateway's write endpoints over its served documents."""

    def __init__(self, state: SimState, clock: Callable[[], float], relay: Relay) -> None:
        """Writes change `state` (relay writes move `relay`); reverts fall due by `clock`."""
        self._state = state
        self._clock = clock
        self.plan = WritePlan()
        self.log: list[WriteRecord] = []
        self._reverts: list[tuple[float, Undo]] = []
        self._plan_changed = asyncio.Event()
        self._routes = Setters(state, relay).routes()

    def set_plan(self, plan: WritePlan) -> None:
        """Switch the write fault now (a hung write is released)."""
        self.plan = plan
        previous, self._plan_changed = self._plan_changed, asyncio.Event()
        previous.set()

    def release(self) -> None:
        """Let hung writes go (the gateway is stopping)."""
        self._plan_changed.set()

    def due(self) -> None:
        """Put back the writes whose revert time has come (called on every request)."""
        now = self._clock()
        due = [undo for at, undo in self._reverts if at <= now]
        self._reverts = [(at, undo) for at, undo in self._reverts if at > now]
        for undo in due:
            undo()
            log.info("a write was reverted (as Enphase's cloud does)")

    async def handle(self, method: str, path: str, body: Any) -> web.Response:
        """Answer one write as the gateway would."""
        response = await self._answer(method, path, body)
        self.record(method, path, body, response.status)
        return response

    def record(self, method: str, path: str, body: Any, status: int) -> None:
        """Log a write answered here or elsewhere (the live-data stream switch)."""
        self.log.append(WriteRecord(self._clock(), method, path, body, status))

    async def _answer(self, method: str, path: str, body: Any) -> web.Response:
        route = self._routes.get(path)
        if route is None or route[0] != method:
            return web.Response(status=405, text="Method Not Allowed")
        while (plan := self.plan).applies_to(path):
            match plan.fault:
                case WriteFault.TIMEOUT:
                    await self._plan_changed.wait()
                    continue
                case WriteFault.REJECT:
                    return web.Response(status=403, body=FORBIDDEN_PAGE, content_type="text/html")
                case WriteFault.UNAUTHORIZED:
                    return web.Response(
                        status=401, body=UNAUTHORIZED_PAGE, content_type="text/html"
                    )
            break
        try:
            apply = route[1](body)
        except BadWrite as err:
            log.warning("refused a write to %s: %s", path, err)
            return web.json_response({"error": str(err)}, status=400)
        fault = plan.fault if plan.applies_to(path) else WriteFault.NONE
        if fault is not WriteFault.IGNORE:
            undo = apply()
            if fault is WriteFault.REVERT:
                self._reverts.append((self._clock() + plan.revert_after, undo))
        return web.json_response(self._answer_document(path))

    def _answer_document(self, path: str) -> Any:
        name = path.strip("/").replace("/", "_")
        return self._state.documents.get(name, {})
