"""The simulated battery: what it does with the house's surplus or deficit, and its charge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BACKUP: Final = "backup"  # full backup: on grid the battery only charges, never discharges
FULL: Final = 100.0


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The storage settings the battery obeys (the tariff's `storage_settings`)."""

    mode: str = "self-consumption"
    charge_from_grid: bool = False
    reserve_soc: float = 10.0  # on grid, self-consumption stops discharging here


@dataclass(slots=True)
class Battery:
    """All batteries as one: usable energy, power rating and state of charge.

    Power is positive while discharging into the house, as the storage CT and
    /ivp/ensemble/power report it.
    """

    capacity_wh: float
    max_w: float
    soc: float  # percent
    override_w: float | None = None  # a power set by hand (`set_battery`) wins on grid

    @property
    def full(self) -> bool:
        """No room left to charge."""
        return self.soc >= FULL

    @property
    def empty(self) -> bool:
        """Nothing left to discharge."""
        return self.soc <= 0.0

    def limit(self, watts: float) -> float:
        """`watts` within the rating, and never into a full or out of an empty battery."""
        watts = min(max(watts, -self.max_w), self.max_w)
        if (watts < 0.0 and self.full) or (watts > 0.0 and self.empty):
            return 0.0
        return watts

    def on_grid(self, surplus_w: float, settings: StorageSettings) -> float:
        """Battery power with the grid there to take or give the rest.

        Surplus PV charges the battery; a deficit is covered down to the reserve (not at
        all in full backup). It charges from the grid only when the settings allow it, and
        then only up to what it is meant to hold: the reserve, or full in backup mode.
        """
        if self.override_w is not None:
            return self.limit(self.override_w)
        backup = settings.mode == BACKUP
        if surplus_w >= 0.0:
            watts = -surplus_w
        elif backup or self.soc <= settings.reserve_soc:
            watts = 0.0
        else:
            watts = -surplus_w
        target = FULL if backup else settings.reserve_soc
        if settings.charge_from_grid and self.soc < target:
            watts = -self.max_w
        return self.limit(watts)

    def integrate(self, watts: float, seconds: float) -> None:
        """Move the state of charge by `watts` held for `seconds`."""
        if self.capacity_wh <= 0.0:
            return
        delta = watts * seconds / 3600.0 / self.capacity_wh * 100.0
        self.soc = min(FULL, max(0.0, self.soc - delta))
