"""The gateway adapter against the simulated gateway over real HTTPS.

Garbage from the gateway is `GatewayUnavailable`; a bug in our own code is not translated
into an offline gateway but propagates as itself. After a full read pyenphase holds the data
read, so its write methods (the controls to come) get past their "queried yet?" check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import cast

import pytest
from pyenphase.models.encharge import EnvoyEnchargeAggregate
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtMeterData

from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.gateway import adapter
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayError, GatewayUnavailable
from envoy2mqtt.gateway.gate import EndpointClass
from envoy2mqtt.gateway.translate import raised_by_parser, translated, translation
from envoy2mqtt.sim import Fault, SimulatedGateway

BATTERY_SITE = "8.2.4286_with_3cts_and_battery_split"  # relay, CTs, IQ Batteries, dry contacts
GARBAGE = [Fault.HTML, Fault.TRUNCATED_JSON, Fault.EMPTY]


@asynccontextmanager
async def connected(
    capture: str = BATTERY_SITE,
    timeout: float = 5.0,
    on_answer: Callable[[float, EndpointClass], None] | None = None,
) -> AsyncIterator[tuple[SimulatedGateway, GatewayClient]]:
    """A simulated gateway and a client connected to it."""
    async with SimulatedGateway(capture=capture) as gateway:
        tokens = FixedToken(gateway.make_token())
        async with GatewayClient(
            gateway.host, tokens=tokens, timeout=timeout, on_answer=on_answer
        ) as client:
            await client.connect()
            yield gateway, client


def lane_reads(client: GatewayClient) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every lane's read, by name."""
    return {
        "normal": client.read_normal,
        "inverters": client.read_inverters,
        "grid": client.read_grid,
        "meters": client.read_meters,
        "battery": client.read_battery,
    }


def serve(gateway: SimulatedGateway, name: str, document: object) -> None:
    """From now on the gateway answers `document` (valid JSON, any shape) for capture `name`."""
    gateway.state.documents[name] = document
    gateway.state.dirty.add(name)


# -- pyenphase can write after a full read -------------------------------------------------


async def test_a_normal_read_hands_the_data_to_pyenphase_so_its_writes_run() -> None:
    async with connected() as (gateway, client):
        envoy = client.envoy
        with pytest.raises(ValueError, match="before the Envoy was queried"):
            await envoy.update_dry_contact({"id": "NC1", "load_name": "pump"})
        data = await client.read_normal()
        assert envoy.data is data
        # past pyenphase's checks and on the wire, taken by the simulated gateway
        await envoy.update_dry_contact({"id": "NC1", "load_name": "pump"})
        await envoy.set_reserve_soc(30)
        taken = {w.path for w in gateway.write_log if w.status == 200}
        assert {"/ivp/ss/dry_contact_settings", "/admin/lib/tariff"} <= taken, taken
        await envoy.go_off_grid()
        assert not gateway.grid_on
        assert await client.read_grid() == "open"


async def test_pyenphase_data_carries_the_inverter_lane_as_its_update_would() -> None:
    async with connected("8.3.5169_ACB_inventory") as (_gateway, client):
        normal = await client.read_normal()
        inverters = await client.read_inverters()
        data = client.envoy.data
        assert isinstance(data, EnvoyData)
        assert data.acb_inventory, "ACB sleep commands check serials against acb_inventory"
        assert data.acb_inventory == inverters.acb_inventory
        assert data.inverters == inverters.inverters
        assert data.tariff is normal.tariff
        again = await client.read_normal()  # a newer full reading keeps the inverter lane's
        assert client.envoy.data is not None
        assert client.envoy.data.tariff is again.tariff
        assert client.envoy.data.acb_inventory == inverters.acb_inventory


# -- garbage from the gateway is GatewayUnavailable --------------------------------------------


@pytest.mark.parametrize("fault", GARBAGE, ids=[f.value for f in GARBAGE])
async def test_garbage_answers_make_every_lane_unavailable(fault: Fault) -> None:
    async with connected() as (gateway, client):
        await client.read_normal()  # the CTs' configuration, for the meter lane
        gateway.set_fault(fault)
        failed = {}
        for name, read in lane_reads(client).items():
            with pytest.raises(GatewayUnavailable) as caught:
                await read()
            failed[name] = str(caught.value)
    assert all("JSON" in why for why in failed.values()), failed


