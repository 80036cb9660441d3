"""The grid relay over time: a write, an outage and a reconnect, with the field's timing.

With `Field.off()` every move is instant and the relay reads plain `open`/`closed`, as the
captures do. The field's figures and states are cited in `field`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from . import ensemble
from .field import Field
from .state import SimState

log = logging.getLogger(__name__)

SYNCHRONIZING: Final = "open synchronizing"
SYNCHRONIZED: Final = "open synchronized"

Step = Callable[[], None]


class Relay:
    """Moves the served relay states: timed steps land on the loop's clock (and `due`, called
    before serving, lands any a synchronous caller left)."""

    def __init__(self, state: SimState, field: Field, rng: random.Random) -> None:
        """Moves change `state`; `field` says how long they take."""
        self._state = state
        self._field = field
        self._rng = rng
        self._steps: list[tuple[float, Step]] = []

    @property
    def pending(self) -> bool:
        """Whether a move is still under way."""
        return bool(self._steps)

    def due(self) -> None:
        """Take the steps whose time has come, oldest first."""
        now = time.monotonic()
        while self._steps and self._steps[0][0] <= now:
            _, step = self._steps.pop(0)
            step()

    def command(self, admin: str) -> None:
        """A relay write: the commanded position shows at once, the relay follows."""
        self._steps.clear()
        self._state.set_admin(admin)
        field = self._field
        if admin == "open" and field.relay_write_timing:
            # [F] the gateway tops the battery up from the grid (~3.2 kW) before it islands
            # (~27 s), the battery back at 0 W as the relay opens
            self._battery(-field.top_off_w)
            self._after(field.island_after_s, self._top_off_done)
        elif admin == "open":
            self._open()
        else:
            self._after(self._reclose_delay(), self._close)

    def fail_grid(self) -> None:
        """The grid fails: the relay opens at once."""
        self._steps.clear()
        self._open()

    def restore_grid(self) -> None:
        """The grid returns: the relay recloses (after a while, in the field)."""
        self._steps.clear()
        self._after(self._reclose_delay(), self._close)

    def _reclose_delay(self) -> float:
        field = self._field
        if not (field.relay_write_timing or field.relay_transitions):
            return 0.0
        return self._rng.uniform(*field.reclose_s)

    def _top_off_done(self) -> None:
        self._battery(0.0)
        self._open()

    def _battery(self, watts: float) -> None:
        """Serve a battery power (without drift; with drift the house physics decides)."""
        if ensemble.power_units(self._state) or ensemble.storage_ct_eids(self._state):
            ensemble.apply_power(self._state, watts)

    def _open(self) -> None:
        if not self._field.relay_transitions:
            self._state.set_oper("open")
            return
        self._state.set_oper(SYNCHRONIZING)
        self._after(self._field.synchronizing_s, lambda: self._state.set_oper(SYNCHRONIZED))

    def _close(self) -> None:
        self._state.set_oper("closed")

    def _after(self, seconds: float, step: Step) -> None:
        if seconds <= 0:
            step()
            return
        delay = self._field.scaled(seconds)
        self._steps.append((time.monotonic() + delay, step))
        self._steps.sort(key=lambda pair: pair[0])
        # on time, not only when the next request comes (a flip is timed from it); without a
        # loop (a synchronous caller) the step lands before the next answer
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(delay, self.due)
