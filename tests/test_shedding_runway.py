"""backup_runway: energy above the reserve over the house load, from real captures; its edges."""

from __future__ import annotations

import json
from dataclasses import replace

from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtType

from envoy2mqtt import catalog
from envoy2mqtt.catalog.derived import RUNWAY_CAP_MIN, backup_runway, house_load_watts
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import Snapshot, Value
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.summary import MAX_PACKET, packet_size
from envoy2mqtt.mqtt.topics import Topics
from tests.links import RecordingLink
from tests.test_catalog_inputs import snapshots

BATTERY_SITE = "8.2.4286_with_3cts_and_battery_split"


def site() -> Snapshot:
    return snapshots()[BATTERY_SITE]


def with_house_load(data: EnvoyData, watts: int) -> EnvoyData:
    """The data with consumption set so that the house load is `watts`."""
    battery = (house_load_watts(data) or 0) - data.system_consumption.watts_now  # type: ignore[union-attr]
    consumption = replace(data.system_consumption, watts_now=watts - battery)  # type: ignore[type-var]
    return replace(data, system_consumption=consumption)


def value(snapshot: Snapshot, path: str) -> Value | None:
    reading = catalog.values(snapshot).get(path)
    return reading.value if reading is not None else None


def test_runway_is_the_energy_above_the_reserve_over_the_house_load() -> None:
    snap = site()
    # the capture: 11,600 Wh stored of 25,000, a 20 % reserve in the storage settings (the
    # gateway's own adjusted reserve says 100 % in backup mode), house load 8885 - 7084 W
    assert value(snap, "battery_available_energy") == 11_600
    assert value(snap, "battery_max_energy") == 25_000
    assert value(snap, "tariff_reserve_soc") == 20
    assert value(snap, "house_load_power") == 1801
    assert value(snap, "backup_runway") == (11_600 - 25_000 * 20 // 100) * 60 // 1801 == 219
    metric = catalog.values(snap)["backup_runway"].entity.metric
    assert (metric.unit, metric.device_class, metric.summary, metric.in_context) == (
        "min",
        "duration",
        "run",
        True,
    )


def test_a_house_load_of_about_nothing_gives_the_cap_not_a_huge_number() -> None:
    data = site().data
    for watts in (0, -40, 1):
        assert backup_runway(with_house_load(data, watts)) == RUNWAY_CAP_MIN
    assert backup_runway(with_house_load(data, 100_000)) == 3  # 6600 Wh at 100 kW


def test_at_or_below_the_reserve_there_is_no_runway() -> None:
    data = site().data
    enc = data.encharge_aggregate
    assert enc is not None
    for stored in (5000, 100):
        low = replace(data, encharge_aggregate=replace(enc, available_energy=stored))
        assert backup_runway(replace(low, battery_aggregate=None)) == 0


def test_without_storage_settings_the_gateways_reserve_counts() -> None:
    data = replace(site().data, tariff=None)  # adjusted reserve: 100 % (backup mode)
    assert backup_runway(data) == 0


def test_sites_without_backup_capacity_have_no_runway() -> None:
    for name, snap in snapshots().items():
        has_batteries = value(snap, "battery_max_energy") is not None
        assert (value(snap, "backup_runway") is not None) == has_batteries, name


def test_the_summary_with_runway_still_fits_a_pubsubclient_packet_at_extremes() -> None:
    snap = site()
    data = snap.data
    huge = 999_999_999
    meters = dict(data.ctmeters)
    for ct, watts in ((CtType.NET_CONSUMPTION, -huge), (CtType.STORAGE, -huge)):
        meter = meters[ct]
        assert meter is not None
        meters[ct] = replace(meter, active_power=watts)
    extreme = replace(
        data,
        ctmeters=meters,
        system_production=replace(data.system_production, watts_now=huge),  # type: ignore[type-var]
        system_consumption=replace(data.system_consumption, watts_now=huge),  # type: ignore[type-var]
    )
    enpower = extreme.enpower
    assert enpower is not None
    extreme = replace(extreme, enpower=replace(enpower, mains_oper_state="open"))
    link = RecordingLink()
    GatewayPublisher(
        link, Topics(), snap.gateway, clock=Clock(monotonic=lambda: 0.0)
    ).publish_snapshot(Snapshot(snap.gateway, extreme, snap.taken_at, snap.auth, snap.derived))
    topic = f"envoy2mqtt/{snap.gateway.serial}/summary"
    payload = link.retained()[topic].decode()
    body = json.loads(payload)
    assert body["run"] == RUNWAY_CAP_MIN  # a house load of 0 W: the cap
    assert body["grid"] == "off-grid"
    assert packet_size(topic, payload) < MAX_PACKET
