"""A real Home Assistant Core takes in what the real bridge publishes, as a user would see it.

One Home Assistant 2024.3.3 (installed once into its own cached virtualenv, see tests/ha)
runs next to a Mosquitto of its own; its MQTT integration is added through the config flow.
Three simulated gateways (legacy, CTs, batteries + Enpower) each have a bridge process of
their own, all running for the whole module; each test asserts about its own gateway,
through Home Assistant's REST and websocket APIs and its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio

from tests.cache import MARKER
from tests.ha.client import HomeAssistantApi
from tests.ha.documented import documented, find
from tests.ha.energy import energy_sources, validated
from tests.ha.install import VERSION, Installation, complete
from tests.ha.process import complaints
from tests.ha.recorder import states_rows
from tests.ha.site import Gateway, HaSite, Settled

pytestmark = [
    pytest.mark.ha,
    pytest.mark.asyncio(loop_scope="module"),
    # the first test also installs Home Assistant (about a minute), the Energy test waits
    # for the recorder's first 5-minute statistics
    pytest.mark.timeout(900),
]

CAPTURES: Final = {
    "legacy": "3.9.36",
    "metered_cts": "7.6.175_with_cts",
    "batteries": "8.2.4286_with_3cts_and_battery_split",
}
# What a discovery complaint looks like in Home Assistant's log: its MQTT loggers, the
# sensor platform's checks of our entities, or a message naming a discovery topic.
ABOUT_DISCOVERY: Final = re.compile(r"mqtt|discovery|homeassistant/|envoy", re.IGNORECASE)
# The README's Energy dashboard advice, per source, and which gateways can offer each.
ENERGY: Final = {
    "solar": ("production_energy_lifetime",),
    "grid": ("grid_import_energy", "grid_export_energy"),
    "battery": ("battery_discharged_energy", "battery_charged_energy"),
}
SOURCES: Final = {
    "legacy": {"solar"},
    "metered_cts": {"solar", "grid"},
    "batteries": {"solar", "grid", "battery"},
}
MEASURE_S: Final = 180.0  # the recorder measurement (issue 12, part 6)
WARM_UP_S: Final = 30.0  # discovery and the first full states are not the steady rate
NO_STATE: Final = ("unavailable", "unknown")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HaSite]:
    """Home Assistant, its broker, and a bridge on each of the three gateways."""
    async with HaSite(tmp_path_factory.mktemp("home-assistant")) as site:
        for i, capture in enumerate(CAPTURES.values()):
            await site.add_gateway(capture, f"e2m-ha{i}")
        yield site
        assert site.installation is not None
        assert site.ha is not None
        print(
            f"\nHome Assistant {VERSION}: install took {site.installation.seconds:.0f} s when "
            f"made; first start to RUNNING and onboarded {site.first_start:.1f} s; "
            f"starts {', '.join(f'{s:.1f} s' for s in site.ha.start_seconds)}"
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def settled(site: HaSite) -> dict[str, Settled]:
    """Each gateway's retained configs and entities, once every config is an entity."""
    return {kind: await site.settled(site.gateways[c]) for kind, c in CAPTURES.items()}


def entity(gateway: Gateway, component: str, path: str) -> str:
    """The entity id the README documents: `<component>.envoy_<serial>_<topic as a slug>`."""
    return f"{component}.envoy_{gateway.serial}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}"


def api(site: HaSite) -> HomeAssistantApi:
    """The site's Home Assistant API."""
    assert site.api is not None
    return site.api


def log_complaints(site: HaSite) -> list[str]:
    """Warnings and errors of Home Assistant about MQTT discovery, so far."""
    assert site.ha is not None
    return complaints(site.ha.log(), ABOUT_DISCOVERY)


async def test_an_interrupted_or_outdated_install_is_not_taken_as_done(
    site: HaSite, tmp_path: Path
) -> None:
    assert site.installation is not None
    marker = json.loads((site.installation.root / MARKER).read_text())
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert complete(tmp_path, VERSION) is None  # stopped before the marker was written
    (tmp_path / MARKER).write_text(json.dumps(marker))
    assert complete(tmp_path, VERSION) == Installation(tmp_path, VERSION, marker["seconds"])
    assert complete(tmp_path, "2024.3.2") is None
    (tmp_path / MARKER).write_text(json.dumps({**marker, "pins": []}))
    assert complete(tmp_path, VERSION) is None  # made before a pin was added


