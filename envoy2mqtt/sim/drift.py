"""Move a gateway's numbers over time, keeping the gateway's own arithmetic on every reading.

On every reading served: total consumption = production + net, per phase too; off grid
net is 0 and the battery carries the house; the battery charges from the grid only when
the storage settings allow it; every energy counter integrates the powers served; "today"
starts from what the time of day would have produced and the last seven days are seven
days' worth, not the lifetime.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Final

from . import ensemble
from .ledger import DAY, PAST_DAYS, Key, Ledger
from .meters import write_production, write_readings, write_v1
from .physics import Physics, PowerSample
from .site import V1, V1_INVERTERS, Site, battery, survey
from .state import READINGS, SimState

INVERTER_REPORT_S: Final = 300
MAX_STEP_S: Final = 300.0  # a long gap is walked in steps this long, so the sun sets on time
PRODUCTION_DOCS: Final = ("production.json", "production")
DEVICE_DATA: Final = "ivp_pdm_device_data"
WEATHER: Final = (0.45, 1.15)  # an earlier day's production, against an average day's
LOAD_DAYS: Final = (0.85, 1.15)


class Drift:
    """Moves a gateway's numbers over time; call `advance` before serving a reply."""

    def __init__(
        self,
        state: SimState,
        *,
        clock: Callable[[], float],
        utc_offset_s: float,
        seed: int | None = None,
    ) -> None:
        """Derive the house (phases, peak, load, battery) from the capture's own numbers."""
        self._state = state
        self._clock = clock
        self._original = {
            name: rec.document for name, rec in state.capture.recordings.items() if rec.is_json
        }
        self.site: Site = survey(state)
        self._rng = random.Random(seed)
        self.physics = Physics(
            peak_w=self.site.peak_w,
            base_load_w=self.site.base_load_w,
            battery=battery(state),
            utc_offset_s=utc_offset_s,
            rng=self._rng,
        )
        self.ledger = Ledger(utc_offset_s)
        self._at: float | None = None
        self._report_slots: dict[str, int] = {}

    def set_battery(self, soc: float | None = None, power_w: float | None = None) -> None:
        """Hold a state of charge or a battery power set by hand (power only while on grid)."""
        if self.physics.battery is None:
            return
        if soc is not None:
            self.physics.battery.soc = soc
        if power_w is not None:
            self.physics.battery.override_w = power_w

    def advance(self) -> None:
        """Step the house to clock() and rewrite every document it shows in."""
        now = self._clock()
        settings = ensemble.controller_settings(self._state)
        grid_on = self._state.grid_on
        sample: PowerSample | None = None
        for t in self._steps(now):
            sample = self.physics.step(t, grid_on=grid_on, settings=settings)
            self.ledger.step(t, flows(sample, self.site, grid_on=grid_on))
            self._at = t
        if sample is not None:
            self._write(sample, self._at or now)

    def _steps(self, now: float) -> Iterator[float]:
        """Instants to step through up to `now`: at most MAX_STEP_S apart, and at midnight."""
        if self._at is None:
            self._seed(now)
            yield now
            return
        t = self._at
        if now <= t:
            yield t  # same instant: the grid or the settings may have changed since
            return
        while t < now:
            t = min(t + MAX_STEP_S, self.ledger.next_midnight(t), now)
            yield t

    def _seed(self, now: float) -> None:
        """The counters' history: earlier today by the clock, and six typical days before."""
        midnight = self.ledger.next_midnight(now) - DAY
        day_wh = self.physics.expected_production_wh(midnight, midnight + DAY)
        so_far = self.physics.expected_production_wh(midnight, now)
        weather = [day_wh * self._rng.uniform(*WEATHER) for _ in range(PAST_DAYS)]
        load_wh = self.physics.base_load_w * 24
        loads = [load_wh * self._rng.uniform(*LOAD_DAYS) for _ in range(PAST_DAYS)]
        hours = (now - midnight) / 3600
        for flow, shares, today, days in (
            ("production", self.site.production_shares, so_far, weather),
            ("consumption", self.site.house_shares, self.physics.base_load_w * hours, loads),
        ):
            for phase, share in ((None, 1.0), *enumerate(shares)):
                self.ledger.seed((flow, phase), today=today * share, days=[d * share for d in days])

    def _write(self, sample: PowerSample, now: float) -> None:
        for name in PRODUCTION_DOCS:
            original = self._original.get(name)
            if isinstance(original, dict) and name in self._state.documents:
                write_production(self._state.touch(name), original, self.ledger, now=now)
        original = self._original.get(V1)
        if isinstance(original, dict) and V1 in self._state.documents:
            write_v1(self._state.touch(V1), original, self.ledger)
        original = self._original.get(READINGS)
        if isinstance(original, list) and READINGS in self._state.documents:
            write_readings(
                self._state.touch(READINGS),
                original,
                self.ledger,
                kinds=self._state.meter_eids(),
                phases=self.site.phases,
                now=now,
            )
        self._write_inverters(sample, now)
        if self.physics.battery is not None:
            ensemble.apply_soc(self._state, self.physics.battery.soc)
            ensemble.apply_power(self._state, sample.battery_w, storage_ct=False)

    def _write_inverters(self, s: PowerSample, now: float) -> None:
        """Each inverter reports once per five minutes, at its own offset in the slot."""
        original = self._original.get(V1_INVERTERS)
        if isinstance(original, list) and V1_INVERTERS in self._state.documents:
            micro = [(i, o) for i, o in enumerate(original) if o.get("devType", 1) == 1]
            total = sum(o.get("maxReportWatts", 0) for _, o in micro) or 1
            document = self._state.documents[V1_INVERTERS]
            for i, orig in micro:
                slot_start = self._report(orig["serialNumber"], i, now)
                if slot_start is not None:
                    self._state.dirty.add(V1_INVERTERS)
                    watts = s.inverters_w * orig.get("maxReportWatts", 0) / total
                    document[i]["lastReportWatts"] = min(round(watts), orig["maxReportWatts"])
                    document[i]["lastReportDate"] = slot_start
        data = self._original.get(DEVICE_DATA)
        if isinstance(data, dict) and DEVICE_DATA in self._state.documents:
            pcus = [k for k, v in data.items() if isinstance(v, dict) and v.get("devName") == "pcu"]
            document = self._state.documents[DEVICE_DATA]
            for i, key in enumerate(pcus):
                slot_start = self._report(f"pcu{key}", i, now)
                channel = document[key].get("channels", [{}])[0]
                if slot_start is not None and "watts" in channel:
                    self._state.dirty.add(DEVICE_DATA)
                    share = s.inverters_w / max(len(pcus), 1)
                    channel["watts"]["now"] = min(round(share), channel["watts"].get("max", share))
                    channel.setdefault("lastReading", {})["endDate"] = slot_start

    def _report(self, key: str, index: int, now: float) -> int | None:
        """Start of the report slot if this inverter reported since we last looked."""
        offset = (index * 37) % INVERTER_REPORT_S
        slot = int((now - offset) // INVERTER_REPORT_S)
        previous = self._report_slots.setdefault(key, slot)
        if slot == previous:
            return None
        self._report_slots[key] = slot
        return slot * INVERTER_REPORT_S + offset


def flows(sample: PowerSample, site: Site, *, grid_on: bool) -> dict[Key, float]:
    """Power per metered flow, for the whole meter and per phase.

    Per phase the same arithmetic holds as in total: PV and house split by the capture's
    own shares; on grid the battery too and the net meter takes the rest, off grid the
    battery takes the rest on each phase and the net meter reads 0.
    """
    out: dict[Key, float] = {
        ("production", None): sample.production_w,
        ("net", None): sample.net_w,
        ("consumption", None): sample.consumption_w,
        ("storage", None): sample.battery_w,
    }
    shares = zip(site.production_shares, site.house_shares, site.battery_shares, strict=True)
    for phase, (pv_share, house_share, battery_share) in enumerate(shares):
        pv, house = sample.production_w * pv_share, sample.house_w * house_share
        if grid_on:
            battery = sample.battery_w * battery_share
            net = house - pv - battery
        else:
            battery, net = house - pv, 0.0
        out |= {
            ("production", phase): pv,
            ("net", phase): net,
            ("consumption", phase): pv + net,
            ("storage", phase): battery,
        }
    return out
