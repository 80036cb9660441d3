"""The one module that knows pyenphase's insides, and the one that reads the gateway's raw JSON.

pyenphase's `Envoy.update()` runs every probed updater at once; the lanes need parts of it
(the inverter endpoints are the gateway's slowest and change every 5 minutes), so
`run_updaters` mirrors update() over pyenphase's private `_updaters`, `_endpoint_cache` and
`_validate_update`, and `hand_over` sets `envoy.data` as update() does: pyenphase's write
methods start from it. The fast and battery lanes read single endpoints that pyenphase reads
only as part of a whole update; here their shapes are checked (anything else is
`GatewayUnavailable("... unexpected data ...")`, never a KeyError of ours) and they are
parsed into pyenphase's own models. tests/test_pyenphase_contract.py checks every assumption
made here against the installed pyenphase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple, cast

import orjson
from pyenphase import Envoy
from pyenphase.const import (
    ENDPOINT_URL_METERS,
    ENDPOINT_URL_METERS_READINGS,
    URL_DRY_CONTACT_SETTINGS,
    URL_DRY_CONTACT_STATUS,
    URL_ENCHARGE_BATTERY,
    URL_ENSEMBLE_INVENTORY,
    URL_ENSEMBLE_SECCTRL,
    URL_GRID_RELAY,
    URL_INVENTORY,
)
from pyenphase.firmware import EnvoyFirmware
from pyenphase.models.acb import EnvoyBatteryAggregate
from pyenphase.models.dry_contacts import EnvoyDryContactSettings, EnvoyDryContactStatus
from pyenphase.models.encharge import EnvoyEnchargeAggregate, EnvoyEnchargePower
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.meters import CtMeterData, CtState, EnvoyMeterData
from pyenphase.updaters.api_v1_production_inverters import EnvoyApiV1ProductionInvertersUpdater
from pyenphase.updaters.base import EnvoyUpdater
from pyenphase.updaters.device_data_inverters import EnvoyDeviceDataInvertersUpdater
from pyenphase.updaters.inventory import EnvoyInventoryUpdater
from tenacity import stop_after_attempt

from envoy2mqtt.gateway.errors import EndpointMissing, GatewayUnavailable
from envoy2mqtt.gateway.overlay import Battery, Meters, merge_inverters
from envoy2mqtt.gateway.translate import translated

# Updaters that read inverters: they run in their own, slower lane (inverters report every
# 5 minutes and /inventory.json is the gateway's slowest endpoint).
INVERTER_UPDATERS: Final[tuple[type[EnvoyUpdater], ...]] = (
    EnvoyApiV1ProductionInvertersUpdater,
    EnvoyDeviceDataInvertersUpdater,
    EnvoyInventoryUpdater,
)

JsonObject = dict[str, Any]


class DeviceField(NamedTuple):
    """One field of the first device of a kind in /ivp/ensemble/inventory."""

    kind: str
    key: str


ENPOWER: Final = DeviceField("ENPOWER", "mains_oper_state")  # the Enpower relay: the mains
COLLAR: Final = DeviceField("COLLAR", "grid_state")  # the IQ Meter Collar: the grid as it sees it


# -- pyenphase's update(), one lane at a time ----------------------------------------------


async def run_updaters(
    envoy: Envoy,
    include: Iterable[type[EnvoyUpdater]] | None = None,
    exclude: Iterable[type[EnvoyUpdater]] = (),
    *,
    reuse_probe: bool = False,
) -> EnvoyData:
    """What `Envoy.update()` reads, over the probed updaters of one lane only.

    `include`: these updaters only; otherwise every one but `exclude`, and the reading is
    vetted as update() vets a full one (firmware 3's all-zero start-up readings).
    `reuse_probe`: the first reading after the probe takes the answers the probe cached
    (pyenphase's endpoint cache) instead of reading the slow pages again.
    """
    wanted = tuple(include) if include is not None else None
    skip = tuple(exclude)
    updaters: list[EnvoyUpdater] = envoy._updaters
    if not reuse_probe:
        envoy._endpoint_cache.clear()  # update() shares answers within one reading only
    data = EnvoyData()
    async with translated("updating"):
        for updater in updaters:
            if isinstance(updater, skip) or (
                wanted is not None and not isinstance(updater, wanted)
            ):
                continue
            await updater.update(data)
        if wanted is None:
            envoy._validate_update(data)
    return data


class _OneProbe(EnvoyFirmware):
    """pyenphase's firmware probe, /info tried once (https, then http) per call.

    Its own probe retries four times inside each connect, so an unreachable gateway took ~8 s
    per attempt and the bridge's back-off was not what the README says: retries live in the
    bridge.
    """

    _get_info = EnvoyFirmware._get_info.retry_with(stop=stop_after_attempt(1))


def probe_once(envoy: Envoy, client: object, host: str) -> None:
    """Make `envoy.setup()` read /info once per call (see `_OneProbe`)."""
    envoy._firmware = _OneProbe(client, host)  # type: ignore[arg-type]


def hand_over(envoy: Envoy, normal: EnvoyData, inverters: EnvoyData | None) -> None:
    """Set `envoy.data` to the newest full reading, as `Envoy.update()` would have.

    pyenphase's write methods (dry contacts, storage mode, reserve, charge from grid, ACB
    sleep) start from `envoy.data` and refuse to run before it is set.
    """
    envoy.data = normal if inverters is None else merge_inverters(normal, inverters)


async def read_inventory(envoy: Envoy) -> list[Any]:
    """/inventory.json: every device's status flags (pyenphase reads it on ACB sites only)."""
    return _list(await fetch_json(envoy, URL_INVENTORY), URL_INVENTORY)


# -- fresh settings, read just before a write changes them (`writes`) ---------------------


async def read_dry_contact_settings(envoy: Envoy) -> dict[str, EnvoyDryContactSettings]:
    """/ivp/ss/dry_contact_settings as pyenphase's models, by relay id, read now."""
    relays = await _dry_contacts(envoy, URL_DRY_CONTACT_SETTINGS)
    async with translated(f"reading {URL_DRY_CONTACT_SETTINGS}"):
        return {key: EnvoyDryContactSettings.from_api(r) for key, r in relays.items()}


async def read_dry_contact_status(envoy: Envoy) -> dict[str, EnvoyDryContactStatus]:
    """/ivp/ensemble/dry_contacts as pyenphase's models, by relay id, read now."""
    relays = await _dry_contacts(envoy, URL_DRY_CONTACT_STATUS)
    async with translated(f"reading {URL_DRY_CONTACT_STATUS}"):
        return {key: EnvoyDryContactStatus.from_api(r) for key, r in relays.items()}


async def _dry_contacts(envoy: Envoy, url: str) -> dict[str, JsonObject]:
    """The `dry_contacts` entries of `url`'s answer by id (garbage is a clear GatewayError)."""
    answer = _object(await fetch_json(envoy, url), url)
    relays = [_object(r, url) for r in _list(answer.get("dry_contacts"), url)]
    if any(r.get("id") is None for r in relays):
        raise _unexpected(url, "a dry contact without id")
    return {str(r["id"]): r for r in relays}


# -- single endpoints, for the fast and battery lanes ---------------------------------------


async def fetch_json(envoy: Envoy, path: str) -> Any:
    """GET one endpoint through pyenphase's session and auth; parse its JSON."""
    async with translated(f"reading {path}"):
        response = await envoy.request(path)
        body = await response.read()
    if response.status == 404:
        raise EndpointMissing(f"{path} answered HTTP 404")
    if response.status != 200:
        raise GatewayUnavailable(f"{path} answered HTTP {response.status}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise GatewayUnavailable(f"{path} answered something that is not JSON") from err


async def read_relay(envoy: Envoy) -> str | None:
    """The Enpower relay's `mains_oper_state`; None if /ivp/ensemble/relay does not say.

    Raises `EndpointMissing` on firmware without the endpoint.
    """
    return relay_state(await fetch_json(envoy, URL_GRID_RELAY))


async def read_ensemble(envoy: Envoy, device: DeviceField) -> str | None:
    """`device`'s field in /ivp/ensemble/inventory (`ENPOWER`, `COLLAR`); None without one."""
    return ensemble_state(await fetch_json(envoy, URL_ENSEMBLE_INVENTORY), device)


async def read_grid_devices(envoy: Envoy) -> tuple[str | None, str | None]:
    """The System Controller's and the collar's grid fields from one /ivp/ensemble/inventory."""
    inventory = await fetch_json(envoy, URL_ENSEMBLE_INVENTORY)
    return ensemble_state(inventory, ENPOWER), ensemble_state(inventory, COLLAR)


async def read_meters(envoy: Envoy, status: Mapping[object, CtMeterData]) -> Meters:
    """Fresh CT readings of the enabled CTs in `status` (from `meter_status`)."""
    readings = await fetch_json(envoy, ENDPOINT_URL_METERS_READINGS)
    async with translated(f"reading {ENDPOINT_URL_METERS_READINGS}"):
        return meter_readings(readings, status, envoy.phase_count)


async def read_battery(envoy: Envoy, *, combined: bool) -> Battery:
    """The IQ Batteries' totals and each one's power; with `combined`, the AC Batteries' too."""
    secctrl = await fetch_json(envoy, URL_ENSEMBLE_SECCTRL)
    power = await fetch_json(envoy, URL_ENCHARGE_BATTERY)
    async with translated("reading the battery"):
        return battery(secctrl, power, combined=combined)


# -- parsing: the shapes checked, then pyenphase's models -----------------------------------


def relay_state(relay: object) -> str | None:
    """`mains_oper_state` of an /ivp/ensemble/relay answer, if it has one."""
    if isinstance(relay, dict) and "mains_oper_state" in relay:
        return str(relay["mains_oper_state"])
    return None


def ensemble_state(inventory: object, device: DeviceField) -> str | None:
    """`device`'s field in an /ivp/ensemble/inventory answer (None without such a device)."""
    kind, key = device
    groups = inventory if isinstance(inventory, list) else []
    for group in (_object(g, URL_ENSEMBLE_INVENTORY) for g in groups):
        if group.get("type") != kind:
            continue
        for found in _list(group.get("devices", []), URL_ENSEMBLE_INVENTORY):
            state = _object(found, URL_ENSEMBLE_INVENTORY).get(key)
            if state is None:
                raise _unexpected(URL_ENSEMBLE_INVENTORY, f"an {kind} device without {key}")
            return str(state)
    return None


def meter_status(data: EnvoyData) -> dict[object, CtMeterData]:
    """The CTs' configuration in a full reading's /ivp/meters, by eid (empty if not read)."""
    status: dict[object, CtMeterData] = {}
    for entry in _list(data.raw.get(ENDPOINT_URL_METERS) or [], ENDPOINT_URL_METERS):
        ct = _object(entry, ENDPOINT_URL_METERS)
        if "eid" not in ct or not isinstance(ct.get("measurementType"), str):
            raise _unexpected(ENDPOINT_URL_METERS, "a CT without eid or measurementType")
        status[ct["eid"]] = cast(CtMeterData, ct)
    return status


def meter_readings(readings: object, status: Mapping[object, CtMeterData], phases: int) -> Meters:
    """An /ivp/meters/readings answer as pyenphase's meter models, per phase where reported.

    As pyenphase: enabled CTs only, and no per-phase readings on a single-phase site.
    """
    meters: dict[str, EnvoyMeterData | None] = {}
    by_phase: dict[str, dict[str, EnvoyMeterData | None]] = {}
    for entry in readings if isinstance(readings, list) else []:
        reading = _object(entry, ENDPOINT_URL_METERS_READINGS)
        ct = status.get(reading.get("eid"))
        if ct is None or ct.get("state") != CtState.ENABLED:
            continue
        kind = str(ct["measurementType"])
        meters[kind] = EnvoyMeterData.from_api(reading, ct)
        channels = _list(reading.get("channels") or [], ENDPOINT_URL_METERS_READINGS)
        if len(channels) > 1 and phases > 1:
            by_phase[kind] = {
                f"L{i + 1}": EnvoyMeterData.from_api(
                    _object(channel, ENDPOINT_URL_METERS_READINGS), ct
                )
                for i, channel in enumerate(channels[:phases])
            }
    return meters, by_phase


def battery(secctrl: object, power: object, *, combined: bool) -> Battery:
    """/ivp/ensemble/secctrl and /ivp/ensemble/power as pyenphase's battery models."""
    totals = _object(secctrl, URL_ENSEMBLE_SECCTRL)
    answer = _object(power, URL_ENCHARGE_BATTERY)
    aggregate = EnvoyEnchargeAggregate.from_api(totals)
    units: dict[str, EnvoyEnchargePower] = {}
    # "devices:" (sic) is what the gateway sends; pyenphase reads that key too
    for entry in _list(answer.get("devices:") or answer.get("devices") or [], URL_ENCHARGE_BATTERY):
        unit = _object(entry, URL_ENCHARGE_BATTERY)
        if unit.get("serial_num") is None:
            raise _unexpected(URL_ENCHARGE_BATTERY, "a battery without serial_num")
        units[str(unit["serial_num"])] = EnvoyEnchargePower.from_api(unit)
    both = EnvoyBatteryAggregate.from_api(totals) if combined else None
    return Battery(aggregate, units, both)


def _object(value: object, path: str) -> JsonObject:
    if not isinstance(value, dict):
        raise _unexpected(path, f"{type(value).__name__} where an object belongs")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _unexpected(path, f"{type(value).__name__} where a list belongs")
    return value


def _unexpected(path: str, what: str) -> GatewayUnavailable:
    return GatewayUnavailable(f"reading {path}: unexpected data from the gateway ({what})")
