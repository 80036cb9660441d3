"""Settings as command-line flags: one per setting (MQTT_HOST -> --mqtt-host), by topic.

A setting belongs to the first section one of whose prefixes its name starts with (a prefix may
be a whole name); one that matches none is shown under "advanced", so a new setting is never
left out of `envoy2mqtt run --help`. A flag gives its value as text, as the environment would,
and pydantic reads both alike.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from envoy2mqtt.settings.environment import Settings


@dataclass(frozen=True, slots=True)
class Section:
    """One topic of the help: its title and the settings that belong to it."""

    title: str
    prefixes: tuple[str, ...]

    def holds(self, name: str) -> bool:
        """Whether the setting `name` belongs here."""
        return name.startswith(self.prefixes)


# Only the tests set these (they point the bridge at a simulated Enphase cloud): settings all
# the same, from the environment, but no flag and no line in the help.
TEST_ONLY: Final = frozenset({"enlighten_login_url", "entrez_token_url"})

ADVANCED: Final = Section("advanced", ())
SECTIONS: Final = (
    Section(
        "gateway",
        (
            "envoy_",
            "gateways",
            "mdns_interfaces",
            "request_timeout",
            "slow_request_timeout",
            "pin_gateway_certificate",
            "cloud_timeout",
            "token_renew_days",
        ),
    ),
    Section("MQTT", ("mqtt_",)),
    Section("Home Assistant", ("ha_",)),
    Section(
        "cadences (seconds)",
        (
            "poll_interval",
            "fast_interval",
            "grid_confirm_delay",
            "battery_interval",
            "inverter_interval",
            "quiet_window",
            "heartbeat_interval",
            "state_interval_",
            "state_power_jump",
            "summary_interval",
        ),
    ),
    Section("controls (README: Controls)", ("controls", "control_", "battery_control_")),
    Section(
        "load shedding (README: Load shedding)",
        ("loads", "restore_after", "restore_stagger", "shedding_"),
    ),
    ADVANCED,
)


def section_of(name: str) -> Section:
    """The section the setting `name` is shown under."""
    return next((s for s in SECTIONS if s.holds(name)), ADVANCED)


# GATEWAYS is JSON only (GATEWAYS_FILE is its flag); the test-only settings have no flag at all
SKIP_FLAGS: Final = frozenset({"gateways"}) | TEST_ONLY


class Switch(argparse.Action):
    """`--x` alone turns a boolean setting on, `--x false` or `--no-x` off."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        """Store the setting's text for pydantic to read, as the environment would give it."""
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            values = "false"
        setattr(namespace, self.dest, "true" if values is None else values)


class HelpFormatter(argparse.HelpFormatter):
    """Help with the settings' column wide enough for most flags, switches shown once."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, Switch):
            on, off = action.option_strings
            return f"{on} [BOOL], {off}"
        return super()._format_action_invocation(action)


def add_setting_flags(parser: argparse.ArgumentParser, shown: Sequence[str] | None) -> None:
    """One flag per setting, e.g. --mqtt-host for MQTT_HOST; flags override the environment.

    `shown`: the settings the command's help lists (None: all, grouped by section); the others
    are accepted all the same.
    """
    fields = {n: f for n, f in Settings.model_fields.items() if n not in SKIP_FLAGS}
    if shown is None:
        groups = {
            section.title: parser.add_argument_group(section.title)
            for section in SECTIONS
            if any(section_of(name) == section for name in fields)
        }
    else:
        listed = parser.add_argument_group("settings it reads (each also an environment variable)")
    for name, field in fields.items():
        if shown is None:
            group = groups[section_of(name).title]
            text = _help(field)
        else:
            group = listed
            text = _help(field) if name in shown else argparse.SUPPRESS
        flag = "--" + name.replace("_", "-")
        if _is_bool(field):
            group.add_argument(
                flag,
                "--no-" + flag.removeprefix("--"),
                dest=f"setting_{name}",
                action=Switch,
                nargs="?",
                metavar="BOOL",
                help=text,
            )
        else:
            group.add_argument(flag, dest=f"setting_{name}", metavar=_metavar(field), help=text)


def _is_bool(field: FieldInfo) -> bool:
    return field.annotation is bool


def _metavar(field: FieldInfo) -> str:
    """A short word for the value a flag takes (its environment name is in the help's head)."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "{" + ",".join(str(arg) for arg in get_args(annotation)) + "}"
    if get_origin(annotation) is list:
        return "A,B,..."
    words = {int: "N", float: "N", Path: "PATH", SecretStr: "SECRET"}
    for kind, word in words.items():
        if annotation is kind or kind in get_args(annotation):
            return word
    return "TEXT"


def _help(field: FieldInfo) -> str:
    """The setting's own description, its default, and for a secret where to keep it."""
    text = " ".join((field.description or "").split()).replace("%", "%%")  # argparse's %
    if field.annotation is not None and "SecretStr" in str(field.annotation):
        return f"{text} (a secret: prefer the environment or a *_FILE)"
    default = field.get_default(call_default_factory=True)
    if default is None or default in ("", []):
        return text  # unset unless given: nothing to add
    if isinstance(default, bool):
        default = str(default).lower()
    elif isinstance(default, list):
        default = ",".join(str(item) for item in default)
    return f"{text} (default: {default})"


def setting_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings given as flags, by field name (the rest come from the environment)."""
    return {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