@pytest.mark.parametrize("kind", CAPTURES)
async def test_every_retained_config_is_an_entity_of_a_linked_device(
    site: HaSite, settled: dict[str, Settled], kind: str
) -> None:
    gateway, found = site.gateways[CAPTURES[kind]], settled[kind]
    problems = log_complaints(site)
    assert not problems, "Home Assistant complained:\n" + "\n".join(problems)
    assert len(found.configs) == len(found.entities) > 0
    assert {c["unique_id"] for c in found.configs.values()} == {
        e["unique_id"] for e in found.entities
    }
    devices = await api(site).command("config/device_registry/list")
    ours = {
        d["id"]: d
        for d in devices
        if any(i[1].startswith(f"envoy2mqtt_{gateway.serial}") for i in d["identifiers"])
    }
    (hub,) = [
        d for d in ours.values() if ["mqtt", f"envoy2mqtt_{gateway.serial}"] in d["identifiers"]
    ]
    subs = [d for d in ours.values() if d["id"] != hub["id"]]
    assert [d["name"] for d in subs if d["via_device_id"] != hub["id"]] == []
    announced = {c["device"]["identifiers"][0] for c in found.configs.values()}
    assert announced == {i[1] for d in ours.values() for i in d["identifiers"]}
    assert {e["device_id"] for e in found.entities} == ours.keys()
    gateway_level = [e for e in found.entities if e["device_id"] == hub["id"]]
    assert entity(gateway, "sensor", "production_power") in {e["entity_id"] for e in gateway_level}
    if kind == "batteries":
        assert len(subs) > 10  # inverters, batteries, CTs, the Enpower...
        assert entity(gateway, "binary_sensor", "grid_status") in {
            e["entity_id"] for e in gateway_level
        }


@pytest.mark.parametrize("kind", CAPTURES)
async def test_entities_are_what_the_readme_documents(
    site: HaSite, settled: dict[str, Settled], kind: str
) -> None:
    gateway, found = site.gateways[CAPTURES[kind]], settled[kind]
    rows = documented()
    by_unique_id = {c["unique_id"]: c for c in found.configs.values()}
    registry = await api(site).command(
        "config/entity_registry/get_entries", entity_ids=[e["entity_id"] for e in found.entities]
    )
    states = await api(site).states()
    wrong: list[str] = []
    for entry in found.entities:
        topic = by_unique_id[entry["unique_id"]]["state_topic"]
        path = topic.removeprefix(f"{gateway.base}/{gateway.serial}/")
        matches = find(rows, path)
        if len(matches) != 1:
            wrong.append(f"{path}: {len(matches)} rows of the README's reference match")
            continue
        doc, extended = matches[0], registry[entry["entity_id"]]
        state = states.get(entry["entity_id"])
        expected = {
            "entity_id": entity(gateway, doc.component, path),
            "device_class": doc.device_class,
            "state_class": doc.state_class,
            "diagnostic": doc.diagnostic,
            "disabled": doc.disabled,
        }
        seen = {
            "entity_id": entry["entity_id"],
            "device_class": extended["original_device_class"],
            "state_class": (extended["capabilities"] or {}).get("state_class"),
            "diagnostic": entry["entity_category"] == "diagnostic",
            "disabled": entry["disabled_by"] == "integration",
        }
        if state is not None and doc.component == "sensor":  # disabled ones have no state
            expected["unit"] = doc.unit
            seen["unit"] = state["attributes"].get("unit_of_measurement")
        if seen != expected:
            wrong.append(f"{path}: Home Assistant has {seen}, the README says {expected}")
    assert wrong == []
    enabled = [e for e in found.entities if e["disabled_by"] is None]
    assert all(e["entity_id"] in states for e in enabled)


