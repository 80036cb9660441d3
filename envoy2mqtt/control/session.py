"""What a controller works with: its options, the connected lanes, and a command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.control.commands import Transaction
from envoy2mqtt.control.controls import Offered, Scope
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.mqtt.publisher import GatewayPublisher


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlOptions:
    """CONTROLS and how commands are looked after."""

    scope: Scope
    watch: float = 300.0  # seconds a confirmed value is watched for a revert (0: not at all)
    reassert: bool = False  # write a reverted storage setting once more
    rate_limit: float = 10.0  # seconds between two writes of one control
    settle: float = 5.0  # seconds a local battery or generator write may take to show
    battery_path: str = "auto"  # BATTERY_CONTROL_PATH: auto, local or enlighten
    cloud: float = 30.0  # seconds a battery write through Enlighten may take to show
    relay_open: float = 60.0  # the grid relay opens ~27 s after the command (top-off first)
    relay_close: float = 30.0  # ... and closes in 8-15 s
    contact: float = 5.0  # a dry contact shows a write within ~3 s
    phantom: float = 90.0  # after a settings write NC contacts read `open` for 5-90 s

    @property
    def tick(self) -> float:
        """How often writes on their way are looked at (seconds)."""
        least = min(self.settle or 5.0, self.cloud, self.relay_close, self.contact)
        return min(2.0, max(0.05, least / 5))


class Session(Protocol):
    """What a controller needs of the connected gateway's lanes (`lanes.Lanes`)."""

    @property
    def client(self) -> GatewayClient: ...
    @property
    def publisher(self) -> GatewayPublisher: ...
    @property
    def data(self) -> EnvoyData: ...
    @property
    def normal_started(self) -> float: ...
    @property
    def clock(self) -> Clock: ...

    async def refresh(self) -> EnvoyData:
        """A full read now, published."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A valid value for an offered control, on its way to the gateway."""

    offered: Offered
    value: Value
    source: str  # the topic it came on
    transaction: Transaction = None
    reassert: bool = False

    @property
    def path(self) -> str:
        """The control's command path."""
        return self.offered.path
