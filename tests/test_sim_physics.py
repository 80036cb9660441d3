"""The simulated gateway keeps the gateway's own arithmetic on every drifted reading it serves.

Hypothesis drives the drift of two real captures (split-phase with a storage CT and five
batteries; single-phase CTs without a battery) over random request times, grid states and
storage settings, and every check reads the JSON bytes the gateway would serve, never the
simulator's state: total consumption = production + net (per phase too), the storage CT and
/ivp/ensemble/power agree, no grid charging unless the settings allow it, nothing in or out
off grid, energy counters that integrate the powers served, and "today" and seven-day
counters a real day could have produced.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envoy2mqtt.sim import load_capture
from envoy2mqtt.sim.drift import MAX_STEP_S, Drift
from envoy2mqtt.sim.ensemble import set_storage
from envoy2mqtt.sim.state import SimState

BATTERY = "8.2.4286_with_3cts_and_battery_split"
CTS = "7.6.175_with_cts"
LOADED = {name: load_capture(name) for name in (BATTERY, CTS)}
# The arrays' nameplate: the sum of maxReportWatts in api_v1_production_inverters.
PEAK_W = {BATTERY: 10_852.0, CTS: 2_332.0}  # 35 micros of 242-340 W; 7 of 253-365 W
PHASES = {BATTERY: 2, CTS: 1}  # /ivp/meters phaseCount (split phase; "three" mode, 1 phase)
CAPACITY_WH = 25_000  # secctrl Enc_max_available_capacity: 5 IQ Battery 5P
DAY = 86_400.0
CLEAR_DAY_H = 24 / math.pi  # a clear day's energy over its peak power: the sine's integral
SERVED = (
    "production.json",
    "production",
    "api_v1_production",
    "ivp_meters",
    "ivp_meters_readings",
    "ivp_ensemble_power",
    "ivp_ensemble_secctrl",
    "ivp_ensemble_inventory",
    "admin_lib_tariff",
)
PHYSICS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Reading:
    """Everything served at one instant, parsed from the bytes on the wire."""

    at: float
    day: float  # local day number
    local_hour: float
    docs: dict[str, Any]

    def entry(self, doc: str, section: str, kind: str) -> dict[str, Any]:
        found = [e for e in self.docs[doc][section] if e.get("measurementType") == kind]
        assert len(found) == 1
        entry: dict[str, Any] = found[0]
        return entry

    def ct(self, kind: str) -> dict[str, Any] | None:
        eids = {m["eid"] for m in self.docs["ivp_meters"] if m["measurementType"] == kind}
        return next((r for r in self.docs["ivp_meters_readings"] if r["eid"] in eids), None)

    def battery_w(self) -> float:
        units = self.docs.get("ivp_ensemble_power", {}).get("devices:", [])
        return sum(float(u["real_power_mw"]) for u in units) / 1000

    def storage(self) -> dict[str, Any]:
        tariff: dict[str, Any] = self.docs["admin_lib_tariff"]["tariff"]["storage_settings"]
        return tariff


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def serve(state: SimState, at: float, offset: float) -> Reading:
    docs = {}
    for name in SERVED:
        reply = state.reply(name)
        if reply is not None and reply.status == 200:
            docs[name] = json.loads(reply.body)
    return Reading(at, (at + offset) // DAY, ((at + offset) % DAY) / 3600, docs)


def clear_sky_wh(peak: float, hour: float) -> float:
    """A cloudless day's production from midnight to `hour`: the sine from 06:00 to 18:00."""
    h = min(max(hour - 6, 0.0), 12.0)
    return peak * 12 / math.pi * (1 - math.cos(math.pi * h / 12))


