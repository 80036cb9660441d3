"""HA_DISCOVERY_MODE switched while Home Assistant runs: every entity survives, with its value.

A real Home Assistant 2025.4.4 (device discovery needs 2024.11+; installed once into its own
cached virtualenv on Python 3.13, see tests/ha) takes in a bridge in entity mode; the bridge is
restarted in device mode, then in entity mode again. Both modes file the same unique ids
under other topics: a new config published while the old one still stands is refused by
Home Assistant ("does not generate unique IDs ... ignoring"), which then drops the old
entity, leaving none. The bridge removes its old configs first (features/ghosts.py).

One warning is Home Assistant's own and expected: when a device config is removed, each of
its entities that is disabled (per phase, per inverter) clears that device topic once more as
its registry entry goes, and Home Assistant 2025.4 warns that nothing is left to clean up
("No device components to cleanup for <device>"): at most one per disabled entity.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import pytest_asyncio

from tests.ha.bridge import unique_ids
from tests.ha.install import DEVICE_VERSION
from tests.ha.process import complaints
from tests.ha.site import Gateway, HaSite

pytestmark = [
    pytest.mark.ha,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(900),  # the first run also installs Home Assistant (about 80 s)
]

CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"  # batteries, Enpower, CTs: the most
ECHO: Final = re.compile(r"No device components to cleanup for (\S+), node_id 'None'")
ABOUT_IDS: Final = re.compile(r"unique ID|already used|envoy2mqtt|discovery", re.IGNORECASE)
NO_VALUE: Final = ("unavailable", "unknown")
SETTLE: Final = 6.0  # s: longer than the ghost sweep's period
COMPAT: Final = {"HA_COMPAT": "2025.4"}  # every Home Assistant on the broker is new enough


@dataclass(frozen=True, slots=True)
class Seen:
    """What Home Assistant holds of the gateway's announced unique ids."""

    announced: dict[str, str]  # unique id -> the config topic holding it
    registered: dict[str, dict[str, Any]]  # unique id -> entity registry entry
    values: dict[str, str]  # unique id -> state, for the enabled entities

    @property
    def without_value(self) -> list[str]:
        """Announced unique ids with no entity, or an enabled one with no value."""
        missing = [u for u in self.announced if u not in self.registered]
        enabled = [u for u, e in self.registered.items() if e["disabled_by"] is None]
        return missing + [u for u in enabled if self.values.get(u, "unavailable") in NO_VALUE]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HaSite]:
    """Home Assistant 2025.4, its broker, and a bridge in entity mode."""
    async with HaSite(tmp_path_factory.mktemp("ha-modes"), version=DEVICE_VERSION) as site:
        await site.add_gateway(CAPTURE, "e2m-modes", {**COMPAT, "HA_DISCOVERY_MODE": "entity"})
        yield site


async def seen(site: HaSite, gateway: Gateway) -> Seen:
    """The announced unique ids, Home Assistant's entities of the gateway and their states."""
    assert site.broker is not None
    assert site.api is not None
    announced = await unique_ids(site.broker.port, gateway.serial)
    registered = {e["unique_id"]: e for e in await site.entities(gateway)}
    states = await site.api.states()
    values = {
        u: states[e["entity_id"]]["state"]
        for u, e in registered.items()
        if e["entity_id"] in states
    }
    return Seen(announced, registered, values)


async def every_value(
    site: HaSite, gateway: Gateway, mode: str, *, switched: bool = True, timeout: float = 90
) -> Seen:
    """Wait until the announced configs are all of `mode` and every entity has its value, on
    two looks `SETTLE` s apart; after a switch, the first once the ghost sweep has run."""
    if switched:
        await asyncio.sleep(SETTLE)  # the sweep (every 5 s) removes what the bridge did not
    now, held = await seen(site, gateway), 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                topics = set(now.announced.values())
                in_mode = topics and all(("/device/" in t) == (mode == "device") for t in topics)
                held = held + 1 if in_mode and now.registered and not now.without_value else 0
                if held == 2:
                    return now
                await asyncio.sleep(SETTLE if held else 1)
                now = await seen(site, gateway)
    return now  # the caller's assertions show what did not get there


def entity_ids(seen: Seen) -> dict[str, str]:
    """Unique id -> entity id."""
    return {uid: entry["entity_id"] for uid, entry in seen.registered.items()}


def id_complaints(site: HaSite) -> list[str]:
    """Home Assistant's warnings and errors about unique ids or our discovery."""
    assert site.ha is not None
    return complaints(site.ha.log(), ABOUT_IDS)


async def test_entities_keep_their_values_across_mode_switches(site: HaSite) -> None:
    (gateway,) = site.gateways.values()
    first = await every_value(site, gateway, "entity", switched=False)
    assert first.without_value == []
    assert len(first.announced) > 100
    counts = {"announced": len(first.announced), "entity": len(first.values)}
    disabled: Counter[str] = Counter()  # device config -> its disabled entities
    for mode in ("device", "entity"):
        await site.restart_bridge(gateway, {**COMPAT, "HA_DISCOVERY_MODE": mode})
        now = await every_value(site, gateway, mode)
        assert now.without_value == [], f"{mode}: {len(now.without_value)} without a value"
        assert now.announced.keys() == first.announced.keys(), mode
        assert now.registered.keys() == first.announced.keys(), mode
        assert entity_ids(now) == entity_ids(first), mode  # the same entity ids, recreated
        counts[f"then {mode}"] = sum(1 for v in now.values.values() if v not in NO_VALUE)
        echoes = Counter(m[1] for line in id_complaints(site) if (m := ECHO.search(line)))
        problems = [line for line in id_complaints(site) if not ECHO.search(line)]
        assert problems == [], f"after the switch to {mode}:\n" + "\n".join(problems)
        assert all(echoes[device] <= disabled[device] for device in echoes), (echoes, disabled)
        if mode == "device":
            disabled = Counter(
                now.announced[uid].split("/")[-2]
                for uid, entry in now.registered.items()
                if entry["disabled_by"] is not None
            )
    print(
        f"\nHome Assistant {DEVICE_VERSION}: unique ids and entities with a value: {counts}; "
        f"its own warnings on removing device configs: {sum(echoes.values())}"
    )
