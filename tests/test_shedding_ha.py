"""A real Home Assistant arms and disarms the bridge's load shedding and shows each load.

Home Assistant 2024.3.3 (cached, see tests/ha) with its MQTT integration, a Mosquitto, the
simulated gateway and the bridge run as a user runs it (the CLI, loads inline in `LOADS`).
The switch and the per-load sensor come from discovery; turning the switch off in Home
Assistant must stop the bridge shedding, turning it on during an outage must shed at once.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Recorder
from tests.ha.bridge import bridge_env, bridge_process
from tests.ha.client import HomeAssistantApi
from tests.ha.process import complaints
from tests.ha.site import HaSite
from tests.test_shedding_e2e import CAPTURE

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]  # the first run installs HA
ABOUT_US = re.compile(r"shedding|envoy", re.IGNORECASE)  # a complaint about our entities


async def state_of(api: HomeAssistantApi, entity_id: str) -> str | None:
    found: dict[str, Any] | None = await api.state(entity_id)
    return None if found is None else str(found["state"])


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling Home Assistant's REST API
            await asyncio.sleep(0.2)


async def test_home_assistant_switches_shedding_and_shows_the_load(tmp_path: Path) -> None:
    loads = {
        "loads": [
            {
                "name": "dryer",
                "tier": 1,
                "off": {"topic": "plugs/dryer", "payload": "OFF"},
                "on": {"topic": "plugs/dryer", "payload": "ON"},
            }
        ]
    }
    async with HaSite(tmp_path) as site, SimulatedGateway(capture=CAPTURE) as gateway:
        assert site.broker is not None
        assert site.api is not None
        api, port = site.api, site.broker.port
        env = bridge_env(gateway, port, "envoy2mqtt", tmp_path / "state")
        env |= {"LOADS": json.dumps(loads), "FAST_INTERVAL": "0.5"}
        switch = f"switch.envoy_{gateway.serial}_shedding_armed"
        sensor = f"sensor.envoy_{gateway.serial}_shedding_dryer"
        async with (
            Recorder("127.0.0.1", port, "plugs/#") as plugs,
            Recorder("127.0.0.1", port, "envoy2mqtt/shedding/#") as shedding,
            bridge_process(env, tmp_path / "bridge"),
        ):
            await until(lambda: _is(api, switch, "on"), timeout=120)
            assert await state_of(api, sensor) == "on"

            await api.rest("POST", "/api/services/switch/turn_off", {"entity_id": switch})
            armed = "envoy2mqtt/shedding/armed"
            await shedding.wait_for(lambda r: r[-1].topic == armed and r[-1].payload == b"off")
            await until(lambda: _is(api, switch, "off"))
            gateway.set_grid(False)
            await asyncio.sleep(3)  # disarmed: the outage sheds nothing
            assert plugs.records == []
            assert await state_of(api, sensor) == "on"

            await api.rest("POST", "/api/services/switch/turn_on", {"entity_id": switch})
            await plugs.wait_for(bool, timeout=10)  # armed during the outage: shed at once
            await until(lambda: _is(api, sensor, "shed"))
        assert [r.payload for r in plugs.records] == [b"OFF"]
        assert complaints(site.ha.log() if site.ha else "", ABOUT_US) == []


async def _is(api: HomeAssistantApi, entity_id: str, wanted: str) -> bool:
    return await state_of(api, entity_id) == wanted
