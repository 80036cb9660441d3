"""The catalog, pure: hand-built pyenphase models in, readings out; every metric valid for HA."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pyenphase.const import URL_INVENTORY
from pyenphase.models.acb import EnvoyACB
from pyenphase.models.collar import EnvoyCollar
from pyenphase.models.dry_contacts import EnvoyDryContactSettings, EnvoyDryContactStatus
from pyenphase.models.encharge import EnvoyEncharge, EnvoyEnchargeAggregate, EnvoyEnchargePower
from pyenphase.models.enpower import EnvoyEnpower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.generator import EnvoyGenerator, EnvoyGeneratorConfig, EnvoyGeneratorMode
from pyenphase.models.inverter import EnvoyInverter
from pyenphase.models.meters import EnvoyMeterData
from pyenphase.models.system_consumption import EnvoySystemConsumption
from pyenphase.models.system_production import EnvoySystemProduction
from pyenphase.models.tariff import EnvoyTariff

from envoy2mqtt import catalog
from envoy2mqtt.catalog.base import Gated
from envoy2mqtt.catalog.derived import BATTERY_CHARGED, BATTERY_DISCHARGED
from envoy2mqtt.catalog.metric import Family, GatewayMetrics, Metric
from envoy2mqtt.catalog.status import describe_flag, has_problem, status_text
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot, Value
from envoy2mqtt.mqtt.reference import topic_reference

BATTERY_STATE = "battery_state"
BATTERY_MODE = "battery_mode"
INFO = GatewayInfo(serial="122238082763", firmware="8.2.4286", part_number="800-00654-r08")
DIAGNOSTICS = {"firmware", "serial", "part_number", "model", "metered", "phase_count", "ct_meters"}


def values(data: EnvoyData, derived: dict[str, float] | None = None) -> dict[str, Value]:
    snapshot = Snapshot(INFO, data, derived=derived or {})
    return {path: reading.value for path, reading in catalog.values(snapshot).items()}


def metrics_by_place() -> Iterator[tuple[str, Metric[Any]]]:
    """(kind or "gateway", metric) for every metric in the catalog."""
    for source in catalog.SOURCES:
        inner = source.source if isinstance(source, Gated) else source
        if isinstance(inner, GatewayMetrics):
            yield from (("gateway", metric) for metric in inner.metrics)
        else:
            assert isinstance(inner, Family)
            yield from ((inner.kind, metric) for metric in inner.metrics)


def production(watts: int = 3000, today: int = 12_000) -> EnvoySystemProduction:
    return EnvoySystemProduction(
        watt_hours_lifetime=5_000_000,
        watt_hours_last_7_days=70_000,
        watt_hours_today=today,
        watts_now=watts,
    )


def consumption(watts: int) -> EnvoySystemConsumption:
    return EnvoySystemConsumption(
        watt_hours_lifetime=9_000_000,
        watt_hours_last_7_days=90_000,
        watt_hours_today=20_000,
        watts_now=watts,
    )


def meter(power: int, delivered: int = 1000, received: int = 2000) -> EnvoyMeterData:
    return EnvoyMeterData(
        eid="704643584",
        timestamp=1_700_000_000,
        energy_delivered=delivered,
        energy_received=received,
        active_power=power,
        power_factor=0.95,
        voltage=240.5,
        current=12.5,
        frequency=60.0,
        state=None,
        measurement_type=None,
        metering_status="normal",  # type: ignore[arg-type]
        status_flags=[],
    )


ENCHARGE_JSON: dict[str, Any] = {
    "part_num": "836-01826-r76",
    "serial_num": "492320000140",
    "last_rpt_date": 1722966950,
    "admin_state": 6,
    "admin_state_str": "ENCHG_STATE_READY",
    "img_load_date": 1722887725,
    "img_pnum_running": "3.0.7545_rel/31.33",
    "bmu_fw_version": "3.8.63",
    "communicating": True,
    "percentFull": 39,
    "temperature": 18,
    "maxCellTemp": 19,
    "comm_level_sub_ghz": 0,
    "comm_level_2_4_ghz": 4,
    "led_status": 12,
    "dc_switch_off": False,
    "encharge_rev": 3,
    "encharge_capacity": 5000,
    "installed": 1722887725,
}
ENPOWER_JSON: dict[str, Any] = {
    "part_num": "865-00378-r27",
    "serial_num": "482326107450",
    "installed": 1722887831,
    "last_rpt_date": 1722967000,
    "admin_state": 24,
    "admin_state_str": "ENPWR_STATE_OPER_CLOSED",
    "img_load_date": 1722887831,
    "img_pnum_running": "3.0.6297_rel/31.33",
    "communicating": True,
    "temperature": 83,
    "comm_level_sub_ghz": 0,
    "comm_level_2_4_ghz": 0,
    "mains_admin_state": "closed",
    "mains_oper_state": "open",
    "Enpwr_grid_mode": "multimode-ongrid",
}


def test_every_metric_is_valid_for_home_assistant() -> None:
    rules: dict[str | None, tuple[set[str | None], set[str | None]]] = {
        # device class: (units, state classes)
        "power": ({"W"}, {"measurement", None}),
        "energy": ({"Wh"}, {"total_increasing", "total", None}),
        "energy_storage": ({"Wh"}, {"measurement"}),
        "apparent_power": ({"VA"}, {"measurement"}),
        "voltage": ({"V"}, {"measurement"}),
        "current": ({"A"}, {"measurement"}),
        "frequency": ({"Hz"}, {"measurement"}),
        "power_factor": ({None, "%"}, {"measurement"}),
        "temperature": ({"°C"}, {"measurement"}),
        "battery": ({"%"}, {"measurement"}),
        "duration": ({"s", "min", "h"}, {None}),
        "timestamp": ({None}, {None}),
        "enum": ({None}, {None}),
        None: ({None, "%", "A"}, {"measurement", None}),
    }
    for place, metric in metrics_by_place():
        where = f"{place}/{metric.key}"
        assert re.fullmatch(r"[a-z0-9_]+", metric.key), where
        assert metric.name, where
        assert metric.description, where
        if metric.component == "binary_sensor":
            assert metric.payload_on, where
            assert metric.payload_off, where
            assert metric.unit is None, where
            assert metric.state_class is None, where
            assert metric.device_class in {None, "power", "connectivity", "running", "problem"}
            continue
        assert metric.component == "sensor", where
        units, state_classes = rules[metric.device_class]
        assert metric.unit in units, where
        assert metric.state_class in state_classes, where
        assert bool(metric.options) == (metric.device_class == "enum"), where
        if metric.is_counter:  # the Energy dashboard's counters
            assert (metric.device_class, metric.unit) == ("energy", "Wh"), where
        if metric.daily or "today" in metric.key:
            assert metric.daily, where
            assert metric.is_counter, where


def test_keys_are_unique_and_per_phase_and_per_inverter_are_disabled() -> None:
    gateway = [m.key for place, m in metrics_by_place() if place == "gateway"]
    assert len(gateway) == len(set(gateway))
    kinds = [s.kind for s in catalog.SOURCES if isinstance(s, Family)]
    assert len(kinds) == len(set(kinds))
    assert not set(kinds) & set(gateway)  # a family's topic level never shadows a metric
    for kind in kinds:
        keys = [m.key for place, m in metrics_by_place() if place == kind]
        assert len(keys) == len(set(keys)), kind
    for place, metric in metrics_by_place():
        if re.search(r"_l[123]$", metric.key) or place == "inverter":
            assert not metric.enabled, f"{place}/{metric.key}"
    # the publisher clamps keys named "power" at night: nothing that may be negative is named so
    signed = [(p, m.key) for p, m in metrics_by_place() if m.key == "power" and p != "inverter"]
    assert signed == []


def test_absent_data_gives_absent_metrics() -> None:
    assert set(values(EnvoyData())) == DIAGNOSTICS
    assert values(EnvoyData())["ct_meters"] == "none"


def test_system_values_and_the_grid_from_the_net_ct() -> None:
    data = EnvoyData(
        system_production=production(3000),
        system_consumption=consumption(1200),
        system_net_consumption=consumption(-1810),
        ctmeters={"net-consumption": meter(-1800, delivered=111, received=222)},
    )
    got = values(data)
    assert got["production_power"] == 3000
    assert got["production_energy_last_7_days"] == 70_000
    assert got["consumption_energy_lifetime"] == 9_000_000
    assert got["net_power"] == -1800  # the CT, fresher than /production's -1810
    assert (got["grid_import_power"], got["grid_export_power"]) == (0, 1800)
    assert (got["grid_import_energy"], got["grid_export_energy"]) == (111, 222)
    assert got["net_energy_lifetime"] == 9_000_000
    assert got["ct/net-consumption/active_power"] == -1800
    assert got["ct/net-consumption/status_flags"] == "none"
    assert got["ct/net-consumption/metering_status"] == "normal"
    assert "grid_status" not in got
    assert "battery_soc" not in got
    data.ctmeters = {}
    assert values(data)["net_power"] == -1810


def test_phases_only_where_reported() -> None:
    data = EnvoyData(
        system_production=production(),
        system_production_phases={"L1": production(1000), "L2": production(2000)},
        ctmeters={"production": meter(3000)},
        ctmeters_phases={"production": {"L1": meter(1000), "L2": None}},
    )
    got = values(data)
    assert got["production_power_l1"] == 1000
    assert got["production_power_l2"] == 2000
    assert "production_power_l3" not in got
    assert got["ct/production/active_power_l1"] == 1000
    assert "ct/production/active_power_l2" not in got  # pyenphase judged it invalid


def encharge_site(**changes: Any) -> EnvoyData:
    data = EnvoyData(
        system_consumption=consumption(1200),
        encharge_inventory={"492320000140": EnvoyEncharge.from_api(ENCHARGE_JSON)},
        encharge_power={
            "492320000140": EnvoyEnchargePower(
                apparent_power_mva=-1_324_500, real_power_mw=-1_324_500, soc=40
            )
        },
        encharge_aggregate=EnvoyEnchargeAggregate(
            available_energy=4000,
            backup_reserve=1000,
            state_of_charge=40,
            reserve_state_of_charge=20,
            configured_reserve_state_of_charge=20,
            max_available_capacity=10_000,
        ),
        tariff=EnvoyTariff.from_api(
            {
                "currency": {},
                "single_rate": {},
                "seasons": [],
                "storage_settings": {
                    "mode": "savings-mode",
                    "operation_mode_sub_type": "",
                    "reserved_soc": 20.0,
                    "very_low_soc": 5,
                    "charge_from_grid": True,
                },
            }
        ),
    )
    for name, value in changes.items():
        setattr(data, name, value)
    return data


def test_batteries_each_a_device_and_together() -> None:
    got = values(encharge_site())
    assert got["battery_soc"] == 40
    assert got["battery_power"] == -1324  # positive discharging
    assert got[BATTERY_STATE] == "charging"
    assert got[BATTERY_MODE] == "economy"  # the legacy name, as pyenphase normalises it
    assert got["storage_charge_from_grid"] == "on"
    assert got["house_load_power"] == 1200 - 1324
    assert got["battery/492320000140/real_power"] == -1324.5
    assert got["battery/492320000140/soc"] == 40
    assert got["battery/492320000140/dc_switch"] == "on"
    assert got["battery/492320000140/last_report"] == "2024-08-06T17:55:50+00:00"
    assert "battery_charged_energy" not in got  # no storage CT and nothing integrated yet
    derived = {BATTERY_CHARGED: 12.5, BATTERY_DISCHARGED: 7.0}
    got = values(encharge_site(), derived)
    assert (got["battery_charged_energy"], got["battery_discharged_energy"]) == (12.5, 7.0)
    with_ct = encharge_site(ctmeters={"storage": meter(-1300, delivered=50, received=60)})
    got = values(with_ct, derived)
    assert got["battery_power"] == -1300
    assert (got["battery_charged_energy"], got["battery_discharged_energy"]) == (60, 50)


def test_a_site_without_batteries_has_no_battery_values() -> None:
    # pyenphase reports an aggregate of zeros where the ENCHARGE group is empty
    got = values(encharge_site(encharge_inventory={}, encharge_power={}))
    assert not [key for key in got if key.startswith(("battery", "storage_", "acb"))]


@pytest.mark.parametrize(
    ("watts", "state"),
    [(-50, "charging"), (-49, "idle"), (0, "idle"), (49, "idle"), (50, "discharging")],
)
def test_battery_state_has_an_idle_band(watts: int, state: str) -> None:
    power = EnvoyEnchargePower(apparent_power_mva=0, real_power_mw=watts * 1000, soc=50)
    assert values(encharge_site(encharge_power={"1": power}))[BATTERY_STATE] == state


def test_inverters_with_inventory_flags_and_ac_batteries_apart() -> None:
    inverter = EnvoyInverter(
        serial_number="1220",
        last_report_date=1_700_000_000,
        last_report_watts=-1,
        max_report_watts=300,
        dc_voltage=40.5,
    )
    acb = EnvoyInverter(
        serial_number="1219", last_report_date=1, last_report_watts=5, max_report_watts=270
    )
    flags = ["envoy.cond_flags.pcu_ctrl.dc-pwr-low", "envoy.cond_flags.obs_strs.failure"]
    device: dict[str, object] = {"serial_num": "1220", "part_num": "800-00630-r02"}
    device |= {"device_status": flags, "producing": False, "communicating": True}
    device |= {"img_pnum_running": "520-00082"}
    data = EnvoyData(
        inverters={"1220": inverter, "1219": acb},
        acb_inventory={"1219": EnvoyACB.from_api({"serial_num": "1219"}, acb)},
        raw={URL_INVENTORY: [{"type": "PCU", "devices": [device]}]},
    )
    snapshot = Snapshot(INFO, data)
    readings = catalog.values(snapshot)
    got = {path: reading.value for path, reading in readings.items()}
    assert got["inverter/1220/power"] == -1  # the publisher clamps at night, not the catalog
    assert got["inverter/1220/last_report"] == "2023-11-14T22:13:20+00:00"
    assert got["inverter/1220/dc_voltage"] == 40.5
    assert "inverter/1220/ac_voltage" not in got
    assert got["inverter/1220/status"] == "DC Power Too Low; Failure to report"
    assert (got["inverter/1220/problem"], got["inverter/1220/producing"]) == ("on", "off")
    device_of = readings["inverter/1220/power"].entity.device
    assert device_of is not None
    assert (device_of.model, device_of.sw_version) == ("800-00630-r02", "520-00082")
    assert not [path for path in got if path.startswith("inverter/1219/")]
    assert got["acb/1219/real_power"] == 5
    assert got["acb/1219/status"] == "Normal"


def test_enpower_collar_dry_contacts_and_generator() -> None:
    collar = EnvoyCollar.from_api(
        {
            **{k: ENPOWER_JSON[k] for k in ("admin_state", "admin_state_str", "communicating")},
            "img_load_date": 1,
            "img_pnum_running": "1.0",
            "installed": 1,
            "last_rpt_date": 1_700_000_000,
            "part_num": "865-00400",
            "serial_num": "C1",
            "temperature": 30,
            "mid_state": "close",
            "grid_state": "on_grid",
            "control_error": 0,
            "collar_state": "installed",
        }
    )
    relay: dict[str, object] = {"id": "NC1", "type": "LOAD", "grid_action": "apply"}
    relay |= {"micro_grid_action": "shed"}
    relay |= {"gen_action": "apply", "override": "true", "load_name": "Pool", "mode": "soc"}
    relay |= {"soc_low": 30.0, "soc_high": 70.0, "pv_serial_nb": []}
    config = EnvoyGeneratorConfig(
        max_cont_gen_amps=60.0,
        min_gen_loading_perc=5,
        max_gen_efficiency_perc=100,
        name_plate_rating_wat=22.0,
        start_method="auto",
        warm_up_mins=5,
        cool_down_mins=5,
        gen_type="Standby",
        model="G007042-3",
        manufacturer="Generac",
        last_updated_by="ITK",
        generator_id="3019990001",
        charge_from_generator=True,
    )
    data = EnvoyData(
        enpower=EnvoyEnpower.from_api(ENPOWER_JSON),
        collar=collar,
        dry_contact_status={"NC1": EnvoyDryContactStatus(id="NC1", status="closed")},
        dry_contact_settings={"NC1": EnvoyDryContactSettings.from_api(relay)},
        generator=EnvoyGenerator(
            admin_state="open",
            oper_state="closed",
            admin_mode=2,
            schedule=1,
            start_soc=30,
            stop_soc=70,
            exc_on=0,
            present=True,
            type=1,
        ),
        generator_config=config,
        generator_mode=EnvoyGeneratorMode(gen_cmd="auto", last_updated_by="ITK"),
    )
    readings = catalog.values(Snapshot(INFO, data))
    got = {path: reading.value for path, reading in readings.items()}
    assert got["grid_status"] == "off-grid"  # the Enpower's relay wins over the collar
    assert got["enpower/482326107450/grid_relay"] == "open"
    assert got["enpower/482326107450/temperature"] == 28.3  # 83 °F
    assert got["collar/C1/grid_state"] == "on_grid"
    assert got["dry_contact/NC1/status"] == "closed"
    assert (got["dry_contact/NC1/override"], got["dry_contact/NC1/load_name"]) == ("on", "Pool")
    assert got["generator/3019990001/relay"] == "closed"
    assert got["generator/3019990001/mode"] == "auto"
    assert got["generator/3019990001/present"] == "on"
    generator = readings["generator/3019990001/relay"].entity.device
    assert generator is not None
    assert generator.model == "Generac G007042-3"
    contact = readings["dry_contact/NC1/status"].entity.device
    assert contact is not None
    assert contact.name == "Dry contact NC1 (Pool)"
    data.enpower = None
    assert values(data)["grid_status"] == "on-grid"  # the collar, when there is no Enpower


def test_status_flags_in_plain_english() -> None:
    assert describe_flag("envoy.cond_flags.pcu_chan.acvoltageoosp2") == (
        "AC Voltage Out Of Range - Phase 2"
    )
    assert describe_flag("envoy.cond_flags.acb_ctrl.cibcanerror") == "CIB CAN Error"
    assert describe_flag("envoy.cond_flags.rgm_chan.check_meter") == "Meter Error"
    assert describe_flag("envoy.cond_flags.new.thing") == "envoy.cond_flags.new.thing"
    assert status_text(["envoy.global.ok"]) == "Normal"
    assert status_text([]) == "Normal"
    assert status_text("not a list") is None
    sleeping = ["envoy.cond_flags.obs_strs.sleeping"]
    assert (status_text(sleeping), has_problem(sleeping)) == ("Sleeping", False)
    assert has_problem(["envoy.global.ok", "envoy.cond_flags.pcu_ctrl.bricked"]) is True


def test_the_topic_reference_lists_every_metric() -> None:
    reference = topic_reference()
    for place, metric in metrics_by_place():
        key = re.sub(r"_l[123]$", "_l<n>", metric.key)
        prefix = "" if place == "gateway" else f"{place}/"
        assert re.search(rf"`{re.escape(prefix)}(<[^>]+>/)?{re.escape(key)}`", reference), key
    assert "| `production_energy_lifetime` | Wh | sensor · energy · total_increasing |" in reference
    assert reference.count("`production_power_l<n>`") == 1


def test_timestamps_are_iso_utc() -> None:
    stamp = values(encharge_site())["battery/492320000140/last_report"]
    assert datetime.fromisoformat(str(stamp)) == datetime.fromtimestamp(1722966950, UTC)
