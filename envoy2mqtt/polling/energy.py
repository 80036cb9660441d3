"""The battery energy counters the bridge integrates itself, kept in STATE_DIR across restarts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog import derived
from envoy2mqtt.statefile import write_atomically

log = logging.getLogger(__name__)

SAVE_EVERY: Final = 300.0


@dataclass(slots=True)
class BatteryEnergy:
    """Charged/discharged energy integrated from battery power, saved every few minutes."""

    state_dir: Path | None
    serial: str | None = None
    _integrator: derived.BatteryIntegrator | None = None
    _saved_at: float = field(default=float("-inf"))

    def start(self, serial: str) -> None:
        """Load the counters of this gateway (once, on its first connect)."""
        if self.state_dir is not None and self._integrator is None:
            self.serial = serial
            self._integrator = load(state_path(self.state_dir, serial))

    def observe(self, data: EnvoyData, at: datetime, now: float) -> dict[str, float]:
        """Integrate this reading; the derived values for the snapshot. Saves when due."""
        if self._integrator is None:
            return {}
        values = derived.observe(self._integrator, data, at)
        if now - self._saved_at > SAVE_EVERY:
            self.save(now)
        return values

    def save(self, now: float) -> None:
        """Persist the counters (every few minutes and on the way out)."""
        self._saved_at = now
        if self._integrator is None or self.state_dir is None or self.serial is None:
            return
        try:
            save(state_path(self.state_dir, self.serial), self._integrator)
        except OSError as err:
            log.warning("cannot save battery energy counters in %s: %s", self.state_dir, err)


def state_path(state_dir: Path, serial: str) -> Path:
    """Where a gateway's battery integrator state lives."""
    return state_dir / f"battery-energy-{serial}.json"


def load(path: Path, *, max_gap: float = derived.MAX_GAP_S) -> derived.BatteryIntegrator:
    """The integrator persisted at `path`; a fresh one if there is none or it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        return derived.BatteryIntegrator.from_json(text, max_gap=max_gap)
    except FileNotFoundError:
        return derived.BatteryIntegrator(max_gap=max_gap)
    except (OSError, ValueError) as err:
        log.warning("battery energy state %s unreadable (%s); starting from zero", path, err)
        return derived.BatteryIntegrator(max_gap=max_gap)


def save(path: Path, integrator: derived.BatteryIntegrator) -> None:
    """Persist the integrator atomically (raises OSError if that fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, integrator.to_json())
