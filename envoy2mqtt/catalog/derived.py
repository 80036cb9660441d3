"""Values users keep building by hand: battery flow, its energy without a storage CT, house
load and the backup runway."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtType

BATTERY_CHARGED: Final = "battery_charged_energy"
BATTERY_DISCHARGED: Final = "battery_discharged_energy"
MAX_GAP_S: Final = 600.0  # longer without a reading: do not guess what happened in between
RUNWAY_CAP_MIN: Final = 10_080  # a week: the runway at a house load of ~0 W (or beyond a week)


def storage_ct_watts(data: EnvoyData) -> int | None:
    """Battery power from the storage CT where one is fitted (positive = discharging)."""
    meter = data.ctmeters.get(CtType.STORAGE)
    return meter.active_power if meter is not None else None


def has_batteries(data: EnvoyData) -> bool:
    """Whether the site has batteries (pyenphase reports zeros for some sites without)."""
    return bool(
        data.encharge_inventory
        or data.encharge_power
        or data.acb_inventory
        or (data.acb_power is not None and data.acb_power.batteries > 0)
        or storage_ct_watts(data) is not None
    )


def battery_watts(data: EnvoyData) -> int | None:
    """Battery power, positive while discharging: storage CT, else the batteries' own sum."""
    if (watts := storage_ct_watts(data)) is not None:
        return watts
    parts: list[int] = []
    if data.encharge_power:
        parts.append(round(sum(unit.real_power_mw for unit in data.encharge_power.values()) / 1000))
    if data.acb_power is not None:
        parts.append(data.acb_power.power)
    return sum(parts) if parts else None


def house_load_watts(data: EnvoyData) -> int | None:
    """The house's own load: consumption plus battery power (the battery flow undone)."""
    consumption = data.system_consumption
    battery = battery_watts(data)
    if consumption is None or battery is None:
        return None
    return consumption.watts_now + battery


def reserve_percent(data: EnvoyData) -> float | None:
    """The backup reserve: the storage settings' own, else the gateway's adjusted one."""
    settings = data.tariff.storage_settings if data.tariff else None
    if settings is not None and settings.reserved_soc is not None:
        return float(settings.reserved_soc)
    enc = data.encharge_aggregate
    return float(enc.reserve_state_of_charge) if enc is not None else None


def backup_runway(data: EnvoyData) -> int | None:
    """Minutes until the batteries reach the reserve at the current house load.

    The energy above the reserve over the house load (which the battery's own flow does not
    distort). A load of about nothing would give any number at all: it is capped at
    RUNWAY_CAP_MIN, as is anything beyond a week. None without IQ Batteries' capacity (AC
    Batteries give no backup).
    """
    aggregate = data.battery_aggregate or data.encharge_aggregate
    load, reserve = house_load_watts(data), reserve_percent(data)
    if aggregate is None or load is None or reserve is None:
        return None
    capacity = aggregate.max_available_capacity
    above = aggregate.available_energy - capacity * min(max(reserve, 0.0), 100.0) / 100
    if capacity <= 0 or above <= 0:
        return 0
    if load * RUNWAY_CAP_MIN <= above * 60:  # ~0 W (or negative: CT noise) or over a week
        return RUNWAY_CAP_MIN
    return math.floor(above * 60 / load)


@dataclass(slots=True)
class BatteryIntegrator:
    """Charged and discharged energy, integrated from battery power (trapezoid rule).

    Pure: feed it readings with their time; a gap longer than ``max_gap`` seconds is not
    integrated (the power in between is unknown), and a reading older than the last one
    is ignored.
    """

    max_gap: float = MAX_GAP_S
    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    last_at: float | None = None  # seconds since the epoch
    last_watts: float | None = None

    def add(self, watts: float | None, at: datetime) -> None:
        """Take one battery power reading (W, positive = discharging) taken at `at`."""
        if watts is None or not math.isfinite(watts):
            return
        now = at.timestamp()
        if self.last_at is not None and self.last_watts is not None:
            elapsed = now - self.last_at
            if elapsed < 0:
                return
            if elapsed <= self.max_gap:
                self._integrate(self.last_watts, watts, elapsed)
        self.last_at, self.last_watts = now, watts

    def _integrate(self, before: float, after: float, seconds: float) -> None:
        if seconds == 0:
            return
        if (before >= 0) == (after >= 0):
            self._book((before + after) / 2 * seconds / 3600)
            return
        # the line crosses zero: split it there so charge and discharge are booked apart
        crossing = seconds * abs(before) / (abs(before) + abs(after))
        self._book(before / 2 * crossing / 3600)
        self._book(after / 2 * (seconds - crossing) / 3600)

    def _book(self, wh: float) -> None:
        if wh > 0:
            self.discharged_wh += wh
        else:
            self.charged_wh -= wh

    def values(self) -> dict[str, float]:
        """The integrated counters, for `Snapshot.derived` (Wh, rounded to 0.1)."""
        return {
            BATTERY_CHARGED: round(self.charged_wh, 1),
            BATTERY_DISCHARGED: round(self.discharged_wh, 1),
        }

    def to_json(self) -> str:
        """The state to persist across restarts."""
        return json.dumps(
            {
                "charged_wh": self.charged_wh,
                "discharged_wh": self.discharged_wh,
                "last_at": self.last_at,
                "last_watts": self.last_watts,
            }
        )

    @classmethod
    def from_json(cls, text: str, *, max_gap: float = MAX_GAP_S) -> BatteryIntegrator:
        """The state persisted by `to_json` (raises ValueError if it is not that)."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a battery integrator state")  # noqa: TRY004 - bad data
        return cls(
            max_gap=max_gap,
            charged_wh=_number(raw.get("charged_wh")) or 0.0,
            discharged_wh=_number(raw.get("discharged_wh")) or 0.0,
            last_at=_number(raw.get("last_at")),
            last_watts=_number(raw.get("last_watts")),
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def observe(integrator: BatteryIntegrator, data: EnvoyData, at: datetime) -> dict[str, float]:
    """Feed one reading of the gateway; return the derived values for `Snapshot.derived`.

    Where a storage CT is fitted its own counters are better: nothing is integrated then.
    """
    if storage_ct_watts(data) is not None:
        return {}
    watts = battery_watts(data)
    if watts is None:
        return {}
    integrator.add(watts, at)
    return integrator.values()
