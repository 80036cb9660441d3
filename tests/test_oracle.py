"""Every real capture, served by the simulated gateway, checked against pyenphase itself.

pyenphase (run here on its own, with its full `update()`) is the oracle. The bridge reads
the same gateway through its own edge (`GatewayClient`, lanes and all), the catalog turns
that into values, and every value must equal what the table below derives from pyenphase's
data by attribute path. The table is written out here on purpose, independently of the
catalog's readers. Values that differ from pyenphase's on purpose are marked `ON PURPOSE`
and checked again, one by one, in `check_intentional_differences`.

Run this file as a script to print how many entities each capture yields.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import pytest
from pyenphase import Envoy, EnvoyTokenAuth
from pyenphase.const import URL_INVENTORY
from pyenphase.exceptions import EnvoyProbeFailed
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt import catalog
from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.catalog.metric import Reading
from envoy2mqtt.core.snapshot import Snapshot, Value
from envoy2mqtt.gateway.client import GatewayClient, TokenSource
from envoy2mqtt.gateway.errors import GatewayUnavailable
from envoy2mqtt.gateway.overlay import merge_inverters
from envoy2mqtt.sim import SimulatedGateway, list_captures
from tests.harness import pyenphase_on

Expected = dict[str, Value | None]

UNREADABLE = "3.7.0"  # only the HTML /production page: pyenphase cannot read it at all
# ON PURPOSE: state codes are published in English, the code beside them as `status_code`
STATE_TEXT = {
    "ENCHG_STATE_READY": "Ready",
    "ENCHG_STATE_IDLE": "Idle",
    "ENCHG_STATE_CHARGING": "Charging",
    "ENCHG_STATE_DISCHARGING": "Discharging",
    "ENPWR_STATE_OPER_CLOSED": "Closed",
    "ENPWR_STATE_OPER_OPEN": "Open",
    "ENPWR_STATE_OPER_NO_GRID": "No grid",
    "ENS_DEVICE_STATE_READY": "Ready",
}
IDLE_W = 50  # the catalog's idle band for battery_state (documented in the topic reference)
FLAG_TEXT = {  # the gateway web UI's own words for the flags these captures carry (seed 003)
    "envoy.cond_flags.pcu_ctrl.dc-pwr-low": "DC Power Too Low",
    "envoy.cond_flags.obs_strs.failure": "Failure to report",
    "envoy.cond_flags.pcu_chan.dcvoltagetoolow": "DC Voltage Too Low",
}


@pytest.fixture(autouse=True)
def _never_contact_enphase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EnvoyTokenAuth, "JSON_LOGIN_URL", "http://127.0.0.1:9/login.json?")
    monkeypatch.setattr(EnvoyTokenAuth, "TOKEN_URL", "http://127.0.0.1:9/tokens")


async def bridge_snapshot(gateway: SimulatedGateway) -> Snapshot:
    """What the bridge reads: its own edge, the normal lane and the inverter lane merged."""
    tokens: TokenSource | None = FixedToken(gateway.make_token()) if gateway.uses_tls else None
    username = None if gateway.uses_tls else "envoy"
    async with GatewayClient(gateway.host, tokens=tokens, username=username) as client:
        info = await client.connect()
        data = await client.read_normal()
        inverters = await client.read_inverters()
    return Snapshot(info, merge_inverters(data, inverters))


def on_off(flag: object) -> str | None:
    return None if flag is None else ("on" if flag else "off")


def iso(epoch: object) -> str | None:
    """ON PURPOSE: timestamps are ISO 8601 (Home Assistant's timestamp class), not epochs."""
    return datetime.fromtimestamp(int(str(epoch)), UTC).isoformat() if epoch else None


def has_batteries(data: EnvoyData) -> bool:
    return bool(
        data.encharge_inventory
        or data.encharge_power
        or data.acb_inventory
        or (data.acb_power and data.acb_power.batteries)
        or data.ctmeters.get("storage")
    )


def battery_power(data: EnvoyData) -> int | None:
    """ON PURPOSE: the storage CT where fitted (fresher), else the batteries' own sum."""
    if (storage := data.ctmeters.get("storage")) is not None:
        return storage.active_power
    parts = []
    if data.encharge_power:
        parts.append(round(sum(p.real_power_mw for p in data.encharge_power.values()) / 1000))
    if data.acb_power is not None:
        parts.append(data.acb_power.power)
    return sum(parts) if parts else None


def system(envoy: Envoy, data: EnvoyData) -> Expected:
    """Whole-system values, phases and gateway diagnostics."""
    out: Expected = {}
    for prefix, total, phases in (
        ("production", data.system_production, data.system_production_phases),
        ("consumption", data.system_consumption, data.system_consumption_phases),
    ):
        for suffix, model in (
            ("", total),
            *((f"_{p.lower()}", m) for p, m in (phases or {}).items()),
        ):
            if model is None:
                continue
            out[f"{prefix}_power{suffix}"] = model.watts_now
            out[f"{prefix}_energy_today{suffix}"] = model.watt_hours_today
            out[f"{prefix}_energy_last_7_days{suffix}"] = model.watt_hours_last_7_days
            out[f"{prefix}_energy_lifetime{suffix}"] = model.watt_hours_lifetime
    if (net := data.system_net_consumption) is not None:
        out["net_power"] = net.watts_now
        out["net_energy_lifetime"] = net.watt_hours_lifetime
    for phase, model in (data.system_net_consumption_phases or {}).items():
        if model is not None:
            out[f"net_power_{phase.lower()}"] = model.watts_now
            out[f"net_energy_lifetime_{phase.lower()}"] = model.watt_hours_lifetime
    if (net_ct := data.ctmeters.get("net-consumption")) is not None:
        out["net_power"] = net_ct.active_power  # ON PURPOSE: the CT, see below
        out["grid_import_energy"] = net_ct.energy_delivered
        out["grid_export_energy"] = net_ct.energy_received
    if isinstance(grid := out.get("net_power"), int):
        out["grid_import_power"] = max(grid, 0)
        out["grid_export_power"] = max(-grid, 0)
    if data.enpower is not None:
        out["grid_status"] = {"closed": "on-grid", "open": "off-grid"}.get(
            data.enpower.mains_oper_state
        )
    elif data.collar is not None:
        out["grid_status"] = {"on_grid": "on-grid", "off_grid": "off-grid"}.get(
            data.collar.grid_state
        )
    out |= {
        "firmware": str(envoy.firmware),
        "serial": envoy.serial_number,
        "part_number": envoy.part_number,
        "model": envoy.envoy_model,
        "metered": on_off(envoy.is_metered),
        "phase_count": envoy.phase_count,
        "phase_mode": str(envoy.phase_mode) if envoy.phase_mode else None,
        "ct_meters": ", ".join(envoy.ct_meter_list) or "none",
    }
    return out


def batteries(data: EnvoyData) -> Expected:
    """The battery headline; ON PURPOSE absent where the site has no battery at all."""
    if not has_batteries(data):
        return {}
    agg, enc, acb = data.battery_aggregate, data.encharge_aggregate, data.acb_power
    power = battery_power(data)
    out: Expected = {
        "battery_power": power,
        "battery_state": None
        if power is None
        else "charging"
        if power <= -IDLE_W
        else "discharging"
        if power >= IDLE_W
        else "idle",
    }
    if agg is not None:
        out |= {
            "battery_soc": agg.state_of_charge,
            "battery_available_energy": agg.available_energy,
            "battery_max_energy": agg.max_available_capacity,
        }
    elif enc is not None:
        out |= {
            "battery_soc": enc.state_of_charge,
            "battery_available_energy": enc.available_energy,
            "battery_max_energy": enc.max_available_capacity,
        }
    elif acb is not None:
        out |= {"battery_soc": acb.state_of_charge, "battery_available_energy": acb.charge_wh}
    if enc is not None:
        out |= {
            "backup_target_soc": enc.reserve_state_of_charge,
            "reserve_soc": enc.configured_reserve_state_of_charge,
            "battery_reserve_energy": enc.backup_reserve,
        }
    if (storage := data.ctmeters.get("storage")) is not None:
        out["battery_charged_energy"] = storage.energy_received
        out["battery_discharged_energy"] = storage.energy_delivered
    if data.system_consumption is not None and power is not None:
        out["house_load_power"] = data.system_consumption.watts_now + power
    settings = data.tariff.storage_settings if data.tariff else None
    if settings is not None:
        out |= {
            "battery_mode": settings.mode.value if settings.mode else None,
            "tariff_reserve_soc": settings.reserved_soc,
            "very_low_soc": settings.very_low_soc,
            "storage_charge_from_grid": on_off(settings.charge_from_grid),
        }
    if acb is not None:
        out |= {
            "acb_power": acb.power,
            "acb_soc": acb.state_of_charge,
            "acb_state": acb.state,
            "acb_available_energy": acb.charge_wh,
            "acb_count": acb.batteries,
        }
    if (runway := backup_runway(data, out.get("house_load_power"))) is not None:
        out["backup_runway"] = runway
    return out


def backup_runway(data: EnvoyData, load: object) -> int | None:
    """Minutes of battery above the reserve at the house load, capped at a week (README)."""
    total = data.battery_aggregate or data.encharge_aggregate
    settings = data.tariff.storage_settings if data.tariff else None
    reserve = settings.reserved_soc if settings and settings.reserved_soc is not None else None
    if reserve is None and data.encharge_aggregate is not None:
        reserve = data.encharge_aggregate.reserve_state_of_charge
    if total is None or not isinstance(load, int | float) or reserve is None:
        return None
    above = total.available_energy - total.max_available_capacity * min(max(reserve, 0), 100) / 100
    if total.max_available_capacity <= 0 or above <= 0:
        return 0
    week = 7 * 24 * 60
    return week if load * week <= above * 60 else math.floor(above * 60 / load)


def meters(data: EnvoyData) -> Expected:
    """Every CT, in total and per phase."""
    out: Expected = {}
    for kind in dict.fromkeys([*data.ctmeters, *data.ctmeters_phases]):
        channels = {"": data.ctmeters.get(kind)}
        channels |= {f"_{p.lower()}": m for p, m in data.ctmeters_phases.get(kind, {}).items()}
        for suffix, meter in channels.items():
            if meter is None:
                continue
            base = f"ct/{kind}/"
            out |= {
                f"{base}active_power{suffix}": meter.active_power,
                f"{base}energy_delivered{suffix}": meter.energy_delivered,
                f"{base}energy_received{suffix}": meter.energy_received,
                f"{base}voltage{suffix}": meter.voltage,
                f"{base}current{suffix}": meter.current,
                f"{base}frequency{suffix}": meter.frequency,
                f"{base}power_factor{suffix}": meter.power_factor,
            }
            if not suffix:
                out[f"{base}metering_status"] = meter.metering_status
                flags = meter.status_flags
                out[f"{base}status_flags"] = None if flags is None else ", ".join(flags) or "none"
    return out


def inverters(data: EnvoyData) -> Expected:
    """Microinverters, with the inventory's flags where pyenphase read /inventory.json."""
    entries = {
        device["serial_num"]: device
        for group in data.raw.get(URL_INVENTORY) or []
        if group["type"] == "PCU"
        for device in group["devices"]
    }
    out: Expected = {}
    for serial, inv in data.inverters.items():
        if serial in (data.acb_inventory or {}):
            continue  # ON PURPOSE: an AC Battery is an `acb/` device, not an inverter
        base = f"inverter/{serial}/"
        out |= {
            f"{base}power": inv.last_report_watts,
            f"{base}max_power": inv.max_report_watts,
            f"{base}last_report": iso(inv.last_report_date),
            f"{base}dc_voltage": inv.dc_voltage,
            f"{base}dc_current": inv.dc_current,
            f"{base}ac_voltage": inv.ac_voltage,
            f"{base}ac_current": inv.ac_current,
            f"{base}ac_frequency": inv.ac_frequency,
            f"{base}temperature": inv.temperature,
            f"{base}lifetime_energy": inv.lifetime_energy,
            f"{base}energy_today": inv.energy_today,
        }
        if (entry := entries.get(serial)) is not None:
            bad = [flag for flag in entry["device_status"] if flag != "envoy.global.ok"]
            out |= {
                f"{base}producing": on_off(entry["producing"]),
                f"{base}communicating": on_off(entry["communicating"]),
                f"{base}status": "; ".join(dict.fromkeys(FLAG_TEXT[f] for f in bad)) or "Normal",
                f"{base}problem": on_off(bad),
            }
    return out


def storage_units(data: EnvoyData) -> Expected:
    """Each IQ Battery and each AC Battery."""
    out: Expected = {}
    inventory, power = data.encharge_inventory or {}, data.encharge_power or {}
    for serial in {*inventory, *power}:
        base, inv, pw = f"battery/{serial}/", inventory.get(serial), power.get(serial)
        if pw is not None:
            out |= {
                f"{base}soc": pw.soc,
                f"{base}real_power": pw.real_power_mw / 1000,  # ON PURPOSE: mW -> W
                f"{base}apparent_power": pw.apparent_power_mva / 1000,  # ON PURPOSE: mVA -> VA
            }
        if inv is not None:
            out |= {
                f"{base}temperature": inv.temperature,
                f"{base}max_cell_temperature": inv.max_cell_temp,
                f"{base}capacity": inv.encharge_capacity,
                f"{base}status": STATE_TEXT[inv.admin_state_str],
                f"{base}status_code": inv.admin_state_str,
                f"{base}communicating": on_off(inv.communicating),
                f"{base}operating": on_off(inv.operating),
                f"{base}dc_switch": on_off(not inv.dc_switch_off),
                f"{base}led_status": inv.led_status,
                f"{base}signal_sub_ghz": inv.comm_level_sub_ghz,
                f"{base}signal_2_4_ghz": inv.comm_level_2_4_ghz,
                f"{base}last_report": iso(inv.last_report_date),
            }
            if pw is None:
                out[f"{base}soc"] = inv.percent_full
    for serial, acb in (data.acb_inventory or {}).items():
        base = f"acb/{serial}/"
        bad = [flag for flag in acb.device_status if flag != "envoy.global.ok"]
        out |= {
            f"{base}soc": acb.percent_full,
            f"{base}real_power": acb.last_report_watts,
            f"{base}max_power": acb.max_report_watts,
            f"{base}charge_status": acb.charge_status.value,
            f"{base}sleep_state": acb.sleep_state.value,
            f"{base}sleep_enabled": on_off(acb.sleep_enabled),
            f"{base}sleep_min_soc": acb.sleep_min_soc,
            f"{base}sleep_max_soc": acb.sleep_max_soc,
            f"{base}max_cell_temperature": acb.max_cell_temp,
            f"{base}communicating": on_off(acb.communicating),
            f"{base}operating": on_off(acb.operating),
            f"{base}producing": on_off(acb.producing),
            f"{base}status": "; ".join(dict.fromkeys(FLAG_TEXT[f] for f in bad)) or "Normal",
            f"{base}problem": on_off(bad),
            f"{base}last_report": iso(acb.last_report_date),
        }
    return out


def ensemble(data: EnvoyData) -> Expected:
    """Enpower, collar, C6 combiner, dry contacts and generator."""
    out: Expected = {}
    if (enpower := data.enpower) is not None:
        base = f"enpower/{enpower.serial_number}/"
        out |= {
            f"{base}grid_relay": enpower.mains_oper_state,
            f"{base}grid_relay_commanded": enpower.mains_admin_state,
            f"{base}grid_mode": enpower.grid_mode,
            # ON PURPOSE: the Enpower reports °F; published in °C like everything else
            f"{base}temperature": round((enpower.temperature - 32) * 5 / 9, 1),
            f"{base}operating": on_off(enpower.operating),
            f"{base}signal_sub_ghz": enpower.comm_level_sub_ghz,
            f"{base}signal_2_4_ghz": enpower.comm_level_2_4_ghz,
            f"{base}status": STATE_TEXT[enpower.admin_state_str],
            f"{base}status_code": enpower.admin_state_str,
            f"{base}communicating": on_off(enpower.communicating),
            f"{base}last_report": iso(enpower.last_report_date),
        }
    if (collar := data.collar) is not None:
        base = f"collar/{collar.serial_number}/"
        out |= {
            f"{base}grid_state": collar.grid_state,
            f"{base}mid_state": collar.mid_state,
            f"{base}collar_state": collar.collar_state,
            f"{base}control_error": collar.control_error,
            f"{base}temperature": collar.temperature,
            f"{base}status": STATE_TEXT[collar.admin_state_str],
            f"{base}status_code": collar.admin_state_str,
            f"{base}communicating": on_off(collar.communicating),
            f"{base}last_report": iso(collar.last_report_date),
        }
    if (c6 := data.c6cc) is not None:
        base = f"c6cc/{c6.serial_number}/"
        out |= {
            f"{base}dmir_version": c6.dmir_version,
            f"{base}status": STATE_TEXT[c6.admin_state_str],
            f"{base}status_code": c6.admin_state_str,
            f"{base}communicating": on_off(c6.communicating),
            f"{base}last_report": iso(c6.last_report_date),
        }
    for relay in {*data.dry_contact_status, *data.dry_contact_settings}:
        base = f"dry_contact/{relay}/"
        if (status := data.dry_contact_status.get(relay)) is not None:
            out[f"{base}status"] = status.status
        if (s := data.dry_contact_settings.get(relay)) is not None:
            out |= {
                f"{base}mode": s.mode,
                f"{base}type": s.type,
                f"{base}load_name": s.load_name,
                f"{base}grid_action": s.grid_action,
                f"{base}micro_grid_action": s.micro_grid_action,
                f"{base}generator_action": s.generator_action,
                f"{base}soc_low": s.soc_low,
                f"{base}soc_high": s.soc_high,
                f"{base}override": on_off(s.override),
            }
    if (gen := data.generator) is not None:
        config = data.generator_config
        base = f"generator/{config.generator_id if config else 'generator'}/"
        out |= {
            f"{base}relay": gen.oper_state,
            f"{base}relay_commanded": gen.admin_state,
            f"{base}mode": data.generator_mode.gen_cmd if data.generator_mode else None,
            f"{base}start_soc": gen.start_soc,
            f"{base}stop_soc": gen.stop_soc,
            f"{base}exercising": on_off(gen.exc_on),
            f"{base}schedule": on_off(gen.schedule),
            f"{base}present": on_off(gen.present),
        }
        if config is not None:
            out |= {
                f"{base}charge_from_generator": on_off(config.charge_from_generator),
                f"{base}max_current": config.max_cont_gen_amps,
                f"{base}warm_up": config.warm_up_mins,
                f"{base}cool_down": config.cool_down_mins,
                f"{base}type": config.gen_type,
            }
    return out


def expected_values(envoy: Envoy, data: EnvoyData) -> dict[str, Value]:
    """Everything the catalog should publish for pyenphase's reading of a gateway."""
    table = system(envoy, data) | batteries(data) | meters(data)
    table |= inverters(data) | storage_units(data) | ensemble(data)
    out: dict[str, Value] = {}
    for path, value in table.items():
        assert not isinstance(value, bool), path  # words on the wire, never Python booleans
        if value is None or value == "":
            continue  # the gateway did not say: the topic is absent, never a made-up value
        out[path] = str(value) if isinstance(value, str) else value  # StrEnum -> str
    return out


def check_intentional_differences(
    data: EnvoyData, published: Mapping[str, Value], oracle_data: EnvoyData
) -> None:
    """The values that differ from pyenphase's own, each for a reason said here."""
    # net_power comes from the net-consumption CT (/ivp/meters/readings, which the fast lane
    # refreshes every few seconds), not from /production's net-consumption section: the
    # same meter read at another moment (the captures differ by up to ~75 W).
    net_ct = data.ctmeters.get("net-consumption")
    if net_ct is not None:
        assert oracle_data.system_net_consumption is not None
        assert published["net_power"] == net_ct.active_power
        net = net_ct.active_power
        assert (published["grid_import_power"], published["grid_export_power"]) == (
            max(net, 0),
            max(-net, 0),
        )
    # a site without any battery: pyenphase still reports an Encharge aggregate of zeros
    # (the ensemble inventory lists an empty ENCHARGE group); the bridge publishes nothing.
    if data.encharge_aggregate is not None and not has_batteries(data):
        assert data.encharge_aggregate.state_of_charge == 0
        assert not any(path.startswith(("battery_", "storage_")) for path in published)
    # pyenphase lists AC Batteries among the inverters (its v2 compatibility mode, where the
    # inverters come from /api/v1/production/inverters): they are published once, as `acb/`
    for serial in data.acb_inventory or {}:
        assert f"inverter/{serial}/power" not in published
        assert f"acb/{serial}/soc" in published
    # the Enpower's °F become °C
    if data.enpower is not None:
        celsius = published[f"enpower/{data.enpower.serial_number}/temperature"]
        assert celsius == round((data.enpower.temperature - 32) / 1.8, 1)
        assert celsius != data.enpower.temperature
    # epochs become ISO 8601 timestamps that mean the same instant
    for serial, inverter in data.inverters.items():
        if (stamp := published.get(f"inverter/{serial}/last_report")) is not None:
            moment = datetime.fromisoformat(str(stamp)).timestamp()
            assert moment == inverter.last_report_date
    # Encharge power arrives in mW, is published in W
    for serial, power in (data.encharge_power or {}).items():
        assert published[f"battery/{serial}/real_power"] == power.real_power_mw / 1000


def published_values(snapshot: Snapshot) -> dict[str, Value]:
    return {path: reading.value for path, reading in catalog.values(snapshot).items()}


async def read_capture(name: str) -> tuple[Snapshot, Envoy, EnvoyData]:
    """The bridge's snapshot and pyenphase's own reading of one capture."""
    async with (
        SimulatedGateway(capture=name, drift=False) as gateway,
        pyenphase_on(gateway) as envoy,
    ):
        oracle_data = await envoy.update()
        if URL_INVENTORY not in oracle_data.raw:
            # ON PURPOSE: pyenphase reads /inventory.json only on AC-battery sites; the bridge
            # reads it on every site for the inverters' status flags. Fetch it the same way.
            response = await envoy.request(URL_INVENTORY)
            if response.status == 200:
                oracle_data.raw[URL_INVENTORY] = orjson.loads(await response.read())
        snapshot = await bridge_snapshot(gateway)
    return snapshot, envoy, oracle_data


READABLE = [name for name in list_captures() if name != UNREADABLE]


@pytest.mark.parametrize("name", READABLE)
async def test_every_value_matches_pyenphase(name: str) -> None:
    snapshot, envoy, oracle_data = await read_capture(name)
    published = published_values(snapshot)
    assert published == expected_values(envoy, oracle_data)
    check_intentional_differences(snapshot.data, published, oracle_data)


async def test_a_capture_pyenphase_cannot_read_publishes_nothing() -> None:
    # Firmware 3.7 has only the HTML /production page: pyenphase gives up, and so does the
    # bridge's edge, with its own error rather than a made-up reading.
    async with SimulatedGateway(capture=UNREADABLE, drift=False) as gateway:
        with pytest.raises(EnvoyProbeFailed):
            async with pyenphase_on(gateway) as envoy:
                await envoy.probe()
        with pytest.raises(GatewayUnavailable):
            await bridge_snapshot(gateway)


async def test_inverter_flags_in_plain_english() -> None:
    snapshot, _, _ = await read_capture("8.3.5169_ACB_inventory")
    published = published_values(snapshot)
    assert published["inverter/122013000000/status"] == "DC Power Too Low; Failure to report"
    assert published["inverter/122013000000/problem"] == "on"
    assert published["inverter/122013000000/producing"] == "off"
    assert "inverter/122012200000/status" not in published  # not in that inventory


def entity_counts(readings: Mapping[str, Reading]) -> Counter[str]:
    """Entities per device kind ("gateway" for the gateway's own), and enabled ones."""
    counts: Counter[str] = Counter()
    for reading in readings.values():
        device = reading.entity.device
        counts[device.kind if device else "gateway"] += 1
        counts["enabled by default"] += reading.entity.metric.enabled
    counts["total"] = len(readings)
    return counts


async def _print_counts() -> None:
    for name in READABLE:
        snapshot, _, _ = await read_capture(name)
        counts = entity_counts(catalog.values(snapshot))
        detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()) if kind != "total")
        print(f"{name}: {counts['total']} entities ({detail})")


if __name__ == "__main__":
    sys.exit(asyncio.run(_print_counts()))
