"""The simulated Envoy: replays a capture over real HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from . import ensemble
from .behaviour import Behaviour
from .capture import Capture, file_name, load_capture
from .credentials import (
    ONE_YEAR,
    OWNER,
    SIM_TOKEN_KEY,
    TokenGate,
    TokenType,
    legacy_passwords,
    make_token,
)
from .drift import Drift
from .faults import HTML_ERROR_PAGE, Fault, FaultPlan
from .field import FIELD_OFF, Field
from .listener import Listener, Served
from .responder import Responder, html
from .state import SimState
from .stats import NO_RESPONSE, GatewayStats
from .tls import server_context
from .writes import WriteFault, WritePlan, WriteRecord, Writes

log = logging.getLogger(__name__)


class SimulatedGateway(Served):
    """An Envoy / IQ Gateway replaying one capture; use as an async context manager.

    Firmware 7+ serves HTTPS and wants a bearer JWT (or the sessionId cookie that
    /auth/check_jwt hands out); older firmware serves plain HTTP with Digest auth on
    /api/v1/production/inverters and /ivp/*. A plain-HTTP gateway needs no special
    TLS handling: pyenphase's https:// probe of /info fails the TLS handshake with
    aiohttp's ClientConnectorSSLError, a ClientConnectorError, which is exactly what
    makes it fall back to http://.

    /ivp/ensemble/relay is served by default whenever the capture has an Enpower
    (recent firmware always has the endpoint; no bundled capture recorded it), and
    /ivp/sc/sched (what the battery controller runs, as on D8.3) whenever its tariff has
    storage settings; `serve_schedule=False` is firmware without it (404). Writes
    (`writes`) change what it serves; `set_write_fault` makes them fail as in the field.

    `field` switches in the real gateway's behaviour (slow pages, transitional relay states,
    a nightly window, ignored writes, noise; see `Field`); the default replays instantly.
    """

    def __init__(
        self,
        *,
        capture: str | Path | Capture,
        port: int = 0,
        drift: bool = False,
        clock: Callable[[], float] = time.time,
        token_key: str = SIM_TOKEN_KEY,
        serve_relay: bool | None = None,
        serve_schedule: bool = True,
        latency: float = 0.0,
        seed: int | None = None,
        utc_offset_s: float | None = None,
        field: Field = FIELD_OFF,
    ) -> None:
        """Load a capture; `serve_relay=None` serves /ivp/ensemble/relay iff it has an Enpower."""
        self.capture = capture if isinstance(capture, Capture) else load_capture(capture)
        self.state = SimState(self.capture, serve_relay=serve_relay, serve_schedule=serve_schedule)
        self.stats = GatewayStats()
        self.latency = latency
        self._clock = clock
        self._token_key = token_key
        if utc_offset_s is None:
            utc_offset_s = float(time.localtime(clock()).tm_gmtoff)
        self._drift = (
            Drift(self.state, clock=clock, utc_offset_s=utc_offset_s, seed=seed) if drift else None
        )
        self.field = field
        self._behaviour = Behaviour(self.state, self.field, clock=clock, utc_offset_s=utc_offset_s)
        ensemble.show_controller(self.state, secctrl=False)  # /ivp/sc/sched
        self._writes = Writes(self.state, clock, self._behaviour.relay)
        self._responder = Responder(
            self.capture,
            self.state,
            tokens=TokenGate(serial=self.serial, key=token_key, clock=clock),
            drift=self._drift,
            writes=self._writes,
            behaviour=self._behaviour,
        )
        self._plan = FaultPlan()
        self._fault_changed = asyncio.Event()
        self._listener = Listener(port=port, tls=server_context() if self.uses_tls else None)

    # -- identity -------------------------------------------------------------------------

    @property
    def serial(self) -> str:
        """Gateway serial number from the capture's /info."""
        return self.capture.serial

    @property
    def firmware(self) -> str:
        """Firmware version without its R/D prefix, e.g. "7.6.175"."""
        return self.capture.firmware

    @property
    def uses_tls(self) -> bool:
        """HTTPS + JWT (firmware 7+) rather than HTTP + Digest."""
        return self.capture.uses_tls

    def make_token(self, *, lifetime: float = ONE_YEAR, token_type: TokenType = OWNER) -> str:
        """A token this gateway accepts (same key and clock)."""
        return make_token(
            self.serial,
            lifetime=lifetime,
            token_type=token_type,
            key=self._token_key,
            clock=self._clock,
        )

    def legacy_password(self, user: str = "envoy") -> str:
        """Digest password of `envoy` or `installer` on a pre-7 gateway."""
        return legacy_passwords(self.serial)[user]

    # -- simulation controls --------------------------------------------------------------

    @property
    def grid_on(self) -> bool:
        """Whether the grid relay is closed."""
        self._behaviour.due()
        return self.state.grid_on

    @property
    def grid_changes(self) -> int:
        """How many times the grid state flipped."""
        return self.state.grid_changes

    @property
    def grid_log(self) -> list[tuple[float, bool]]:
        """(time.monotonic(), new state) for every flip, oldest first."""
        return self.state.grid_log

    def set_grid(self, on: bool) -> bool:
        """The grid fails (False) or returns (True); True if that changes the grid state.

        With `field.relay_transitions` the relay reads `open synchronizing`, then `open
        synchronized` while islanded, and recloses a while after the grid returns.
        """
        self._behaviour.due()
        changed = on != self.state.grid_on
        if changed:
            log.info("grid %s -> %s", "off" if on else "on", "on" if on else "off")
            if on:
                self._behaviour.relay.restore_grid()
            else:
                self._behaviour.relay.fail_grid()
        return changed

    def fail_grid(self) -> bool:
        """The grid fails: the relay opens (an outage, not a command)."""
        return self.set_grid(False)

    def restore_grid(self) -> bool:
        """The grid returns: the relay recloses (after the field's delay, if on)."""
        return self.set_grid(True)

    @property
    def relay_state(self) -> tuple[str, str]:
        """(mains_admin_state, mains_oper_state) as /ivp/ensemble/relay serves them now."""
        relay = self.document("/ivp/ensemble/relay")
        if not isinstance(relay, dict):
            return ("closed", "closed" if self.state.grid_on else "open")
        return (str(relay.get("mains_admin_state")), str(relay.get("mains_oper_state")))

    def reboot(self) -> None:
        """The gateway restarts: inventory numbers read "unknown" for a while (field)."""
        self._behaviour.reboot()

    def housekeeping_now(self, duration: float | None = None) -> None:
        """Start the nightly housekeeping window now: requests hang `duration` field seconds.

        Works whatever the field (durations scale by its `time_scale`); without a duration
        one is drawn from the field's range. `field.housekeeping` adds the nightly window.
        """
        self._behaviour.housekeeping_now(duration)

    @property
    def livedata_streaming(self) -> bool:
        """Whether /ivp/livedata/status values flow now (field.livedata)."""
        live = self._behaviour.livedata
        return live is not None and live.streaming

    def set_battery(self, soc: float | None = None, power_w: float | None = None) -> None:
        """Set battery state of charge (%) and power (W, positive = discharging).

        Without drift the values are served as set. With drift the state of charge moves
        on from there, and a power set here is held while on grid (the net meter takes
        the difference, so the gateway's arithmetic still holds); off grid the battery
        always balances the house.
        """
        ensemble.set_battery(self.state, soc=soc, power_w=power_w)
        if self._drift is not None:
            self._drift.set_battery(soc=soc, power_w=power_w)

    def set_storage(
        self,
        *,
        mode: str | None = None,
        charge_from_grid: bool | None = None,
        reserve_soc: float | None = None,
        optimised_schedules: bool | None = None,
    ) -> None:
        """Change the storage settings served (and, with drift, obeyed by the battery).

        `optimised_schedules` (the tariff's `opt_schedules`): while on, a written storage mode
        is answered 200 and ignored, as on real gateways.
        """
        ensemble.set_storage(
            self.state,
            mode=mode,
            charge_from_grid=charge_from_grid,
            reserve_soc=reserve_soc,
            optimised_schedules=optimised_schedules,
        )

    def apply_battery_settings(
        self,
        *,
        mode: str,
        charge_from_grid: bool,
        reserve_soc: float,
        very_low_soc: float | None = None,
    ) -> None:
        """What a cloud (Enlighten) write does: the battery controller runs these settings.

        They show in the live values (secctrl's `configured_backup_soc` and `VLS_Limit`,
        /ivp/sc/sched); on firmware that ignores local writes the tariff file keeps its copy.
        """
        ensemble.apply_controller(
            self.state,
            mode=mode,
            charge_from_grid=charge_from_grid,
            reserve_soc=reserve_soc,
            very_low_soc=very_low_soc,
        )

    def document(self, path: str) -> Any:
        """The JSON document currently served for an endpoint path (None if not JSON)."""
        self._behaviour.due()
        name = file_name(path)
        reply = self._behaviour.serve(name, self.state.reply(name))
        return reply.document if reply else None

    @property
    def write_log(self) -> list[WriteRecord]:
        """Every write received (method, path, JSON body, status), oldest first."""
        return self._writes.log

    def set_write_fault(
        self,
        fault: WriteFault,
        *,
        paths: set[str] | frozenset[str] | None = None,
        revert_after: float = 60.0,
    ) -> None:
        """How writes fail from now on (`paths`: only those endpoints); NONE: they work."""
        self._writes.set_plan(
            WritePlan(
                fault=fault,
                paths=frozenset(paths) if paths is not None else None,
                revert_after=revert_after,
            )
        )

    def revoke_tokens(self) -> None:
        """Invalidate all current tokens and sessions, as a firmware update does."""
        self._responder.tokens.revoke_all()

    @property
    def fault(self) -> Fault:
        """The active fault (assign to switch it for every endpoint)."""
        return self._plan.fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self.set_fault(fault)

    @property
    def fault_plan(self) -> FaultPlan:
        """The active fault with its endpoint filter and delay."""
        return self._plan

    def set_fault(
        self, fault: Fault, *, paths: set[str] | frozenset[str] | None = None, delay: float = 5.0
    ) -> None:
        """Switch the fault now; `paths` limits it to those endpoint paths (no query)."""
        was_down = self._plan.fault is Fault.DOWN
        self._plan = FaultPlan(
            fault=fault, paths=frozenset(paths) if paths is not None else None, delay=delay
        )
        previous, self._fault_changed = self._fault_changed, asyncio.Event()
        previous.set()
        if not self._listener.running:
            return
        if fault is Fault.DOWN and not was_down:
            self._listener.close()
        elif was_down and fault is not Fault.DOWN:
            self._listener.open()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 (port 0 picks a free one) and start answering."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        await self._listener.start(
            app, handler_cancellation=True, listen=self._plan.fault is not Fault.DOWN
        )

    async def stop(self) -> None:
        """Close the listener and every connection, hung requests included."""
        self._fault_changed.set()
        self._writes.release()
        await self._listener.stop()

    # -- requests -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        start = self.stats.begin(path)
        status = NO_RESPONSE
        try:
            response = await self._respond(request)
            status = response.status
            return response
        finally:
            self.stats.end(start, path, status)

    async def _respond(self, request: web.Request) -> web.Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        await self._behaviour.delay(request.path)
        while (plan := self._plan).applies_to(request.path):
            match plan.fault:
                case Fault.TIMEOUT | Fault.DOWN:
                    await self._fault_changed.wait()
                case Fault.SLOW:
                    await asyncio.sleep(plan.delay)
                    break
                case Fault.HTTP_500:
                    return html(500, HTML_ERROR_PAGE)
                case Fault.HTML:
                    return html(200, HTML_ERROR_PAGE)
                case Fault.EMPTY:
                    return web.Response(status=200, content_type="application/json")
                case Fault.UNAUTHORIZED:
                    return self._responder.unauthorized()
                case Fault.TRUNCATED_JSON:
                    response = await self._responder.respond(request)
                    body = response.body if isinstance(response.body, bytes) else b""
                    response.body = body[: len(body) // 2]
                    return response
                case _:
                    break
        return await self._responder.respond(request)
