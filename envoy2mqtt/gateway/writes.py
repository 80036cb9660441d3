"""Writes to the gateway, through pyenphase's own methods: they know the payload shapes.

pyenphase's write methods start from `envoy.data` and change it in place before they send
(the tariff document is PUT whole; a dry contact's settings are sent merged and complete).
That data is shared with what the bridge publishes, so each write works on a private copy,
its settings read fresh just before (a change made meanwhile in the Enphase app is not
written back over). The copy stays as `envoy.data` when the gateway took the write, and is
dropped when it did not, so a failed write never lingers. Preconditions are checked here in
plain words first (`WriteNotPossible`); a 401/403 answer to a write is `WriteRefused`: an
installer-only setting or a token without the right, not a reason to authenticate again.
Every request goes through the client's gate, like the reads.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Final

from pyenphase import Envoy
from pyenphase.const import SupportedFeatures
from pyenphase.models.dry_contacts import DryContactAction, DryContactMode
from pyenphase.models.envoy import EnvoyData
from pyenphase.models.tariff import EnvoyStorageMode
from pyenphase.updaters.tariff import EnvoyTariffUpdater

from envoy2mqtt.core.snapshot import (
    GENERATOR_MODES,
    SCHEDULE_PATH,
    STORAGE_MODES,
    storage_mode,
    storage_schedule,
)
from envoy2mqtt.gateway import adapter
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import (
    GatewayAuthError,
    GatewayError,
    GatewayUnavailable,
)
from envoy2mqtt.gateway.translate import translated

URL_SECCTRL: Final = "/ivp/ensemble/secctrl"
# a dry contact's settings that can be written, as pyenphase's model names them
CONTACT_SETTINGS: Final[Mapping[str, Callable[[str | float], object]]] = {
    "mode": lambda v: DryContactMode(str(v)),
    "grid_action": lambda v: DryContactAction(str(v)),
    "micro_grid_action": lambda v: DryContactAction(str(v)),
    "generator_action": lambda v: DryContactAction(str(v)),
    "soc_low": float,
    "soc_high": float,
}


class WriteNotPossible(GatewayError):
    """This gateway cannot take this write (no such hardware, no reading yet); nothing sent."""


class WriteRefused(GatewayError):
    """The gateway answered 401/403 to a write: installer-only, or the token lacks the right."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Writable:
    """What this gateway can be told, from its features and its newest full reading."""

    storage: bool = False  # storage mode, reserve, charge from grid
    grid_relay: bool = False
    contact_status: frozenset[str] = frozenset()  # dry contacts that can be opened and closed
    contact_settings: frozenset[str] = frozenset()  # dry contacts whose settings can be set
    generator: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveBattery:
    """What the battery controller runs now: where a write shows that it took, never the
    tariff file (on D8.3 that is a copy the controller ignores)."""

    mode: str | None = None
    reserve_soc: float | None = None  # secctrl `configured_backup_soc`
    very_low_soc: float | None = None  # secctrl `VLS_Limit`
    charge_from_grid: bool | None = None
    source: str = SCHEDULE_PATH  # where mode and charge from grid were read


async def read_live_battery(client: GatewayClient) -> LiveBattery:
    """The battery controller's live settings: /ivp/ensemble/secctrl and /ivp/sc/sched.

    Firmware without /ivp/sc/sched runs the tariff file, so there (and where its answer is
    not a schedule) mode and charge from grid come from the tariff.
    """
    envoy = client.envoy
    secctrl = await adapter.fetch_json(envoy, URL_SECCTRL)
    secctrl = secctrl if isinstance(secctrl, dict) else {}
    reserve, low = secctrl.get("configured_backup_soc"), secctrl.get("VLS_Limit")
    schedule = storage_schedule(await client.read_schedule())
    mode: str | None
    if schedule is not None:
        mode, flag, source = schedule.mode, schedule.charge_from_grid, SCHEDULE_PATH
    else:
        tariff = (await adapter.run_updaters(envoy, include=(EnvoyTariffUpdater,))).tariff
        settings = tariff.storage_settings if tariff is not None else None
        mode = storage_mode(settings.mode) if settings is not None and settings.mode else None
        flag = settings.charge_from_grid if settings is not None else None
        source = "/admin/lib/tariff"
    return LiveBattery(
        mode=mode,
        reserve_soc=float(reserve) if isinstance(reserve, int | float) else None,
        very_low_soc=float(low) if isinstance(low, int | float) else None,
        charge_from_grid=flag if isinstance(flag, bool) else None,
        source=source,
    )


def writable(client: GatewayClient) -> Writable:
    """What the connected gateway can be told."""
    envoy = client.envoy
    data = envoy.data
    if data is None:
        return Writable()
    features = envoy.supported_features
    enpower = bool(features & SupportedFeatures.ENPOWER)
    tariff = data.tariff.storage_settings if data.tariff is not None else None
    batteries = bool(data.encharge_inventory or data.encharge_power)
    return Writable(
        storage=bool(
            features & SupportedFeatures.ENCHARGE
            and features & SupportedFeatures.TARIFF
            and tariff is not None
            and batteries
        ),
        grid_relay=enpower and data.enpower is not None,
        contact_status=frozenset(data.dry_contact_status) if enpower else frozenset(),
        contact_settings=frozenset(data.dry_contact_settings) if enpower else frozenset(),
        generator=bool(features & SupportedFeatures.GENERATOR) and data.generator_mode is not None,
    )


