"""Every control as data: its key, the values it takes, where its state is published, how to
read its value back from a reading, which write carries it, and which CONTROLS enable it.

Pure. A control is offered only where the gateway has the hardware (`gateway.writes.Writable`)
and has not refused writing it (HTTP 401/403: installer-only, or the token lacks the right).
`why_not` and `conflicts` say why a command cannot go: an unknown or disabled control, one this
gateway has not, or dry contact thresholds it would leave crossed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog.metric import beside, device_id
from envoy2mqtt.control.commands import GRID, RELAY, Choice, Kind, Switch, Whole
from envoy2mqtt.core.naming import sanitize
from envoy2mqtt.core.snapshot import GENERATOR_MODES, STORAGE_MODES, Value
from envoy2mqtt.gateway.writes import Writable

Target = str | None  # the device a device-level control belongs to (a dry contact's id)
ACTIONS: Final = ("apply", "shed", "schedule", "none")
CONFIG: Final = "config"  # Home Assistant's entity category for settings


class Scope(StrEnum):
    """What CONTROLS enables: `battery` the storage settings, `all` everything."""

    NONE = "none"
    BATTERY = "battery"
    ALL = "all"


@dataclass(frozen=True, kw_only=True, slots=True)
class Control:
    """One thing that can be set."""

    key: str  # in command topics and JSON: stable
    name: str  # the Home Assistant entity's name
    kind: Kind
    scope: Scope  # the least CONTROLS that enables it
    write: str  # the write that carries it: storage, grid, dry_contact or generator
    field: str  # its name in that write
    actual: Callable[[EnvoyData, Target], Value | None]  # its value in a reading
    state: Callable[[EnvoyData, Target], str | None]  # the state topic path showing it
    targets: Callable[[Writable], Iterable[Target]]  # where this gateway has it
    device: str | None = None  # the device kind of a device-level control
    category: str | None = None
    icon: str | None = None
    states: tuple[str, str] = ("on", "off")  # a switch's state payloads, on and off
    reassert: bool = False  # may be written again once after a revert (CONTROL_REASSERT)
    # names it had before a rename: still taken (and answered under) until the next release
    deprecated_names: tuple[str, ...] = ()
    # the key its Home Assistant unique id (and config topic) is made of, where not `key`: a
    # renamed control's entity keeps its id, so users' entity ids and history stay
    unique_key: str | None = None

    @property
    def component(self) -> str:
        """The Home Assistant platform: select, number or switch."""
        if isinstance(self.kind, Choice):
            return "select"
        return "number" if isinstance(self.kind, Whole) else "switch"


@dataclass(frozen=True, slots=True)
class Offered:
    """A control this gateway has: where it is commanded and where its state is."""

    control: Control
    target: Target
    path: str  # the command path: `battery_mode`, `dry_contact/NC1/mode`
    state: str  # the state topic path below `<base>/<serial>/`

    def actual(self, data: EnvoyData) -> Value | None:
        """Its value in a reading (None where the reading does not say)."""
        return self.control.actual(data, self.target)

    @property
    def unique_path(self) -> str:
        """The path its Home Assistant unique id and config topic are made of."""
        return beside(self.path, self.control.unique_key or self.control.key)


def _storage(name: str) -> Callable[[EnvoyData, Target], Value | None]:
    def read(data: EnvoyData, _target: Target) -> Value | None:
        settings = data.tariff.storage_settings if data.tariff is not None else None
        value = getattr(settings, name, None)
        if isinstance(value, bool):
            return "on" if value else "off"
        return value if isinstance(value, str | int | float) else None

    return read


def _at(path: str) -> Callable[[EnvoyData, Target], str | None]:
    return lambda _data, _target: path


def _grid_admin(data: EnvoyData, _target: Target) -> Value | None:
    state = (data.enpower.mains_admin_state or "").lower() if data.enpower else ""
    return {"closed": "on", "open": "off"}.get(state)


def _enpower_state(data: EnvoyData, _target: Target) -> str | None:
    serial = device_id(data.enpower.serial_number) if data.enpower else None
    return f"enpower/{sanitize(serial)}/grid_relay_commanded" if serial else None


def _generator_mode(data: EnvoyData, _target: Target) -> Value | None:
    mode = data.generator_mode.gen_cmd if data.generator_mode else None
    return mode.lower() if isinstance(mode, str) else None


def _generator_state(data: EnvoyData, _target: Target) -> str | None:
    config = data.generator_config  # the generator's id, as the catalog names its device
    generator = (device_id(config.generator_id) if config else None) or "generator"
    return f"generator/{sanitize(generator)}/mode"


def contact_setting(
    name: str, *, status: bool = False
) -> Callable[[EnvoyData, Target], Value | None]:
    def read(data: EnvoyData, target: Target) -> Value | None:
        parts: Mapping[str, object] = (
            data.dry_contact_status if status else data.dry_contact_settings
        ) or {}
        value = getattr(parts.get(target or ""), name, None)
        if isinstance(value, str):
            return str(value)  # pyenphase's StrEnums, as plain words
        return value if isinstance(value, int | float) else None

    return read


def _contact_state(key: str) -> Callable[[EnvoyData, Target], str | None]:
    return lambda _data, target: f"dry_contact/{sanitize(target or '')}/{key}"


def _once(has: Callable[[Writable], bool]) -> Callable[[Writable], Iterable[Target]]:
    return lambda can: [None] if has(can) else []


def _contact_setting(key: str, name: str, kind: Kind, field: str | None = None) -> Control:
    return Control(
        key=key,
        name=name,
        kind=kind,
        scope=Scope.ALL,
        write="dry_contact",
        field=field or key,
        actual=contact_setting(field or key),
        state=_contact_state(key),
        targets=lambda can: sorted(can.contact_settings),
        device="dry_contact",
        category=CONFIG,
    )


STORAGE: Final = _once(lambda can: can.storage)
CONTACT_STATUS: Final = Control(
    key="status",
    name="Relay closed",
    kind=RELAY,
    scope=Scope.ALL,
    write="dry_contact",
    field="closed",
    actual=contact_setting("status", status=True),
    state=_contact_state("status"),
    targets=lambda can: sorted(can.contact_status),
    device="dry_contact",
    states=("closed", "open"),
)
CONTROLS: Final[tuple[Control, ...]] = (
    Control(
        key="battery_mode",
        name="Battery mode",
        kind=Choice(STORAGE_MODES),
        scope=Scope.BATTERY,
        write="storage",
        field="mode",
        actual=_storage("mode"),
        state=_at("battery_mode"),
        targets=STORAGE,
        icon="mdi:home-battery",
        reassert=True,
    ),
    Control(
        key="reserve_soc",
        name="Battery reserve",
        kind=Whole(0, 100),
        scope=Scope.BATTERY,
        write="storage",
        field="reserve_soc",
        actual=_storage("reserved_soc"),
        # the reserve the battery controller runs (secctrl), not the tariff's copy: on D8.3
        # the tariff keeps what was written locally, and a cloud write never shows there
        state=_at("reserve_soc"),
        targets=STORAGE,
        icon="mdi:battery-lock",
        reassert=True,
        deprecated_names=("battery_reserve_soc",),
        unique_key="battery_reserve_soc",
    ),
    Control(
        key="charge_from_grid",
        name="Charge from grid",
        kind=Switch(),
        scope=Scope.BATTERY,
        write="storage",
        field="charge_from_grid",
        actual=_storage("charge_from_grid"),
        state=_at("storage_charge_from_grid"),
        targets=STORAGE,
        icon="mdi:transmission-tower-import",
        reassert=True,
    ),
    Control(
        key="grid_enabled",
        name="Grid connection (off: go off-grid)",
        kind=GRID,
        scope=Scope.ALL,
        write="grid",
        field="closed",
        actual=_grid_admin,
        state=_enpower_state,
        targets=_once(lambda can: can.grid_relay),
        category=CONFIG,
        icon="mdi:transmission-tower",
        states=("closed", "open"),
    ),
    Control(
        key="generator_mode",
        name="Generator mode",
        kind=Choice(GENERATOR_MODES),
        scope=Scope.ALL,
        write="generator",
        field="mode",
        actual=_generator_mode,
        state=_generator_state,
        targets=_once(lambda can: can.generator),
        icon="mdi:engine",
    ),
    CONTACT_STATUS,
    _contact_setting("mode", "Mode", Choice(("manual", "soc"))),
    _contact_setting("grid_action", "On-grid action", Choice(ACTIONS)),
    _contact_setting("micro_grid_action", "Off-grid action", Choice(ACTIONS)),
    _contact_setting("generator_action", "Generator action", Choice(ACTIONS)),
    _contact_setting("soc_low", "Low threshold", Whole(0, 100)),
    _contact_setting("soc_high", "High threshold", Whole(0, 100)),
)


def contact_statuses(data: EnvoyData) -> dict[str, tuple[str, Value | None]]:
    """Each dry contact's id -> its status's state path and its status in `data`."""
    out: dict[str, tuple[str, Value | None]] = {}
    for target in data.dry_contact_status or {}:
        state = CONTACT_STATUS.state(data, target)
        if state is not None:
            out[target] = (state, CONTACT_STATUS.actual(data, target))
    return out


def offered(
    can: Writable,
    data: EnvoyData,
    scope: Scope,
    refused: Collection[str] = (),
    controls: Iterable[Control] = CONTROLS,
) -> dict[str, Offered]:
    """The controls this gateway offers under CONTROLS=`scope`, by command path."""
    allowed = {Scope.BATTERY: (Scope.BATTERY,), Scope.ALL: (Scope.BATTERY, Scope.ALL)}
    out: dict[str, Offered] = {}
    for control in controls:
        if control.scope not in allowed.get(scope, ()):
            continue
        for target in control.targets(can):
            path = command_path(control, target)
            state = control.state(data, target)
            if state is not None and path not in refused:
                out[path] = Offered(control, target, path, state)
    return out


def command_path(control: Control, target: Target) -> str:
    """`battery_mode`, or `dry_contact/NC1/mode` for a device's control."""
    if control.device is None:
        return control.key
    return f"{control.device}/{sanitize(target or '')}/{control.key}"


