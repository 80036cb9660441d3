"""The topics the settings are shown under (`envoy2mqtt run --help`, `.env.example`).

A setting belongs to the first section one of whose prefixes its name starts with (a prefix may
be a whole name); one that matches none is shown under "advanced", so a new setting is never
left out of the help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


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
    Section("controls (README: Controls)", ("controls", "control_")),
    Section(
        "load shedding (README: Load shedding)",
        ("loads", "restore_after", "restore_stagger", "shedding_"),
    ),
    ADVANCED,
)


def section_of(name: str) -> Section:
    """The section the setting `name` is shown under."""
    return next((s for s in SECTIONS if s.holds(name)), ADVANCED)
