"""The README's Node-RED controls flow, in a real Node-RED, commanding the real bridge.

Node-RED 4.1 (tests/nodered, installed once into a cache) runs the flow as the README prints it,
its broker, serial and base topic moved to the test's; the inject node fires, the command goes
over a real mosquitto to the bridge (CONTROLS=all) and on to the simulated gateway, and the
response that is not `ok` comes out of the flow's filter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running
from tests.nodered.flows import Node, imported, tap
from tests.nodered.install import Installation, ensure_installed
from tests.nodered.runner import NodeRed

README: Final = Path(__file__).resolve().parents[1] / "README.md"
BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"  # optimised schedules on: mode ignored
# the controls flow is fenced as js, so the load-shedding test (every json flow) leaves it alone
FLOW_BLOCK: Final = re.compile(r"^```js\n(\[\{\"id\":\"ctl-.*?)^```", re.MULTILINE | re.DOTALL)


def controls_flow() -> list[Node]:
    """The README's controls flow, as printed."""
    (block,) = FLOW_BLOCK.findall(README.read_text(encoding="utf-8"))
    flow: list[Node] = json.loads(block)
    return flow


def moved(flow: list[Node], broker: Mosquitto, base: str, serial: str) -> list[Node]:
    """The flow imported on the test's broker, its topics on the test's base and serial."""
    nodes = imported([flow], broker.host, broker.port)
    for node in nodes:
        if "topic" in node and node["topic"].startswith("envoy2mqtt/"):
            node["topic"] = node["topic"].replace("envoy2mqtt/122238082763/", f"{base}/{serial}/")
            node["topic"] = node["topic"].replace("envoy2mqtt/", f"{base}/")
    return nodes


@pytest.fixture(scope="session")
def node_red() -> Installation:
    """Node-RED 4.1, installed once into the cache."""
    return ensure_installed()


@pytest.mark.timeout(600)  # the first run installs Node-RED
async def test_the_readme_controls_flow_commands_the_bridge(
    node_red: Installation, mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    flow = controls_flow()
    (inject,) = (n for n in flow if n["type"] == "inject")
    (command,) = (n for n in flow if n["type"] == "mqtt out")
    (responses,) = (n for n in flow if n["type"] == "mqtt in")
    assert (command["retain"], responses["datatype"]) == ("false", "auto-detect")
    async with (
        SimulatedGateway(capture=BATTERY) as gateway,
        NodeRed(node_red, tmp_path / "node-red") as red,
        Recorder(mosquitto.host, mosquitto.port, f"{unique_prefix}/#") as recorder,
    ):
        nodes = moved(flow, mosquitto, unique_prefix, gateway.serial)
        by_id = {n["id"]: n for n in nodes}
        taps = [tap("all", by_id[responses["id"]]), tap("not-ok", by_id["ctl-not-ok"])]
        await red.deploy(nodes + taps)
        await red.wait_for(lambda r: "Connected to broker" in r.log(), timeout=20)
        settings = bridge_settings(
            gateway, mosquitto.port, unique_prefix, tmp_path / "bridge", controls="all"
        )
        async with running(settings):
            root = f"{unique_prefix}/{gateway.serial}"
            marker = "/control_battery_mode/config"
            async with Recorder(mosquitto.host, mosquitto.port, f"{unique_prefix}-ha/#") as seen:
                await seen.wait_for(lambda r: any(x.topic.endswith(marker) for x in r), 30)
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{red.url}/inject/{inject['id']}") as fired,
            ):
                assert fired.status == 200
            await red.wait_for(lambda r: len(tapped(r, "not-ok")) >= 2, timeout=30)
        (sent,) = [r for r in recorder.records if r.topic == f"{root}/set"]
        assert json.loads(sent.payload) == {"battery_mode": "backup", "transaction": "evening"}
        assert not sent.retain
        # `pending` first (the write is on its way), then how it ended
        pending, response = tapped(red, "not-ok")
        assert pending["status"] == "pending"
        assert (response["status"], response["control"], response["transaction"]) == (
            "ignored",
            "battery_mode",
            "evening",
        )
        assert tapped(red, "all") == [pending, response]
        assert [(w.method, w.path) for w in gateway.write_log] == [("PUT", "/admin/lib/tariff")]
        assert "[error]" not in red.log()


def tapped(red: NodeRed, name: str) -> list[dict[str, Any]]:
    """The payloads one tap logged."""
    payloads = []
    for logged in red.taps():
        payload = logged["payload"]
        if logged["tap"] == name and isinstance(payload, dict):
            payloads.append(payload)
    return payloads
