"""Why a command cannot go: an unknown or disabled control, one this gateway has not, or
dry contact thresholds it would leave crossed. Pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.control.controls import CONTROLS, Offered, Scope, Target, contact_setting
from envoy2mqtt.core.snapshot import Value


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
