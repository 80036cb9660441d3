"""The field's behaviour at run time: answer times, the nightly window, reboots, and what the
gateway serves differently from its documents (see `field` for each behaviour's source).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from . import ensemble
from .capture import Recorded
from .field import Field, endpoint_class
from .livedata import STATUS_NAME, STREAM_PATH, LiveData
from .relay import Relay
from .setters import DRY_CONTACT_SETTINGS, DRY_CONTACTS, DRY_CONTACTS_PATH
from .state import INVENTORY, POWER, READINGS, SimState

log = logging.getLogger(__name__)

DAY: Final = 86_400.0
PRODUCTION_DOCS: Final = ("production.json", "production")
# writes after which every NC contact reads open for a while [F "after any settings POST"]
SETTINGS_PATHS: Final = frozenset(
    {"/ivp/ss/dry_contact_settings", "/admin/lib/tariff", "/ivp/ss/gen_mode"}
)


class Behaviour:
    """One gateway's field behaviour; `Field.off()` makes every hook a no-op."""

    def __init__(
        self,
        state: SimState,
        field: Field,
        *,
        clock: Callable[[], float],
        utc_offset_s: float,
    ) -> None:
        """Set the relay and the live data up; hold the controller if it ignores the file."""
        self.field = field
        self._state = state
        self._clock = clock
        self._utc_offset_s = utc_offset_s
        self._rng = random.Random(field.seed)
        self.relay = Relay(state, field, self._rng)
        self.livedata = (
            LiveData(state, stream_s=field.scaled(field.livedata_stream_s), clock=clock)
            if field.livedata
            else None
        )
        if field.local_battery_writes_ignored:
            ensemble.hold_controller(state)
        self._started = time.monotonic()
        self._housekeeping_until = 0.0
        self._unknown_until = 0.0
        self._phantom_until = 0.0
        self._contact_writes: dict[object, tuple[float, object]] = {}
        self._grid_seen = state.grid_on

    # -- answer times ---------------------------------------------------------------------

    async def delay(self, path: str) -> None:
        """Hold a request as the field gateway would (concurrently with the others)."""
        field = self.field
        await self._housekeeping()
        if field.latencies:
            await asyncio.sleep(field.scaled(self._latency(path)))

    def _latency(self, path: str) -> float:
        kind = endpoint_class(path)
        if not kind.slow and self._rng.random() < self.field.fast_worst_share:
            return self.field.fast_worst_s
        return self._rng.uniform(*self.field.latency_range(kind))

    def housekeeping_now(self, duration: float | None = None) -> None:
        """Start the housekeeping window now: requests hang for `duration` (field seconds)."""
        seconds = (
            duration if duration is not None else self._rng.uniform(*self.field.housekeeping_s)
        )
        self._housekeeping_until = time.monotonic() + self.field.scaled(seconds)
        log.info("housekeeping for %.0f s", seconds)

    async def _housekeeping(self) -> None:
        remaining = self._housekeeping_until - time.monotonic()
        if remaining <= 0 and self.field.housekeeping:
            remaining = self.field.scaled(self._nightly_remaining())
        if remaining > 0:
            await asyncio.sleep(remaining)

    def _nightly_remaining(self) -> float:
        """Gateway-clock seconds left in tonight's window ([I] 23:00 local), 0 outside it."""
        local = self._clock() + self._utc_offset_s
        day = math.floor(local / DAY)
        into = local - day * DAY - self.field.housekeeping_at_s
        length = random.Random(f"{self.field.seed}/{day}").uniform(*self.field.housekeeping_s)
        return length - into if 0 <= into < length else 0.0

    # -- reboot ---------------------------------------------------------------------------

    def reboot(self) -> None:
        """The gateway restarted: inventory numbers read "unknown" a while, the stream stops."""
        if self.field.unknown_after_reboot:
            self._unknown_until = time.monotonic() + self.field.scaled(self.field.unknown_s)
        if self.livedata is not None:
            self.livedata.stop_streaming()
        log.info("gateway rebooted")

    # -- state over time ------------------------------------------------------------------

    def due(self) -> None:
        """Let timed moves land and the contacts follow the grid (before serving)."""
        self.relay.due()
        if self._state.grid_on != self._grid_seen:
            self._grid_seen = self._state.grid_on
            if self.field.dry_contact_phantoms:
                self._contacts_follow_grid(on=self._grid_seen)

    def _contacts_follow_grid(self, *, on: bool) -> None:
        """[F "NC2 shed, NC1 didn't"]: only contacts of type LOAD act on a grid change."""
        settings = self._state.documents.get(DRY_CONTACT_SETTINGS)
        contacts = self._state.documents.get(DRY_CONTACTS)
        if not isinstance(settings, dict) or not isinstance(contacts, dict):
            return
        shed = {
            entry.get("id")
            for entry in settings.get("dry_contacts", [])
            if isinstance(entry, dict)
            and entry.get("type") == "LOAD"
            and entry.get("micro_grid_action") == "shed"
        }
        for entry in self._state.touch(DRY_CONTACTS).get("dry_contacts", []):
            if isinstance(entry, dict) and entry.get("id") in shed:
                entry["status"] = "closed" if on else "open"

    # -- writes ---------------------------------------------------------------------------

    def write(self, method: str, path: str, body: Any) -> web.Response | None:
        """Answer a write the field layer owns (the live-data stream); None: not ours."""
        if path == DRY_CONTACTS_PATH and self.field.dry_contact_phantoms:
            self._note_contact_write(body)
        if path != STREAM_PATH or self.livedata is None:
            return None
        if method not in ("POST", "PUT"):
            return web.Response(status=405, text="Method Not Allowed")
        enable = body.get("enable") if isinstance(body, dict) else None
        if enable not in (0, 1):
            return web.json_response({"error": 'expected {"enable": 0 | 1}'}, status=400)
        return web.json_response(self.livedata.enable(bool(enable)))

    def written(self, path: str, status: int) -> None:
        """After a write was answered: settings writes make the NC contacts read open."""
        if self.field.dry_contact_phantoms and status == 200 and path in SETTINGS_PATHS:
            seconds = self._rng.uniform(*self.field.phantom_s)
            self._phantom_until = time.monotonic() + self.field.scaled(seconds)

    def _note_contact_write(self, body: Any) -> None:
        """Remember what a contact read before a write: the new state shows after ~3 s."""
        wanted = body.get("dry_contacts") if isinstance(body, dict) else None
        contacts = self._state.documents.get(DRY_CONTACTS)
        if not isinstance(wanted, dict) or not isinstance(contacts, dict):
            return
        for entry in contacts.get("dry_contacts", []):
            if isinstance(entry, dict) and entry.get("id") == wanted.get("id"):
                until = time.monotonic() + self.field.scaled(self.field.dry_contact_write_s)
                self._contact_writes[entry.get("id")] = (until, entry.get("status"))

    # -- what is served -------------------------------------------------------------------

    def serve(self, name: str, recorded: Recorded | None) -> Recorded | None:
        """The reply for a capture file name, as the field gateway would give it."""
        if name == STATUS_NAME and self.livedata is not None:
            document = self.livedata.document()
            if self.field.battery_noise:
                self._noisy_livedata(document)
            return _json(document)
        if recorded is None or not recorded.is_json or recorded.status != 200:
            return recorded
        change = self._changes().get(name)
        if change is None:
            return recorded
        document = copy.deepcopy(recorded.document)
        change(document)
        return _json(document)

    def _changes(self) -> dict[str, Callable[[Any], None]]:
        field, now = self.field, time.monotonic()
        changes: dict[str, Callable[[Any], None]] = {}
        if field.unknown_after_reboot and now < self._unknown_until:
            changes[INVENTORY] = self._unknown
        if field.counter_quirks or field.net_as_total:
            for name in PRODUCTION_DOCS:
                changes[name] = self._counters
        if field.battery_noise and self._noise_applies():
            changes[POWER] = self._noisy_power
            changes[READINGS] = self._noisy_storage_ct
        if field.dry_contact_phantoms:
            changes[DRY_CONTACTS] = self._contacts
        return changes

    def _unknown(self, inventory: Any) -> None:
        """[F] after a reboot the battery's temperatures read the string "unknown"."""
        for item in inventory if isinstance(inventory, list) else []:
            for device in item.get("devices", []) if isinstance(item, dict) else []:
                for key in self.field.unknown_keys:
                    if isinstance(device, dict) and key in device:
                        device[key] = "unknown"

    def _counters(self, production: Any) -> None:
        if not isinstance(production, dict):
            return
        sections = {
            str(s.get("measurementType")): s
            for part in ("production", "consumption")
            for s in production.get(part, [])
            if isinstance(s, dict) and s.get("type") == "eim"
        }
        if self.field.net_as_total and {"total-consumption", "net-consumption"} <= sections.keys():
            # [P] from 8.3.5433 total-consumption repeats net-consumption's power and lifetime
            total, net = sections["total-consumption"], sections["net-consumption"]
            for key in ("wNow", "whLifetime"):
                total[key] = net.get(key)
        if not self.field.counter_quirks:
            return
        steps = math.floor(
            (time.monotonic() - self._started) / self.field.scaled(self.field.counter_step_every_s)
        )
        local = (self._clock() + self._utc_offset_s) % DAY
        for kind, section in sections.items():
            if kind == "net-consumption":
                continue
            today, week = section.get("whToday"), section.get("whLastSevenDays")
            if not isinstance(today, int | float) or not isinstance(week, int | float):
                continue
            if local < self.field.late_reset_s:
                today += week / 7  # [P] whToday still counts yesterday after midnight
            step = steps * self.field.counter_step_wh  # [P] sudden step changes
            section["whToday"], section["whLastSevenDays"] = today + step, week + step

    def _battery_w(self) -> float:
        return (
            sum(float(u.get("real_power_mw", 0) or 0) for u in ensemble.power_units(self._state))
            / 1000
        )

    def _noise_applies(self) -> bool:
        """Around 0 W in self-consumption (brief: ±50-300 W)."""
        settings = ensemble.controller_settings(self._state)
        return (
            settings.mode == "self-consumption" and abs(self._battery_w()) < self.field.noise_w[1]
        )

    def _noise_w(self) -> float:
        return self._rng.choice((-1, 1)) * self._rng.uniform(*self.field.noise_w)

    def _noisy_power(self, power: Any) -> None:
        units = power.get("devices:") if isinstance(power, dict) else None
        units = [u for u in units if isinstance(u, dict)] if isinstance(units, list) else []
        noise_mw = self._noise_w() * 1000 / max(len(units), 1)
        for unit in units:
            unit["real_power_mw"] = round(float(unit.get("real_power_mw", 0) or 0) + noise_mw)

    def _noisy_storage_ct(self, readings: Any) -> None:
        storage = {eid for eid, kind in self._state.meter_eids().items() if kind == "storage"}
        for reading in readings if isinstance(readings, list) else []:
            if isinstance(reading, dict) and reading.get("eid") in storage:
                reading["activePower"] = float(reading.get("activePower", 0) or 0) + self._noise_w()

    def _noisy_livedata(self, document: dict[str, Any]) -> None:
        if not self._noise_applies():
            return
        storage = document["meters"]["storage"] = dict(document["meters"]["storage"])
        storage["agg_p_mw"] = round(storage["agg_p_mw"] + self._noise_w() * 1000)

    def _contacts(self, contacts: Any) -> None:
        entries = contacts.get("dry_contacts") if isinstance(contacts, dict) else None
        now = time.monotonic()
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            written = self._contact_writes.get(entry.get("id"))
            if written is not None and now < written[0]:
                entry["status"] = written[1]  # [F] a write shows within about 3 s
            if now < self._phantom_until and str(entry.get("id", "")).startswith("NC"):
                entry["status"] = "open"  # [F] every NC contact, although nothing moved


def _json(document: Any) -> Recorded:
    return Recorded(200, "application/json", json.dumps(document).encode(), document)
