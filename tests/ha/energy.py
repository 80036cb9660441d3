"""Home Assistant's Energy dashboard: preferences as its settings page saves them, validated."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.ha.client import HomeAssistantApi


def energy_sources(chosen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The Energy preferences as the dashboard's own settings page saves them."""
    sources: list[dict[str, Any]] = []
    if "solar" in chosen:
        (produced,) = chosen["solar"]
        sources.append(
            {"type": "solar", "stat_energy_from": produced, "config_entry_solar_forecast": None}
        )
    if "grid" in chosen:
        imported, exported = chosen["grid"]
        no_price = {"entity_energy_price": None, "number_energy_price": None}
        sources.append(
            {
                "type": "grid",
                "flow_from": [{"stat_energy_from": imported, "stat_cost": None, **no_price}],
                "flow_to": [{"stat_energy_to": exported, "stat_compensation": None, **no_price}],
                "cost_adjustment_day": 0,
            }
        )
    if "battery" in chosen:
        discharged, charged = chosen["battery"]
        sources.append(
            {"type": "battery", "stat_energy_from": discharged, "stat_energy_to": charged}
        )
    return sources


async def validated(api: HomeAssistantApi) -> dict[str, Any]:
    """`energy/validate` once the recorder has compiled statistics (every 5 min, at :x0:10).

    Until then Home Assistant says `statistics_not_defined` for a new sensor, as it tells a
    user who just added one; every other issue is returned at once.
    """
    validation: dict[str, Any] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(400):
            while True:
                validation = await api.command("energy/validate")
                issues = [i["type"] for source in validation["energy_sources"] for i in source]
                if "statistics_not_defined" not in issues:
                    break
                await asyncio.sleep(5)
    return validation