def current_name(path: str, controls: Iterable[Control] = CONTROLS) -> str | None:
    """The command path a deprecated one now goes by (`battery_reserve_soc` ->
    `reserve_soc`); None when `path` is no deprecated name."""
    parts = path.split("/")
    device = parts[0] if len(parts) == 3 else None
    for control in controls:
        if control.device == device and parts[-1] in control.deprecated_names:
            return beside(path, control.key)
    return None


def why_not(path: str, scope: Scope, refused: Collection[str] = ()) -> str:
    """Why `path` cannot be commanded here, in words."""
    parts = path.split("/")
    device = parts[0] if len(parts) == 3 else None
    known = [c for c in CONTROLS if c.key == parts[-1] and c.device == device]
    if len(parts) not in (1, 3) or not known:
        names = ", ".join(c.key for c in CONTROLS if c.device == device) or "none"
        return f"unknown control {path!r} (controls here: {names})"
    if path in refused:
        return (
            "the gateway refused writing it (HTTP 401/403): installer-only, or the token lacks it"
        )
    if known[0].scope is Scope.ALL and scope is not Scope.ALL:
        return f"not enabled: CONTROLS={scope} (CONTROLS=all enables it)"
    return "this gateway does not have it (no such hardware, or not read yet)"


def conflicts(
    values: Mapping[str, tuple[Offered, Value]], data: EnvoyData
) -> list[tuple[str, str]]:
    """(path, why) for dry contact thresholds the message would leave crossed (low >= high)."""
    out: list[tuple[str, str]] = []
    for path, (offered, _value) in values.items():
        if offered.control.key not in ("soc_low", "soc_high") or offered.control.device is None:
            continue
        base = path.rpartition("/")[0]

        def level(key: str, base: str = base, target: Target = offered.target) -> Value | None:
            given = values.get(f"{base}/{key}")
            return given[1] if given is not None else contact_setting(key)(data, target)

        low, high = level("soc_low"), level("soc_high")
        if isinstance(low, int | float) and isinstance(high, int | float) and low >= high:
            out.append((path, f"soc_low ({low:g}) must stay below soc_high ({high:g})"))
    return out
