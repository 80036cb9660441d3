"""The simulated gateway's write endpoints: each checks a body and says how to apply it.

A check raises `BadWrite` (answered 400) or returns an `Apply`; applying changes the served
documents and returns the `Undo` that puts them back (for the cloud's reverts).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, Final

from .ensemble import TARIFF, show_controller
from .relay import Relay
from .state import RELAY, SimState

log = logging.getLogger(__name__)

TARIFF_PATH: Final = "/admin/lib/tariff"
RELAY_PATH: Final = "/ivp/ensemble/relay"
DRY_CONTACTS_PATH: Final = "/ivp/ensemble/dry_contacts"
DRY_CONTACT_SETTINGS_PATH: Final = "/ivp/ss/dry_contact_settings"
GEN_MODE_PATH: Final = "/ivp/ss/gen_mode"
DRY_CONTACTS: Final = "ivp_ensemble_dry_contacts"
DRY_CONTACT_SETTINGS: Final = "ivp_ss_dry_contact_settings"
GEN_MODE: Final = "ivp_ss_gen_mode"
GENERATOR: Final = "ivp_ensemble_generator"

STORAGE_MODES: Final = ("backup", "self-consumption", "economy", "savings-mode")
ACTIONS: Final = ("apply", "shed", "schedule", "none")
# what pyenphase's EnvoyDryContactSettings.to_api always sends: anything less is partial
SETTINGS_KEYS: Final = frozenset(
    {"id", "gen_action", "grid_action", "micro_grid_action", "load_name", "mode", "override"}
    | {"pv_serial_nb", "soc_high", "soc_low", "type"}
)

Undo = Callable[[], None]
Apply = Callable[[], Undo]


class BadWrite(Exception):
    """The body is not what this endpoint takes (answered 400)."""


class Setters:
    """The write endpoints over one gateway's served documents."""

    def __init__(self, state: SimState, relay: Relay) -> None:
        """Writes change `state`; relay writes move `relay`."""
        self._state = state
        self._relay = relay

    def routes(self) -> dict[str, tuple[str, Callable[[Any], Apply]]]:
        """Endpoint path -> (HTTP method, check)."""
        return {
            TARIFF_PATH: ("PUT", self.tariff),
            RELAY_PATH: ("POST", self.relay),
            DRY_CONTACTS_PATH: ("POST", self.dry_contact),
            DRY_CONTACT_SETTINGS_PATH: ("POST", self.dry_contact_settings),
            GEN_MODE_PATH: ("POST", self.gen_mode),
        }

    def _snapshot(self, name: str) -> Undo:
        before = copy.deepcopy(self._state.documents[name])

        def undo() -> None:
            self._state.touch(name)
            self._state.documents[name] = copy.deepcopy(before)

        return undo

    def tariff(self, body: Any) -> Apply:
        """PUT /admin/lib/tariff: the whole tariff document, storage settings checked."""
        document = self._state.documents.get(TARIFF)
        tariff = body.get("tariff") if isinstance(body, dict) else None
        if not isinstance(document, dict) or not isinstance(tariff, dict):
            raise BadWrite('expected {"tariff": {...}}, the whole tariff document')
        settings = tariff.get("storage_settings")
        if not isinstance(settings, dict):
            raise BadWrite("the tariff has no storage_settings")
        _check_storage(settings)

        def apply() -> Undo:
            undo = self._snapshot(TARIFF)
            current = document.get("tariff", {}).get("storage_settings", {})
            if current.get("opt_schedules") is True and settings.get("opt_schedules") is not False:
                # optimised schedules on: the battery controller keeps its mode (200 all the same)
                settings["mode"] = current.get("mode")
            self._state.touch(TARIFF)["tariff"] = tariff
            if self._state.obeyed is None:
                # [F] firmware that ignores the file rebuilds `schedule` on every read
                _echo_schedule(document, settings)
                show_controller(self._state)  # the controller follows the file
                return self._followed(undo)
            return undo

        return apply

    def _followed(self, undo: Undo) -> Undo:
        """An undo of the tariff that the controller (following the file) follows too."""

        def both() -> None:
            undo()
            show_controller(self._state)

        return both

    def relay(self, body: Any) -> Apply:
        """POST /ivp/ensemble/relay: the grid relay's commanded position."""
        if RELAY not in self._state.documents:
            raise BadWrite("this gateway has no IQ System Controller")
        command = body.get("mains_admin_state") if isinstance(body, dict) else None
        if command not in ("open", "closed"):
            raise BadWrite('expected {"mains_admin_state": "open" | "closed"}')

        def apply() -> Undo:
            was = str(self._state.documents[RELAY].get("mains_admin_state", "closed"))
            self._command_relay(str(command))
            return lambda: self._command_relay(was)

        return apply

    def _command_relay(self, command: str) -> None:
        log.info("grid relay commanded %s", command)
        self._relay.command(command)

    def dry_contact(self, body: Any) -> Apply:
        """POST /ivp/ensemble/dry_contacts: open or close one dry contact."""
        wanted = body.get("dry_contacts") if isinstance(body, dict) else None
        if not isinstance(wanted, dict) or wanted.get("status") not in ("open", "closed"):
            raise BadWrite('expected {"dry_contacts": {"id": ..., "status": "open" | "closed"}}')
        entry = self._contact(DRY_CONTACTS, wanted.get("id"))

        def apply() -> Undo:
            undo = self._snapshot(DRY_CONTACTS)
            self._state.touch(DRY_CONTACTS)
            entry["status"] = wanted["status"]
            return undo

        return apply

    def dry_contact_settings(self, body: Any) -> Apply:
        """POST /ivp/ensemble/dry_contacts: open or close one dry contact._settings"""
        wanted = body.get("dry_contacts") if isinstance(body, dict) else None
        if not isinstance(wanted, dict):
            raise BadWrite('expected {"dry_contacts": {...one relay\'s settings...}}')
        missing = SETTINGS_KEYS - wanted.keys()
        if missing:
            raise BadWrite(f"partial dry contact settings (missing {', '.join(sorted(missing))})")
        _check_contact_settings(wanted)
        entry = self._contact(DRY_CONTACT_SETTINGS, wanted["id"])

        def apply() -> Undo:
            undo = self._snapshot(DRY_CONTACT_SETTINGS)
            self._state.touch(DRY_CONTACT_SETTINGS)
            # the gateway serves its flags as "true"/"false" whatever it was sent
            entry.update(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in wanted.items()}
            )
            return undo

        return apply

    def gen_mode(self, body: Any) -> Apply:
        """POST /ivp/ss/gen_mode: the generator mode (on and off move its relay)."""
        command = body.get("gen_cmd") if isinstance(body, dict) else None
        if GEN_MODE not in self._state.documents:
            raise BadWrite("this gateway has no generator mode")
        if command not in ("off", "on", "auto"):
            raise BadWrite('expected {"gen_cmd": "off" | "on" | "auto"}')

        def apply() -> Undo:
            undo_mode = self._snapshot(GEN_MODE)
            generator = self._state.documents.get(GENERATOR)
            undo_generator = self._snapshot(GENERATOR) if isinstance(generator, dict) else None
            self._state.touch(GEN_MODE)["gen_cmd"] = command
            if isinstance(generator, dict) and command != "auto":
                relay = "closed" if command == "on" else "open"
                self._state.touch(GENERATOR).update(admin_state=relay, oper_state=relay)

            def undo() -> None:
                undo_mode()
                if undo_generator is not None:
                    undo_generator()

            return undo

        return apply

    def _contact(self, name: str, relay_id: object) -> dict[str, Any]:
        document = self._state.documents.get(name)
        entries = document.get("dry_contacts") if isinstance(document, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == relay_id:
                return entry
        raise BadWrite(f"no dry contact {relay_id!r}")


def _check_storage(settings: dict[str, Any]) -> None:
    if settings.get("mode") not in STORAGE_MODES:
        raise BadWrite(f"storage mode {settings.get('mode')!r} is not one of {STORAGE_MODES}")
    reserve = settings.get("reserved_soc")
    if isinstance(reserve, bool) or not isinstance(reserve, int | float) or not 0 <= reserve <= 100:
        raise BadWrite(f"reserved_soc {reserve!r} is not a percentage")
    if not isinstance(settings.get("charge_from_grid"), bool):
        raise BadWrite("charge_from_grid must be true or false")


def _check_contact_settings(wanted: dict[str, Any]) -> None:
    for key in ("gen_action", "grid_action", "micro_grid_action"):
        if wanted[key] not in ACTIONS:
            raise BadWrite(f"{key} {wanted[key]!r} is not one of {ACTIONS}")
    if wanted["mode"] not in ("manual", "soc"):
        raise BadWrite(f"mode {wanted['mode']!r} is not manual or soc")
    low, high = wanted["soc_low"], wanted["soc_high"]
    if not all(isinstance(v, int | float) and 0 <= v <= 100 for v in (low, high)) or low >= high:
        raise BadWrite(f"soc_low {low!r} and soc_high {high!r}: 0 <= low < high <= 100")


def _echo_schedule(document: dict[str, Any], settings: dict[str, Any]) -> None:
    """The gateway's own schedule section repeats the storage settings: keep it in step."""
    schedule = document.get("schedule")
    if not isinstance(schedule, dict):
        return
    for key, value in (
        ("reserved_soc", settings.get("reserved_soc")),
        ("charge_from_grid", settings.get("charge_from_grid")),
        ("batt_mode", settings.get("mode")),
        ("battery_mode", settings.get("mode")),
    ):
        if key in schedule:
            schedule[key] = value
