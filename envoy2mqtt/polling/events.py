"""What happens to the bridge, as typed events on an `EventStream`.

Each gateway's bridge has its own stream (connected, snapshot settled, disconnected); the app
has one for what concerns every gateway (MQTT connected, Home Assistant online, shutting
down). Features subscribe in their `__aenter__`; the polling side and the app emit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from envoy2mqtt.core.events import Event
from envoy2mqtt.core.snapshot import GatewayInfo, Value
from envoy2mqtt.settings import GatewaySettings

if TYPE_CHECKING:
    from envoy2mqtt.polling.lanes import Lanes


@dataclass(frozen=True, slots=True)
class GatewayConnected:
    """A gateway answered and its lanes are about to start (its publisher exists)."""

    info: GatewayInfo
    settings: GatewaySettings
    session: Lanes


@dataclass(frozen=True, slots=True)
class SnapshotSettled:
    """One snapshot's settled values and the events it raised, before anything is sent.

    Whatever a subscriber publishes urgently here (load shedding's commands) goes out ahead
    of the snapshot's own events and states.
    """

    session: Lanes
    values: Mapping[str, Value]
    events: Sequence[Event]
    taken_at: datetime  # when the snapshot was taken (aware, UTC)


@dataclass(frozen=True, slots=True)
class GatewayDisconnected:
    """The connection to a gateway ended (it will be retried)."""

    serial: str


@dataclass(frozen=True, slots=True)
class MqttConnected:
    """The broker (re)connected: subscriptions are in place, the outbox is about to flow."""


@dataclass(frozen=True, slots=True)
class HomeAssistantOnline:
    """Home Assistant announced itself (its birth message): it wants discovery again."""


@dataclass(frozen=True, slots=True)
class ShuttingDown:
    """The service is stopping: last words now, the link closes right after."""


@dataclass(frozen=True, slots=True)
class BatteryPathChosen:
    """How this gateway's battery settings are written from now on (the controls feature says
    so on the gateway's stream): `local`, `enlighten`, or `auto` while still learning."""

    serial: str
    path: str
    why: str
