"""Lane readings laid over the full reading: newest wins, untouched parts keep their identity."""

from __future__ import annotations

import dataclasses

from pyenphase.models.acb import EnvoyBatteryAggregate
from pyenphase.models.encharge import EnvoyEnchargeAggregate, EnvoyEnchargePower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtType

from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.overlay import Battery, LaneReadings, merged
from envoy2mqtt.sim import SimulatedGateway
from tests.test_derived import meter

ACB_SITE = "8.3.5169_ACB_inventory"  # AC Batteries; its secctrl has the combined totals


def aggregate(soc: int) -> EnvoyEnchargeAggregate:
    return EnvoyEnchargeAggregate(
        available_energy=1000,
        backup_reserve=0,
        state_of_charge=soc,
        reserve_state_of_charge=0,
        configured_reserve_state_of_charge=0,
        max_available_capacity=10000,
    )


def test_merged_keeps_the_mapping_when_nothing_is_new() -> None:
    a, b = meter(1), meter(2)
    base = {"x": a, "y": b}
    assert merged(base, {"x": a}) is base
    assert merged(base, {}) is base
    fresh = merged(base, {"x": meter(1)})  # equal but a new reading: a new mapping
    assert fresh is not base
    assert fresh == {"x": meter(1), "y": b}
    assert base["x"] is a  # never changed in place


def test_newest_readings_win_and_older_ones_are_forgotten() -> None:
    data = EnvoyData(ctmeters={CtType.NET_CONSUMPTION: meter(100), CtType.PRODUCTION: meter(5)})
    lanes = LaneReadings(meters=(10.0, ({CtType.NET_CONSUMPTION: meter(-300)}, {})))
    laid = lanes.over(data)
    assert laid.ctmeters[CtType.NET_CONSUMPTION] == meter(-300)
    assert laid.ctmeters[CtType.PRODUCTION] is data.ctmeters[CtType.PRODUCTION]
    assert laid.inverters is data.inverters
    assert lanes.over(laid) is laid  # the same readings again: nothing new
    lanes.forget_before(9.0)  # a full reading begun before the lane reading: kept
    assert lanes.meters is not None
    lanes.forget_before(10.0)  # begun after it: the full reading is newer
    assert lanes.meters is None
    assert lanes.over(data) is data


def test_battery_reading_refreshes_the_combined_aggregate_where_given() -> None:
    combined = EnvoyBatteryAggregate(
        available_energy=500, max_available_capacity=5000, state_of_charge=40
    )
    old = dataclasses.replace(combined, state_of_charge=90)
    unit = EnvoyEnchargePower(apparent_power_mva=0, real_power_mw=-1000, soc=41)
    data = EnvoyData(encharge_aggregate=aggregate(90), battery_aggregate=old)
    lanes = LaneReadings(battery=(1.0, Battery(aggregate(41), {"1": unit}, combined)))
    laid = lanes.over(data)
    assert laid.battery_aggregate is combined
    assert laid.encharge_aggregate == aggregate(41)
    assert laid.encharge_power == {"1": unit}
    lanes.battery = (2.0, Battery(aggregate(42), {"1": unit}))  # no combined totals read
    assert lanes.over(laid).battery_aggregate is combined  # the last known ones stay


async def test_battery_lane_reads_combined_totals_from_secctrl() -> None:
    """On sites with AC Batteries the 5 s lane refreshes the totals over both kinds."""
    async with (
        SimulatedGateway(capture=ACB_SITE) as gateway,
        GatewayClient(gateway.host, tokens=FixedToken(gateway.make_token())) as client,
    ):
        await client.connect()
        plain = await client.read_battery()
        assert plain.combined is None
        gateway.set_battery(soc=37)
        battery = await client.read_battery(combined=True)
    assert battery.combined is not None
    assert battery.combined.state_of_charge == 37
    assert (
        battery.combined.max_available_capacity
        == gateway.document("/ivp/ensemble/secctrl")["Max_energy"]
    )