@pytest.mark.parametrize("kind", CAPTURES)
async def test_energy_validation_accepts_the_recommended_sensors(
    site: HaSite, settled: dict[str, Settled], kind: str
) -> None:
    gateway = site.gateways[CAPTURES[kind]]
    assert settled[kind].entities
    states = await api(site).states()
    offered = {
        source
        for source, paths in ENERGY.items()
        if all(entity(gateway, "sensor", p) in states for p in paths)
    }
    assert offered == SOURCES[kind]
    chosen = {source: [entity(gateway, "sensor", p) for p in ENERGY[source]] for source in offered}
    await api(site).command(
        "energy/save_prefs", energy_sources=energy_sources(chosen), device_consumption=[]
    )
    validation = await validated(api(site))
    assert len(validation["energy_sources"]) == len(chosen)
    assert validation["energy_sources"] == [[] for _ in chosen], validation


async def test_recorder_rows_of_the_battery_site_are_measured(site: HaSite) -> None:
    gateway = site.gateways[CAPTURES["batteries"]]
    since = gateway.started + WARM_UP_S
    await asyncio.sleep(max(0.0, since + MEASURE_S + 2 - time.time()))  # +2: commit interval
    assert site.ha is not None
    rows = await asyncio.to_thread(
        states_rows, site.ha.database, gateway.serial, since, since + MEASURE_S
    )
    print("\n" + rows.report(f"Recorder rows, {gateway.capture}, {MEASURE_S:.0f} s after warm-up"))
    # the recorder keeps every entity that has a state (history and Energy need it)
    recorded = await asyncio.to_thread(
        states_rows, site.ha.database, gateway.serial, gateway.started, time.time()
    )
    enabled = [e["entity_id"] for e in await site.entities(gateway) if e["disabled_by"] is None]
    assert enabled
    assert [e for e in enabled if recorded.by_entity[e] == 0] == []
    assert rows.total > 0


async def test_after_a_restart_every_entity_is_back_with_a_state(site: HaSite) -> None:
    assert site.ha is not None
    states = await api(site).states()
    before = {g.capture: with_state(states, g) for g in site.gateways.values()}
    births = answered_births(site)
    await site.ha.restart(api(site))
    missing: dict[str, set[str]] = {}
    answered = births
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(90):  # Home Assistant sends its birth once it has started
            while True:
                states = await api(site).states()
                missing = {
                    c: ids - with_state(states, site.gateways[c]) for c, ids in before.items()
                }
                answered = answered_births(site)
                if not any(missing.values()) and all(answered[c] > births[c] for c in births):
                    break
                await asyncio.sleep(1)
    assert all(before.values())
    assert missing == {capture: set() for capture in before}
    assert all(answered[c] > births[c] for c in births), f"births answered {births} -> {answered}"
    problems = log_complaints(site)
    assert not problems, "Home Assistant complained:\n" + "\n".join(problems)


def with_state(states: dict[str, dict[str, Any]], gateway: Gateway) -> set[str]:
    """The gateway's entities that have a state (neither unavailable nor unknown)."""
    mine = f"envoy_{gateway.serial}_"
    return {
        entity_id
        for entity_id, state in states.items()
        if entity_id.partition(".")[2].startswith(mine) and state["state"] not in NO_STATE
    }


def answered_births(site: HaSite) -> dict[str, int]:
    """How often each bridge has answered Home Assistant's birth message, by its log."""
    line = "Home Assistant came online"
    return {g.capture: g.bridge_log().count(line) for g in site.gateways.values()}


async def test_a_grid_flip_changes_the_grid_status_entity(site: HaSite) -> None:
    gateway = site.gateways[CAPTURES["batteries"]]
    grid = entity(gateway, "binary_sensor", "grid_status")
    seen = [await grid_state(site, grid)]
    for on, expected in ((False, "off"), (True, "on")):
        gateway.sim.set_grid(on)
        async with asyncio.timeout(20):
            while seen[-1] != expected:
                await asyncio.sleep(0.2)
                seen.append(await grid_state(site, grid))
    assert seen[0] == "on"
    assert [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]] == ["on", "off", "on"]


async def grid_state(site: HaSite, entity_id: str) -> str:
    """The grid status entity's state in Home Assistant."""
    state = await api(site).state(entity_id)
    return "missing" if state is None else str(state["state"])