def check_arithmetic(r: Reading, name: str, *, grid_on: bool) -> None:
    """Total consumption = production + net, in total and per phase; net 0 off grid."""
    for doc in ("production.json", "production"):
        prod = r.entry(doc, "production", "production")
        total = r.entry(doc, "consumption", "total-consumption")
        net = r.entry(doc, "consumption", "net-consumption")
        assert close(total["wNow"], prod["wNow"] + net["wNow"])
        lines = zip(
            prod.get("lines", []), net.get("lines", []), total.get("lines", []), strict=True
        )
        for p, n, t in lines:
            assert close(t["wNow"], p["wNow"] + n["wNow"])
        for entry in (prod, net, total):
            if entry.get("lines"):
                assert close(sum(line["wNow"] for line in entry["lines"]), entry["wNow"])
        if not grid_on:
            assert net["wNow"] == 0
            assert all(line["wNow"] == 0 for line in net.get("lines", []))
    phases = PHASES[name]
    for kind, section in (("production", "production"), ("net-consumption", "consumption")):
        ct = r.ct(kind)
        assert ct is not None
        entry = r.entry("production.json", section, kind)
        assert close(ct["activePower"], entry["wNow"])  # the same CT, served at one instant
        live, dead = ct["channels"][:phases], ct["channels"][phases:]
        assert close(sum(c["activePower"] for c in live), ct["activePower"])
        for channel, line in zip(live, entry.get("lines", []), strict=False):
            assert close(channel["activePower"], line["wNow"])
        assert all(c["activePower"] == 0 for c in dead)


def check_battery(r: Reading, name: str, *, grid_on: bool) -> None:
    """Storage CT sign and sum, state of charge everywhere, grid charging only if allowed."""
    if name != BATTERY:
        assert r.ct("storage") is None
        return
    storage = r.ct("storage")
    assert storage is not None
    battery = storage["activePower"]  # pyenphase: positive is delivering into the house
    assert abs(battery - r.battery_w()) < 0.01  # /ivp/ensemble/power: whole mW per unit
    live = storage["channels"][: PHASES[name]]
    assert close(sum(c["activePower"] for c in live), battery)
    net = r.entry("production.json", "consumption", "net-consumption")["wNow"]
    production = r.entry("production.json", "production", "production")["wNow"]
    house = r.entry("production.json", "consumption", "total-consumption")["wNow"] + battery
    assert close(house, production + net + battery)
    assert house >= -1e-6
    settings_ = r.storage()
    if battery < 0 and not settings_["charge_from_grid"]:
        assert net <= 1e-6, "charging from the grid while storage settings forbid it"
    if grid_on and settings_["mode"] == "backup":
        assert battery <= 0, "full backup discharged on grid"
    secctrl = r.docs["ivp_ensemble_secctrl"]
    soc = secctrl["agg_soc"]
    assert {u["soc"] for u in r.docs["ivp_ensemble_power"]["devices:"]} == {soc}
    encharges = [i for i in r.docs["ivp_ensemble_inventory"] if i["type"] == "ENCHARGE"]
    assert {d["percentFull"] for i in encharges for d in i["devices"]} == {soc}
    assert secctrl["ENC_agg_avail_energy"] == round(CAPACITY_WH * soc / 100)


def check_day_counters(r: Reading, name: str) -> None:
    """Today fits the time of day; seven days is a week's worth, not the lifetime."""
    peak = PEAK_W[name]
    prod = r.entry("production.json", "production", "production")
    today, week, lifetime = prod["whToday"], prod["whLastSevenDays"], prod["whLifetime"]
    # one 300 s step of left-Riemann overshoot on the falling sine, and 1 % sun jitter
    assert today <= clear_sky_wh(peak, r.local_hour) * 1.05 + peak * MAX_STEP_S / 3600
    if r.local_hour < 6:
        assert today == 0
    assert today <= week <= min(lifetime, 7 * peak * CLEAR_DAY_H)
    for line in prod.get("lines", []):
        assert line["whToday"] <= line["whLastSevenDays"] <= line["whLifetime"]
    v1 = r.docs["api_v1_production"]
    assert abs(v1["wattHoursToday"] - today) <= 0.5
    assert abs(v1["wattHoursSevenDays"] - week) <= 0.5
    assert v1["wattsNow"] == round(max(prod["wNow"], 0))


