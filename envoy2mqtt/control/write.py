"""Commands as the gateway's writes (`gateway.writes`), and why a taken write did not show."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.control.controls import Offered
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.gateway import writes
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayError

log = logging.getLogger(__name__)


async def write(
    client: GatewayClient, unit: Sequence[tuple[Offered, Value]], refused: set[str]
) -> str | None:
    """Write one unit (the storage settings, the grid relay, one dry contact, the generator
    mode) with its values; None when the gateway took it, else why not.

    A write the gateway refuses (401/403) withdraws its controls (`refused`) until the
    bridge connects again.
    """
    first = unit[0][0]
    fields = {offered.control.field: value for offered, value in unit}
    try:
        await _send(client, first.control.write, first.target, fields)
    except writes.WriteRefused as err:
        refused.update(offered.path for offered, _ in unit)
        log.warning("%s; withdrawn until the bridge connects again", err)
        return f"{err}; withdrawn until the bridge connects to the gateway again"
    except GatewayError as err:
        log.warning("%s", err)
        return str(err)
    except Exception:
        log.exception("writing %s: unexpected error in envoy2mqtt (please report)", first.path)
        return "unexpected error in envoy2mqtt (see its log)"
    return None


async def _send(
    client: GatewayClient, kind: str, target: str | None, fields: dict[str, Value]
) -> None:
    match kind:
        case "storage":
            reserve, flag = fields.get("reserve_soc"), fields.get("charge_from_grid")
            mode = fields.get("mode")
            await writes.set_storage(
                client,
                mode=str(mode) if mode is not None else None,
                reserve_soc=int(reserve) if reserve is not None else None,
                charge_from_grid=flag == "on" if flag is not None else None,
            )
        case "grid":
            await writes.set_grid_relay(client, closed=fields["closed"] == "on")
        case "generator":
            await writes.set_generator_mode(client, str(fields["mode"]))
        case "dry_contact":
            closed = fields.pop("closed", None)
            await writes.set_dry_contact(
                client,
                target or "",
                closed=closed == "closed" if closed is not None else None,
                settings=fields,
            )
        case _:
            raise writes.WriteNotPossible(f"no write carries {kind}")


def ignored_because(
    offered: Offered, requested: Value, actual: Value | None, data: EnvoyData
) -> str:
    """Why the gateway may have answered 200 and kept its value, in words."""
    settings = data.tariff.storage_settings if data.tariff is not None else None
    if offered.control.key == "battery_mode" and settings is not None and settings.opt_schedules:
        return (
            f"the gateway answered 200 but kept {actual}: with optimised schedules on "
            "(opt_schedules) the battery controller ignores a locally set mode; turn them off "
            "in the Enphase app"
        )
    if offered.control.write == "storage":
        return (
            f"the gateway answered 200 but its battery controller still runs {actual} (asked "
            f"{requested}): firmware D8.3 ignores battery settings written locally; "
            "BATTERY_CONTROL_PATH=auto or enlighten writes them through Enlighten"
        )
    return f"the gateway answered 200 but still reports {actual} (asked {requested})"