async def set_storage(
    client: GatewayClient,
    *,
    mode: str | None = None,
    reserve_soc: int | None = None,
    charge_from_grid: bool | None = None,
) -> None:
    """Storage mode, reserve and/or charge from grid: the tariff document, one PUT each."""
    envoy = client.envoy
    if not writable(client).storage:
        raise WriteNotPossible("this gateway has no IQ Batteries with storage settings")
    if mode is not None and mode not in STORAGE_MODES:
        raise WriteNotPossible(f"storage mode {mode!r} is not one of {', '.join(STORAGE_MODES)}")
    tariff = (await adapter.run_updaters(envoy, include=(EnvoyTariffUpdater,))).tariff
    if tariff is None or tariff.storage_settings is None:
        raise WriteNotPossible("the gateway's tariff has no storage settings")
    private = replace(_reading(envoy), tariff=tariff)
    async with _editing(envoy, "writing the storage settings", private):
        if mode is not None:
            await envoy.set_storage_mode(EnvoyStorageMode(mode))
        if reserve_soc is not None:
            await envoy.set_reserve_soc(reserve_soc)
        if charge_from_grid is True:
            await envoy.enable_charge_from_grid()
        elif charge_from_grid is False:
            await envoy.disable_charge_from_grid()


async def set_grid_relay(client: GatewayClient, *, closed: bool) -> None:
    """Command the IQ System Controller's grid relay: closed = on grid, open = off grid."""
    envoy = client.envoy
    if not writable(client).grid_relay:
        raise WriteNotPossible("this gateway has no IQ System Controller (grid relay)")
    async with _editing(envoy, "commanding the grid relay", copy.copy(_reading(envoy))):
        if closed:
            await envoy.go_on_grid()
        else:
            await envoy.go_off_grid()


async def set_dry_contact(
    client: GatewayClient,
    relay: str,
    *,
    closed: bool | None = None,
    settings: Mapping[str, str | float] | None = None,
) -> None:
    """Settings of one dry contact (merged with its current ones), then its position."""
    envoy = client.envoy
    can = writable(client)
    if closed is not None and relay not in can.contact_status:
        raise WriteNotPossible(f"this gateway has no dry contact {relay!r} to open or close")
    changes = _contact_changes(settings or {})
    shared = _reading(envoy)
    status, current = copy.deepcopy(shared.dry_contact_status), shared.dry_contact_settings
    if changes:
        if relay not in can.contact_settings:
            raise WriteNotPossible(f"this gateway has no settings for dry contact {relay!r}")
        current = await adapter.read_dry_contact_settings(envoy)
        if relay not in current:
            raise WriteNotPossible(f"the gateway no longer reports dry contact {relay!r}")
    private = replace(shared, dry_contact_status=status, dry_contact_settings=current)
    async with _editing(envoy, f"writing dry contact {relay}", private):
        if changes:
            await envoy.update_dry_contact({"id": relay, **changes})
        if closed is True:
            await envoy.close_dry_contact(relay)
        elif closed is False:
            await envoy.open_dry_contact(relay)


async def set_generator_mode(client: GatewayClient, mode: str) -> None:
    """The standby generator's mode: off, on or auto."""
    envoy = client.envoy
    if not writable(client).generator:
        raise WriteNotPossible("this gateway has no generator mode to set")
    if mode not in GENERATOR_MODES:
        raise WriteNotPossible(f"generator mode {mode!r} is not one of off, on, auto")
    shared = _reading(envoy)
    private = replace(shared, generator_mode=copy.deepcopy(shared.generator_mode))
    async with _editing(envoy, "setting the generator mode", private):
        await envoy.set_generator_mode(mode)


def _contact_changes(settings: Mapping[str, str | float]) -> dict[str, object]:
    unknown = sorted(set(settings) - set(CONTACT_SETTINGS))
    if unknown:
        raise WriteNotPossible(f"not a dry contact setting: {', '.join(unknown)}")
    try:
        return {key: CONTACT_SETTINGS[key](value) for key, value in settings.items()}
    except ValueError as err:
        raise WriteNotPossible(f"not a dry contact setting value: {err}") from None


def _reading(envoy: Envoy) -> EnvoyData:
    if envoy.data is None:
        raise WriteNotPossible("the gateway has not been read in full yet")
    return envoy.data


@asynccontextmanager
async def _editing(envoy: Envoy, doing: str, private: EnvoyData) -> AsyncIterator[None]:
    """pyenphase writes on `private`, a copy of `envoy.data`, kept if the gateway took it."""
    shared = _reading(envoy)
    envoy.data = private
    try:
        async with translated(doing):
            yield
    except GatewayAuthError as err:
        envoy.data = shared
        raise WriteRefused(
            f"{doing}: the gateway refused the write (HTTP 401/403): it may be an installer-only "
            "setting, or the token may not allow it"
        ) from err
    except GatewayError as err:
        envoy.data = shared
        if _timed_out(err):
            raise GatewayUnavailable(
                f"{doing}: the gateway did not answer in time; it may still apply the write"
            ) from err
        raise
    except BaseException:
        envoy.data = shared
        raise


def _timed_out(err: BaseException) -> bool:
    """Whether a timeout is behind `err` (pyenphase words it "Timeout (request)")."""
    cause: BaseException | None = err
    for _ in range(8):  # chains are short; never follow a cycle
        if cause is None:
            return False
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
