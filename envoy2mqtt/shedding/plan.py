"""What load shedding was configured with, as frozen dataclasses (checked by `loads`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from envoy2mqtt.settings import GatewaySettings
from envoy2mqtt.shedding.policy import Rule


@dataclass(frozen=True, slots=True)
class Switch:
    """One MQTT command: where to publish what (never retained: a command is not a state)."""

    topic: str
    payload: str
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Feedback:
    """Where the load reports its own state, so a switch-on by hand is seen (optional)."""

    topic: str
    on: str
    off: str
    field: str | None = None  # the JSON field holding it (Zigbee2MQTT); None: the payload

    def reads(self, payload: bytes) -> bool | None:
        """True for `on`, False for `off`, None for anything else."""
        text: object = payload.decode(errors="replace").strip()
        if self.field is not None:
            try:
                document = json.loads(str(text))
            except ValueError:
                return None
            text = document.get(self.field) if isinstance(document, dict) else None
        word = str(text).strip().lower()
        if word == self.on.lower():
            return True
        return False if word == self.off.lower() else None


@dataclass(frozen=True, slots=True)
class Load:
    """A load: its policy rule, its two commands and, optionally, its state feedback."""

    rule: Rule
    off: Switch
    on: Switch
    feedback: Feedback | None = None

    @property
    def name(self) -> str:
        """The load's name (a topic level)."""
        return self.rule.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Everything load shedding was configured with."""

    loads: tuple[Load, ...]
    gateway: str | None = None  # serial, name or host of the gateway whose grid counts
    restore_after: float = 60.0
    stagger: float = 10.0
    dry_run: bool = False

    def load(self, name: str) -> Load | None:
        """The load of this name, if any."""
        return next((load for load in self.loads if load.name == name), None)

    def watches(self, gateway: GatewaySettings, serial: str | None) -> bool:
        """Whether this gateway's grid sheds these loads."""
        if self.gateway is None:
            return True
        return self.gateway in {serial, gateway.serial, gateway.name, gateway.host}
