"""Gateway garbage handled where it is read: devices without a serial, impossible timestamps.

Neither may reach the generic guards (`metric.safe_read`, the publisher keeping a failed
source's last good values): a device without a serial number is skipped and its siblings
publish; an epoch that is no moment is no value.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from pyenphase.models.acb import EnvoyACB
from pyenphase.models.collar import EnvoyCollar
from pyenphase.models.dry_contacts import EnvoyDryContactStatus
from pyenphase.models.encharge import EnvoyEncharge, EnvoyEnchargePower
from pyenphase.models.enpower import EnvoyEnpower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.inverter import EnvoyInverter

from envoy2mqtt import catalog
from envoy2mqtt.catalog.acb import ACB_UNITS
from envoy2mqtt.catalog.base import iso_time
from envoy2mqtt.catalog.encharge import BATTERIES
from envoy2mqtt.catalog.ensemble import ENPOWERS
from envoy2mqtt.catalog.inverters import INVERTERS
from envoy2mqtt.catalog.metric import Device, Family, Metric, by_id, device_id
from envoy2mqtt.catalog.relays import DRY_CONTACTS
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot, Value
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.topics import Topics
from tests.links import RecordingLink
from tests.test_catalog import ENCHARGE_JSON, ENPOWER_JSON

T = TypeVar("T")
INFO = GatewayInfo(serial="122238082763", firmware="8.2.4286", part_number="800-00654-r08")
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
GOOD = "482100000001"
BAD_TIMES: tuple[object, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -1,
    0,
    1e20,
    10**400,  # too large even for a float
    253_402_300_800,  # 10000-01-01: past what datetime can hold
    "nan",
    "-1",
    "1e20",
    "soon",
    True,
    None,
)
WARNING = "cannot read part of the gateway's data"


def loose(mapping: dict[Any, T]) -> dict[str, T]:
    """Data keyed the way a gateway should not: by None, by blanks (pyenphase passes them)."""
    return mapping


def inverter(serial: Any, last_report: Any = 1_700_000_000) -> EnvoyInverter:
    return EnvoyInverter(
        serial_number=serial,
        last_report_date=last_report,
        last_report_watts=120,
        max_report_watts=300,
    )


def values(data: EnvoyData) -> dict[str, Value]:
    return {path: reading.value for path, reading in catalog.values(Snapshot(INFO, data)).items()}


def published(data: EnvoyData, caplog: pytest.LogCaptureFixture) -> dict[str, bytes]:
    """Retained states the publisher sends for `data`, with no reader having failed."""
    link = RecordingLink()
    publisher = GatewayPublisher(link, Topics(), INFO, clock=Clock(monotonic=lambda: 0.0))
    with caplog.at_level(logging.WARNING):
        publisher.publish_snapshot(Snapshot(INFO, data, T0))
    failed = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert failed == []  # neither the publisher's guard nor safe_read's was needed
    assert not [r for r in caplog.records if WARNING in r.getMessage()]
    prefix = f"envoy2mqtt/{INFO.serial}/"
    return {
        topic.removeprefix(prefix): payload
        for topic, payload in link.retained().items()
        if topic.startswith(prefix)
    }


# -- device ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n", False])
def test_a_missing_or_blank_serial_is_no_id(raw: object) -> None:
    assert device_id(raw) is None


def test_ids_are_text() -> None:
    assert device_id(" 1219 ") == "1219"
    assert device_id(1219) == "1219"
    garbage: dict[Any, str] = {None: "none", "": "empty", 7: "seven", "b": "b", " b ": "dup"}
    assert by_id(garbage) == {"7": "seven", "b": "b"}
    assert by_id(None) == {}


def test_a_family_skips_a_member_without_id_and_publishes_the_others() -> None:
    family: Family[int] = Family(
        kind="thing",
        members=lambda _snap: {None: 1, GOOD: 2, " ": 3},  # type: ignore[dict-item]
        describe=lambda serial, _n, _snap: Device(kind="thing", id=serial, name=serial),
        metrics=(Metric(key="n", name="N", read=lambda n: n),),
    )
    got = {r.entity.path: r.value for r in family.readings(Snapshot(INFO, EnvoyData()))}
    assert got == {f"thing/{GOOD}/n": 2}


def test_inverters_with_a_null_serial_publish_the_good_one() -> None:
    data = EnvoyData(
        inverters=loose({None: inverter(None), GOOD: inverter(GOOD), "": inverter("")})
    )
    readings = list(INVERTERS.readings(Snapshot(INFO, data)))
    assert {r.entity.path.split("/")[1] for r in readings} == {GOOD}
    assert values(data)[f"inverter/{GOOD}/power"] == 120


def test_encharge_inventory_with_a_none_key() -> None:
    nameless = EnvoyEncharge.from_api(ENCHARGE_JSON | {"serial_num": None})
    good = EnvoyEncharge.from_api(ENCHARGE_JSON)
    power = EnvoyEnchargePower(apparent_power_mva=0, real_power_mw=-2000, soc=55)
    data = EnvoyData(
        encharge_inventory=loose({None: nameless, good.serial_number: good}),
        encharge_power=loose({None: power, "": power, "492320000141": power}),
    )
    got = {r.entity.path: r.value for r in BATTERIES.readings(Snapshot(INFO, data))}
    serials = {path.split("/")[1] for path in got}
    assert serials == {"492320000140", "492320000141"}
    assert got["battery/492320000140/last_report"] == "2024-08-06T17:55:50+00:00"
    assert got["battery/492320000141/soc"] == 55


def test_other_families_skip_a_member_without_serial() -> None:
    acb = inverter("1219", last_report=1)
    data = EnvoyData(
        acb_inventory=loose(
            {
                None: EnvoyACB.from_api({"serial_num": None}, acb),
                "1219": EnvoyACB.from_api({"serial_num": "1219"}, acb),
            }
        ),
        enpower=EnvoyEnpower.from_api(ENPOWER_JSON | {"serial_num": None}),
        collar=EnvoyCollar.from_api(
            {
                **{k: ENPOWER_JSON[k] for k in ("admin_state", "admin_state_str")},
                "communicating": True,
                "img_load_date": 1,
                "img_pnum_running": "1.0",
                "installed": 1,
                "last_rpt_date": 1_700_000_000,
                "part_num": "865-00400",
                "serial_num": "  ",
                "temperature": 30,
                "mid_state": "close",
                "grid_state": "on_grid",
                "control_error": 0,
                "collar_state": "installed",
            }
        ),
        dry_contact_status=loose(
            {
                None: EnvoyDryContactStatus(id=None, status="open"),  # type: ignore[arg-type]
                "NC1": EnvoyDryContactStatus(id="NC1", status="closed"),
            }
        ),
    )
    snapshot = Snapshot(INFO, data)
    assert {r.entity.path.split("/")[1] for r in ACB_UNITS.readings(snapshot)} == {"1219"}
    assert list(ENPOWERS.readings(snapshot)) == []
    assert {r.entity.path for r in DRY_CONTACTS.readings(snapshot)} == {"dry_contact/NC1/status"}
    got = values(data)
    assert not [path for path in got if path.startswith(("collar/", "enpower/"))]
    assert got["grid_status"] == "off-grid"  # the Enpower's relay still counts for the gateway


def test_the_publisher_publishes_the_good_devices_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nameless = EnvoyEncharge.from_api(ENCHARGE_JSON | {"serial_num": None})
    power = EnvoyEnchargePower(apparent_power_mva=0, real_power_mw=-2000, soc=55)
    data = EnvoyData(
        inverters=loose({None: inverter(None), GOOD: inverter(GOOD)}),
        encharge_inventory=loose({None: nameless}),
        encharge_power=loose({None: power, "492320000141": power}),
        enpower=EnvoyEnpower.from_api(ENPOWER_JSON | {"serial_num": ""}),
    )
    states = published(data, caplog)
    assert states[f"inverter/{GOOD}/power"] == b"120"
    assert states["battery/492320000141/soc"] == b"55"
    assert not [topic for topic in states if "None" in topic or "unknown" in topic]
    assert not [topic for topic in states if topic.startswith("enpower/")]


# -- timestamps ---------------------------------------------------------------------------


def test_good_epochs_read_as_iso_8601() -> None:
    assert iso_time(1_700_000_000) == "2023-11-14T22:13:20+00:00"
    assert iso_time("1700000000") == "2023-11-14T22:13:20+00:00"
    assert iso_time(253_402_300_799) == "9999-12-31T23:59:59+00:00"


@pytest.mark.parametrize("epoch", BAD_TIMES, ids=lambda epoch: repr(epoch)[:24])
def test_an_epoch_that_is_no_moment_is_no_value(epoch: object) -> None:
    assert iso_time(epoch) is None


@pytest.mark.parametrize("epoch", [float("nan"), float("inf"), -1, 1e20], ids=repr)
def test_bad_last_report_dates_give_no_value_anywhere(
    epoch: float, caplog: pytest.LogCaptureFixture
) -> None:
    unit = inverter("1219", last_report=epoch)
    acb = EnvoyACB.from_api({"serial_num": "1219"}, unit)
    data = EnvoyData(
        inverters={GOOD: inverter(GOOD, last_report=epoch)},
        acb_inventory={"1219": acb},
        encharge_inventory={
            "492320000140": EnvoyEncharge.from_api(ENCHARGE_JSON | {"last_rpt_date": epoch})
        },
        enpower=EnvoyEnpower.from_api(ENPOWER_JSON | {"last_rpt_date": epoch}),
    )
    snapshot = Snapshot(INFO, data)
    families: tuple[tuple[Family[Any], str], ...] = (
        (INVERTERS, GOOD),
        (ACB_UNITS, "1219"),
        (BATTERIES, "492320000140"),
        (ENPOWERS, "482326107450"),
    )
    for family, member in families:
        metric = next(m for m in family.metrics if m.key == "last_report")
        assert (
            metric.read(family.members(snapshot)[member]) is None
        )  # the reader itself, not safe_read
    states = published(data, caplog)
    assert not [topic for topic in states if topic.endswith("/last_report")]
    assert states[f"inverter/{GOOD}/power"] == b"120"
    assert states["enpower/482326107450/grid_relay"] == b"open"
