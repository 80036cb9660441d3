"""Lane readings laid over the normal lane's full reading: inverters, grid, meters, battery,
dry contacts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple, TypeVar

from pyenphase.const import URL_INVENTORY
from pyenphase.models.acb import EnvoyBatteryAggregate
from pyenphase.models.dry_contacts import EnvoyDryContactSettings, EnvoyDryContactStatus
from pyenphase.models.encharge import EnvoyEnchargeAggregate, EnvoyEnchargePower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import EnvoyMeterData

Meters = tuple[dict[str, EnvoyMeterData | None], dict[str, dict[str, EnvoyMeterData | None]]]
"""CT readings by CT type, and per phase by CT type (`GatewayClient.read_meters`)."""


class Battery(NamedTuple):
    """One battery-lane reading (`GatewayClient.read_battery`)."""

    aggregate: EnvoyEnchargeAggregate  # the IQ Batteries together
    units: dict[str, EnvoyEnchargePower]  # each IQ Battery's power
    combined: EnvoyBatteryAggregate | None = None  # IQ and AC Batteries together, where both


class Contacts(NamedTuple):
    """The dry contacts read on their own (`GatewayClient.read_contacts`): a command's
    read-back, seconds instead of a full read's minute on current firmware."""

    status: dict[str, EnvoyDryContactStatus]
    settings: dict[str, EnvoyDryContactSettings]


K = TypeVar("K")
V = TypeVar("V")
_ABSENT = object()


@dataclass(slots=True)
class LaneReadings:
    """Each lane's newest reading with the time it was read (any clock, one per bridge).

    A full reading that began after a lane reading is newer: `forget_before` drops the older
    lane readings, so a slow lane can never undo a newer reading and vice versa.
    """

    grid: tuple[float, str] | None = None
    meters: tuple[float, Meters] | None = None
    battery: tuple[float, Battery] | None = None
    contacts: tuple[float, Contacts] | None = None

    def over(self, data: EnvoyData) -> EnvoyData:
        """`data` with the lane readings laid over it.

        Parts that already hold these readings stay the very same objects, so the publisher
        can tell untouched parts by identity and skip re-reading them.
        """
        if self.grid is not None:
            state = self.grid[1]
            if data.enpower is not None and data.enpower.mains_oper_state != state:
                data = replace(data, enpower=replace(data.enpower, mains_oper_state=state))
            elif (
                data.enpower is None and data.collar is not None and data.collar.grid_state != state
            ):
                data = replace(data, collar=replace(data.collar, grid_state=state))
        if self.meters is not None:
            meters, phases = self.meters[1]
            ctmeters, ctphases = merged(data.ctmeters, meters), merged(data.ctmeters_phases, phases)
            if ctmeters is not data.ctmeters or ctphases is not data.ctmeters_phases:
                data = replace(data, ctmeters=ctmeters, ctmeters_phases=ctphases)
        if self.battery is not None:
            battery = self.battery[1]
            power = merged(data.encharge_power or {}, battery.units)
            combined = battery.combined or data.battery_aggregate
            if (
                battery.aggregate is not data.encharge_aggregate
                or power is not data.encharge_power
                or combined is not data.battery_aggregate
            ):
                data = replace(
                    data,
                    encharge_aggregate=battery.aggregate,
                    encharge_power=power,
                    battery_aggregate=combined,
                )
        if self.contacts is not None:
            contacts = self.contacts[1]
            if (
                contacts.status is not data.dry_contact_status
                or contacts.settings is not data.dry_contact_settings
            ):
                data = replace(
                    data, dry_contact_status=contacts.status, dry_contact_settings=contacts.settings
                )
        return data

    def forget_before(self, started: float) -> None:
        """Drop lane readings no newer than a full reading that began at `started`."""
        if self.grid is not None and self.grid[0] <= started:
            self.grid = None
        if self.meters is not None and self.meters[0] <= started:
            self.meters = None
        if self.battery is not None and self.battery[0] <= started:
            self.battery = None
        if self.contacts is not None and self.contacts[0] <= started:
            self.contacts = None


def merged(base: dict[K, V], over: Mapping[K, V]) -> dict[K, V]:
    """`base` updated with `over`: `base` itself when it already holds those very values."""
    if all(base.get(key, _ABSENT) is value for key, value in over.items()):
        return base
    return {**base, **over}


def merge_inverters(base: EnvoyData, inverters: EnvoyData) -> EnvoyData:
    """Carry the inverter lane's readings into a newer normal-lane reading."""
    raw = dict(base.raw)
    raw.update({k: v for k, v in inverters.raw.items() if k not in raw or k == URL_INVENTORY})
    return replace(
        base,
        inverters=inverters.inverters or base.inverters,
        acb_inventory=inverters.acb_inventory or base.acb_inventory,
        raw=raw,
    )