@pytest.mark.parametrize(
    ("name", "document", "read"),
    [
        ("production.json", {"production": "not a list", "consumption": 7}, "normal"),
        ("ivp_ensemble_secctrl", ["not", "an", "object"], "battery"),
        ("ivp_ensemble_secctrl", {"no": "totals"}, "battery"),
        ("ivp_ensemble_power", {"devices:": [{"no serial": True}]}, "battery"),
        ("ivp_ensemble_power", {"devices:": "not a list"}, "battery"),
        ("ivp_meters_readings", [1, 2, 3], "meters"),
        ("ivp_meters_readings", [{"eid": 704643328, "channels": 3}], "meters"),
        ("ivp_ensemble_inventory", [{"type": "ENPOWER", "devices": [{}]}], "grid"),
        ("ivp_ensemble_inventory", [{"type": "ENPOWER", "devices": [1]}], "grid"),
        ("ivp_ensemble_inventory", ["not an object"], "grid"),
    ],
)
async def test_json_of_another_shape_is_unexpected_data(
    name: str, document: object, read: str
) -> None:
    async with connected() as (gateway, client):
        await client.read_normal()
        serve(gateway, name, document)
        if read == "grid":  # a relay answer without the state: the inventory is read instead
            serve(gateway, "ivp_ensemble_relay", {})
        with pytest.raises(GatewayUnavailable, match="unexpected data from the gateway"):
            await lane_reads(client)[read]()


def test_a_shape_error_inside_pyenphase_is_the_gateways_and_ours_is_ours() -> None:
    with pytest.raises(KeyError) as theirs:
        EnvoyEnchargeAggregate.from_api({"no": "totals"})
    assert raised_by_parser(theirs.value)
    assert isinstance(translation(theirs.value, "reading"), GatewayUnavailable)
    with pytest.raises(KeyError) as ours:
        # a status `meter_status` never returns: enabled, but no measurementType
        adapter.meter_readings([{"eid": 1}], {1: cast(CtMeterData, {"state": "enabled"})}, 1)
    assert not raised_by_parser(ours.value)
    assert translation(ours.value, "reading") is None
    with pytest.raises(AttributeError), translated("reading"):
        None.missing  # type: ignore[attr-defined]  # noqa: B018


# -- a bug of ours is not an offline gateway ----------------------------------------------------


async def test_a_bug_in_our_reader_propagates_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'soc'")

    async with connected() as (_gateway, client):
        await client.read_normal()
        monkeypatch.setattr(adapter, "battery", broken)
        with pytest.raises(AttributeError, match="no attribute 'soc'"):
            await client.read_battery()
        monkeypatch.setattr(adapter, "meter_readings", broken)
        with pytest.raises(AttributeError, match="no attribute 'soc'"):
            await client.read_meters()


async def test_a_bug_called_from_inside_pyenphase_stays_ours() -> None:
    """Our gate callback runs inside pyenphase's request: its KeyError is still our bug."""

    broken = False  # the connect goes through; then the callback breaks

    def pace(_took: float, _kind: EndpointClass) -> None:
        if broken:
            raise KeyError("lane")

    async with connected(on_answer=pace) as (_gateway, client):
        broken = True
        with pytest.raises(KeyError, match="lane") as caught:
            await client.read_normal()
        assert not isinstance(caught.value, GatewayError)
        broken = False
        assert (await client.read_normal()).raw  # the client is still usable


async def test_a_timeout_is_the_gateways() -> None:
    async with connected(timeout=0.5) as (gateway, client):
        gateway.set_fault(Fault.TIMEOUT, paths={"/ivp/ensemble/relay"})
        with pytest.raises(GatewayUnavailable, match="did not answer in time"):
            async with asyncio.timeout(10):  # the test's own bound, far above the client's
                await client.read_grid()
        gateway.set_fault(Fault.NONE)  # lets the hung request end, and the simulator stop
