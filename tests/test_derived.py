"""Derived values: battery flow and its integrated energy, persisted across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyenphase.models.acb import EnvoyACBPower
from pyenphase.models.encharge import EnvoyEnchargePower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import EnvoyMeterData

from envoy2mqtt.catalog.derived import (
    BATTERY_CHARGED,
    BATTERY_DISCHARGED,
    BatteryIntegrator,
    battery_watts,
    has_batteries,
    observe,
)
from envoy2mqtt.polling.energy import load, save, state_path

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def meter(active_power: int, delivered: int = 0, received: int = 0) -> EnvoyMeterData:
    return EnvoyMeterData(
        eid="1",
        timestamp=0,
        energy_delivered=delivered,
        energy_received=received,
        active_power=active_power,
        power_factor=1.0,
        voltage=230.0,
        current=1.0,
        frequency=50.0,
        state=None,
        measurement_type=None,
        metering_status=None,
        status_flags=None,
    )


def encharge(*milliwatts: int) -> dict[str, EnvoyEnchargePower]:
    return {
        str(i): EnvoyEnchargePower(apparent_power_mva=mw, real_power_mw=mw, soc=50)
        for i, mw in enumerate(milliwatts)
    }


def test_constant_discharge_for_an_hour_is_its_power_in_wh() -> None:
    integrator = BatteryIntegrator()
    for minute in range(0, 61, 5):
        integrator.add(1200, minutes(minute))
    assert integrator.values() == {BATTERY_DISCHARGED: 1200.0, BATTERY_CHARGED: 0.0}


def test_trapezoid_between_readings() -> None:
    integrator = BatteryIntegrator(max_gap=3600)
    integrator.add(-1000, minutes(0))
    integrator.add(-3000, minutes(30))
    assert integrator.charged_wh == pytest.approx(1000)  # mean 2000 W for half an hour
    assert integrator.discharged_wh == 0


def test_a_sign_change_is_split_at_zero() -> None:
    integrator = BatteryIntegrator(max_gap=3600)
    integrator.add(-1000, minutes(0))
    integrator.add(1000, minutes(60))
    # a straight line from -1000 W to +1000 W: half an hour each side, 250 Wh each
    assert integrator.charged_wh == pytest.approx(250)
    assert integrator.discharged_wh == pytest.approx(250)


def test_gaps_and_stale_readings_are_not_integrated() -> None:
    integrator = BatteryIntegrator(max_gap=600)
    integrator.add(2000, minutes(0))
    integrator.add(2000, minutes(30))  # 30 min gap: unknown in between
    assert integrator.discharged_wh == 0
    integrator.add(2000, minutes(35))
    assert integrator.discharged_wh == pytest.approx(2000 * 5 / 60)
    integrator.add(9000, minutes(34))  # older than the last reading: ignored
    integrator.add(None, minutes(36))
    integrator.add(float("nan"), minutes(36))
    assert integrator.last_watts == 2000
    assert integrator.discharged_wh == pytest.approx(2000 * 5 / 60)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = state_path(tmp_path / "state", "1220")
    integrator = load(path)
    assert integrator.values() == {BATTERY_CHARGED: 0.0, BATTERY_DISCHARGED: 0.0}
    integrator.add(-600, minutes(0))
    integrator.add(-600, minutes(10))
    save(path, integrator)
    again = load(path)
    assert again.charged_wh == pytest.approx(100)
    again.add(-600, minutes(15))  # continues from the persisted last reading
    assert again.charged_wh == pytest.approx(150)
    again.add(-600, minutes(120))  # after a long outage nothing is guessed
    assert again.charged_wh == pytest.approx(150)


def test_a_corrupt_state_file_starts_from_zero(tmp_path: Path) -> None:
    path = tmp_path / "battery.json"
    path.write_text("{not json", encoding="utf-8")
    assert load(path).values()[BATTERY_CHARGED] == 0.0
    path.write_text('{"charged_wh": "x", "discharged_wh": 5, "last_at": null}', encoding="utf-8")
    integrator = load(path)
    assert (integrator.charged_wh, integrator.discharged_wh, integrator.last_at) == (0, 5, None)
    path.write_text("[1, 2]", encoding="utf-8")
    assert load(path).discharged_wh == 0


def test_battery_watts_prefers_the_storage_ct() -> None:
    data = EnvoyData(encharge_power=encharge(-1_500_000, -500_400))
    assert battery_watts(data) == -2000
    data.acb_power = EnvoyACBPower(
        power=300, charge_wh=900, state_of_charge=40, state="x", batteries=1
    )
    assert battery_watts(data) == -1700
    data.ctmeters["storage"] = meter(-2100)
    assert battery_watts(data) == -2100
    assert battery_watts(EnvoyData()) is None


def test_observe_integrates_only_without_a_storage_ct() -> None:
    integrator = BatteryIntegrator()
    data = EnvoyData(encharge_power=encharge(600_000))
    assert observe(integrator, data, minutes(0)) == {BATTERY_CHARGED: 0, BATTERY_DISCHARGED: 0}
    assert observe(integrator, data, minutes(10))[BATTERY_DISCHARGED] == 100
    assert observe(integrator, EnvoyData(), minutes(11)) == {}
    data.ctmeters["storage"] = meter(500, delivered=10, received=20)
    assert observe(integrator, data, minutes(62)) == {}


def test_has_batteries() -> None:
    assert not has_batteries(EnvoyData())
    assert has_batteries(EnvoyData(encharge_power=encharge(0)))
    empty_acb = EnvoyACBPower(power=0, charge_wh=0, state_of_charge=0, state="idle", batteries=0)
    assert not has_batteries(EnvoyData(acb_power=empty_acb))
    assert has_batteries(EnvoyData(ctmeters={"storage": meter(0)}))