def counters(r: Reading, name: str) -> dict[str, tuple[float, float]]:
    """Every energy counter served, with the power it should integrate (W, + = counting)."""
    out: dict[str, tuple[float, float]] = {}
    for kind in ("production", "total-consumption", "net-consumption"):
        section = "production" if kind == "production" else "consumption"
        entry = r.entry("production.json", section, kind)
        for i, part in enumerate([entry, *entry.get("lines", [])]):
            power = part["wNow"] if kind == "net-consumption" else max(part["wNow"], 0)
            out[f"{kind}/{i}/whLifetime"] = (part["whLifetime"], power)
            if kind != "net-consumption":
                out[f"{kind}/{i}/whToday"] = (part["whToday"], power)
    for kind in ("production", "net-consumption", "storage"):
        ct = r.ct(kind)
        for i, part in enumerate([ct, *ct["channels"]] if ct else []):
            if i <= PHASES[name]:  # the aggregate and the channels that measure something
                power = part["activePower"]
                out[f"{kind}/{i}/Dlvd"] = (part["actEnergyDlvd"], max(power, 0))
                out[f"{kind}/{i}/Rcvd"] = (part["actEnergyRcvd"], max(-power, 0))
    return out


def check_integration(before: Reading, after: Reading, name: str) -> None:
    """Counters never run back; over one step they add exactly the power served x time."""
    hours = (after.at - before.at) / 3600
    same_day = after.day == before.day
    one_step = after.at - before.at <= MAX_STEP_S and same_day
    old, new = counters(before, name), counters(after, name)
    for key, (value, _) in new.items():
        then, power = old[key]
        if "whToday" in key and not same_day:
            continue  # a new day began in between
        if "net-consumption" not in key or "whLifetime" not in key:
            assert value >= then - 1e-6, key
        if one_step:
            assert math.isclose(value - then, power * hours, rel_tol=1e-6, abs_tol=1e-6), key
    if name == BATTERY and one_step:
        soc_then = before.docs["ivp_ensemble_secctrl"]["agg_soc"]
        soc_now = after.docs["ivp_ensemble_secctrl"]["agg_soc"]
        discharged = new["storage/0/Dlvd"][0] - old["storage/0/Dlvd"][0]
        charged = new["storage/0/Rcvd"][0] - old["storage/0/Rcvd"][0]
        if 1 <= soc_then <= 99 and 1 <= soc_now <= 99:
            expected = soc_then - (discharged - charged) / CAPACITY_WH * 100
            assert abs(soc_now - expected) <= 1, "state of charge does not follow the energy"


STEP = st.tuples(
    st.one_of(st.floats(1, MAX_STEP_S), st.floats(MAX_STEP_S, 2 * DAY)),  # to the next request
    st.booleans(),  # grid on
    st.booleans(),  # charge from grid allowed
    st.sampled_from(("self-consumption", "backup", "savings-mode")),
    st.integers(0, 100),  # reserve
)


@PHYSICS
@given(
    name=st.sampled_from(sorted(LOADED)),
    start=st.floats(1.7e9, 1.7e9 + DAY),
    offset=st.sampled_from((0.0, -8 * 3600.0, 10 * 3600.0)),
    seed=st.integers(0, 2**16),
    steps=st.lists(STEP, min_size=1, max_size=10),
)
def test_every_drifted_reading_keeps_the_gateways_arithmetic(
    name: str,
    start: float,
    offset: float,
    seed: int,
    steps: list[tuple[float, bool, bool, str, int]],
) -> None:
    state = SimState(LOADED[name])
    clock = Clock(start)
    drift = Drift(state, clock=clock, utc_offset_s=offset, seed=seed)
    drift.advance()
    before = serve(state, clock.now, offset)
    check_arithmetic(before, name, grid_on=True)
    check_battery(before, name, grid_on=True)
    check_day_counters(before, name)
    for seconds, grid_on, from_grid, mode, reserve in steps:
        clock.now += seconds
        state.set_grid(grid_on)
        set_storage(state, mode=mode, charge_from_grid=from_grid, reserve_soc=reserve)
        drift.advance()
        after = serve(state, clock.now, offset)
        check_arithmetic(after, name, grid_on=grid_on)
        check_battery(after, name, grid_on=grid_on)
        check_day_counters(after, name)
        check_integration(before, after, name)
        before = after
