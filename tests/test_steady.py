"""A battery state that holds and a runway that moves when it means it, pure."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from envoy2mqtt.catalog.battery import BATTERY
from envoy2mqtt.catalog.metric import Entity, Reading
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.core.steady import BatteryState, Runway, power_state, significant
from envoy2mqtt.mqtt.settle import Settler


def test_power_state_band() -> None:
    assert power_state(-350, 350) == "charging"
    assert power_state(-349, 350) == "idle"
    assert power_state(349, 350) == "idle"
    assert power_state(350, 350) == "discharging"


def test_first_reading_is_believed_at_once() -> None:
    assert BatteryState().feed(-2000, 0) == "charging"


def test_hovering_around_zero_stays_idle() -> None:
    state = BatteryState(dwell=30, band=350)
    rng = random.Random(7)
    seen = {state.feed(rng.uniform(-300, 300), t) for t in range(3600)}
    assert seen == {"idle"}


def test_new_state_needs_the_dwell() -> None:
    state = BatteryState(dwell=30, band=350)
    assert state.feed(0, 0) == "idle"
    assert state.feed(-2000, 1) == "idle"
    assert state.feed(-2000, 30) == "idle"
    assert state.feed(-2000, 31) == "charging"  # held 30 s


def test_a_reading_back_in_the_band_restarts_the_dwell() -> None:
    state = BatteryState(dwell=30, band=350)
    state.feed(0, 0)
    state.feed(-2000, 1)
    state.feed(-100, 20)  # back in the band: not yet charging
    assert state.feed(-2000, 40) == "idle"
    assert state.feed(-2000, 69) == "idle"
    assert state.feed(-2000, 70) == "charging"


def test_confirming_the_believed_state_drops_a_candidate() -> None:
    state = BatteryState(dwell=30, band=350)
    state.feed(2000, 0)
    state.feed(0, 1)  # idle candidate
    state.feed(2000, 2)  # still discharging: the candidate is gone
    assert state.feed(0, 31) == "discharging"
    assert state.feed(0, 61) == "idle"


@pytest.mark.parametrize(
    ("minutes", "rounded"),
    [(0.4, 0), (7, 7), (45.4, 45), (187, 190), (244, 240), (2437, 2400), (10080, 10000)],
)
def test_two_significant_figures(minutes: float, rounded: int) -> None:
    assert significant(minutes) == rounded


def test_runway_smooths_a_jumping_load() -> None:
    runway = Runway(tau=300, cap=10_080)
    rng = random.Random(3)
    published = []
    for t in range(3600):
        load = rng.uniform(800, 1_050)  # the field: 187-244 min at a steady charge
        published.append(runway.feed(3_000 * 60 / load, load, t))
    assert len(set(published[600:])) <= 3  # after the warm-up: a steady figure
    assert all(180 <= p <= 220 for p in published[600:])
    changes = sum(a != b for a, b in itertools.pairwise(published))
    assert changes < 30  # the raw runway changed in almost every second


def test_a_load_step_moves_the_runway_within_minutes() -> None:
    runway = Runway(tau=300, cap=10_080)
    for t in range(600):
        runway.feed(200, 900, t)
    after = [runway.feed(100, 1_800, 600 + t) for t in range(1_800)]  # the load doubles
    assert after[0] > 190  # one reading is not believed
    assert after[-1] == 100


def test_a_change_of_charge_moves_the_runway_at_once() -> None:
    runway = Runway(tau=300, cap=10_080)
    for t in range(600):
        runway.feed(200, 900, t)
    assert runway.feed(50, 900, 600) == 50  # the charge dropped: no averaging of that


def test_runway_zero_and_cap() -> None:
    runway = Runway(tau=300, cap=10_080)
    runway.feed(200, 900, 0)
    assert runway.feed(0, 900, 1) == 0  # nothing left above the reserve: at once
    assert runway.feed(10_080, 0, 2) < 10_080  # one load of ~0 W is not a week
    assert runway.feed(10_080, 0, 3_600) == 10_080
    assert Runway().feed(10_080, 0, 0) == 10_080
    assert Runway().feed(187, None, 0) == 190  # no load: rounded only


def test_the_settler_holds_the_catalogs_battery_state_and_smooths_its_runway() -> None:
    metrics = {m.key: m for m in BATTERY.source.metrics}
    keys = ("battery_power", "battery_state", "house_load_power", "backup_runway")
    entities = {key: Entity(key, metrics[key]) for key in keys}  # type: ignore[arg-type]
    roles = Roles.of(entities.values())
    assert roles.held == {"battery_state": "battery_power"}
    assert roles.smoothed == {"backup_runway": "house_load_power"}
    settler = Settler(battery_dwell=30, battery_band=350)
    start = datetime(2026, 6, 21, tzinfo=UTC)
    settled = []
    for t in range(120):
        watts = 250 if t % 2 else -250
        raw: dict[str, Value] = {
            "battery_power": watts,
            "battery_state": "discharging" if watts > 0 else "charging",  # ±50 W: flips
            "house_load_power": 900 + (200 if t % 3 else 0),
            "backup_runway": 3_000 * 60 // (900 + (200 if t % 3 else 0)),
        }
        readings = {key: Reading(entities[key], value) for key, value in raw.items()}
        settled.append(settler.settle(readings, roles, start + timedelta(seconds=t)))
    assert {s["battery_state"] for s in settled} == {"idle"}
    runways = [s["backup_runway"] for s in settled]
    assert sum(a != b for a, b in itertools.pairwise(runways)) <= 2  # raw: 80 changes
