"""Relays behind the System Controller: dry contacts and the standby generator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyenphase.models.dry_contacts import EnvoyDryContactSettings, EnvoyDryContactStatus
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog.base import (
    CURRENT,
    ENUM,
    FLAG,
    MINUTES,
    PERCENT_SETTING,
    RELAY_STATES,
    TEXT,
    on_off,
    part_attribute,
)
from envoy2mqtt.catalog.metric import DIAGNOSTIC, Device, Family, by_id, device_id
from envoy2mqtt.core.snapshot import GENERATOR_MODES, Snapshot, Value


@dataclass(frozen=True, slots=True)
class DryContact:
    """One dry contact relay: its state and its settings (either may be missing)."""

    status: EnvoyDryContactStatus | None
    settings: EnvoyDryContactSettings | None


def _contacts(snap: Snapshot) -> Mapping[str, DryContact]:
    status = by_id(snap.data.dry_contact_status)
    settings = by_id(snap.data.dry_contact_settings)
    return {
        relay: DryContact(status.get(relay), settings.get(relay))
        for relay in dict.fromkeys([*status, *settings])
    }


def _describe_contact(relay: str, contact: DryContact, _snap: Snapshot) -> Device:
    load = contact.settings.load_name if contact.settings else ""
    name = f"Dry contact {relay}" + (f" ({load})" if load and load != relay else "")
    return Device(kind="dry_contact", id=relay, name=name, model="Dry contact relay")


def _setting(name: str) -> Callable[[DryContact], Value | None]:
    return part_attribute(lambda contact: contact.settings, name)


DRY_CONTACTS = Family(
    kind="dry_contact",
    members=_contacts,
    inputs=("dry_contact_status", "dry_contact_settings"),
    describe=_describe_contact,
    metrics=(
        ENUM(
            "status",
            "Relay",
            lambda contact: contact.status.status.lower() if contact.status else None,
            "The relay's position",
            options=RELAY_STATES,
        ),
        TEXT("mode", "Mode", _setting("mode"), "manual / soc (switched by state of charge)"),
        TEXT("type", "Type", _setting("type"), "NONE / PV / LOAD / 3RD-PV", category=DIAGNOSTIC),
        TEXT(
            "load_name",
            "Load name",
            _setting("load_name"),
            "Name of the load it switches",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "grid_action",
            "On-grid action",
            _setting("grid_action"),
            "apply / shed / schedule / none while on grid",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "micro_grid_action",
            "Off-grid action",
            _setting("micro_grid_action"),
            "apply / shed / schedule / none while off grid",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "generator_action",
            "Generator action",
            _setting("generator_action"),
            "apply / shed / schedule / none while on the generator",
            category=DIAGNOSTIC,
        ),
        PERCENT_SETTING(
            "soc_low",
            "Low threshold",
            _setting("soc_low"),
            "Sheds below this state of charge",
            category=DIAGNOSTIC,
        ),
        PERCENT_SETTING(
            "soc_high",
            "High threshold",
            _setting("soc_high"),
            "Restores above this state of charge",
            category=DIAGNOSTIC,
        ),
        FLAG(
            "override",
            "Override",
            lambda contact: on_off(contact.settings.override if contact.settings else None),
            "Whether the relay is manually overridden",
            category=DIAGNOSTIC,
        ),
    ),
)


def _generators(snap: Snapshot) -> Mapping[str, EnvoyData]:
    data = snap.data
    if data.generator is None:
        return {}
    config = data.generator_config
    return {(device_id(config.generator_id) if config else None) or "generator": data}


def _describe_generator(generator_id: str, data: EnvoyData, _snap: Snapshot) -> Device:
    config = data.generator_config
    model = f"{config.manufacturer} {config.model}".strip() if config else ""
    return Device(kind="generator", id=generator_id, name="Generator", model=model or None)


def _status(name: str) -> Callable[[EnvoyData], Value | None]:
    return part_attribute(lambda data: data.generator, name)


def _config(name: str) -> Callable[[EnvoyData], Value | None]:
    return part_attribute(lambda data: data.generator_config, name)


def _relay(name: str) -> Callable[[EnvoyData], Value | None]:
    def read(data: EnvoyData) -> str | None:
        value = getattr(data.generator, name, None)
        return value.lower() if isinstance(value, str) else None

    return read


GENERATORS = Family(
    kind="generator",
    members=_generators,
    inputs=("generator", "generator_config", "generator_mode"),
    describe=_describe_generator,
    metrics=(
        ENUM(
            "relay",
            "Relay",
            _relay("oper_state"),
            "The generator relay: closed = running on the generator",
            urgent=True,
            options=RELAY_STATES,
        ),
        ENUM(
            "relay_commanded",
            "Relay commanded",
            _relay("admin_state"),
            "The position the generator relay was told to take",
            category=DIAGNOSTIC,
            options=RELAY_STATES,
        ),
        ENUM(
            "mode",
            "Mode",
            part_attribute(lambda data: data.generator_mode, "gen_cmd"),
            "Requested generator mode",
            options=GENERATOR_MODES,
        ),
        PERCENT_SETTING(
            "start_soc", "Start at", _status("start_soc"), "Starts below this state of charge"
        ),
        PERCENT_SETTING(
            "stop_soc", "Stop at", _status("stop_soc"), "Stops above this state of charge"
        ),
        FLAG(
            "exercising",
            "Exercising",
            lambda data: on_off(data.generator.exc_on if data.generator else None),
            "on while an exercise run is active",
        ),
        FLAG(
            "schedule",
            "Exercise schedule",
            lambda data: on_off(data.generator.schedule if data.generator else None),
            "Whether an exercise schedule is active",
            category=DIAGNOSTIC,
        ),
        FLAG(
            "present",
            "Present",
            lambda data: on_off(data.generator.present if data.generator else None),
            "Whether the gateway sees a generator",
            category=DIAGNOSTIC,
        ),
        FLAG(
            "charge_from_generator",
            "Charge from generator",
            lambda data: on_off(
                data.generator_config.charge_from_generator if data.generator_config else None
            ),
            "Whether the batteries may charge from the generator",
        ),
        CURRENT(
            "max_current",
            "Maximum current",
            _config("max_cont_gen_amps"),
            "Maximum continuous current (configured)",
            category=DIAGNOSTIC,
        ),
        MINUTES("warm_up", "Warm-up", _config("warm_up_mins"), "Warm-up time"),
        MINUTES("cool_down", "Cool-down", _config("cool_down_mins"), "Cool-down time"),
        TEXT(
            "type", "Type", _config("gen_type"), "Generator type, e.g. Standby", category=DIAGNOSTIC
        ),
    ),
)
