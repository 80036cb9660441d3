"""Node-RED in the loop: the README's own flows, in a real Node-RED, fed by the real bridge.

Node-RED 4.1 is installed from npm into a cache (tests/nodered/install.py) and runs headless on
127.0.0.1 next to a real mosquitto; the simulated gateway (real HTTPS) feeds the bridge, and a
grid outage on it must come out of the README's load-shedding flow as Tasmota commands.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from envoy2mqtt.settings import Settings
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running
from tests.nodered.flows import Node, imported, readme_flows, tap
from tests.nodered.install import Installation, ensure_installed
from tests.nodered.runner import NodeRed

README: Final = Path(__file__).resolve().parents[1] / "README.md"
BATTERY_CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"
JSON_NUMBER: Final = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
# what the README's Node-RED paragraph says arrives as a parsed object
JSON_TOPICS: Final = ("/summary", "/event", "/bridge/info")


@pytest.fixture(scope="session")
def node_red() -> Installation:
    """Node-RED 4.1, installed once into the cache."""
    installation = ensure_installed()
    print(f"Node-RED {installation.version} in {installation.root} ({installation.seconds} s)")
    return installation


def loose_ends(nodes: list[Node]) -> Iterator[tuple[Node, int]]:
    """Each `mqtt in` node, and each output of a README node that is wired to nothing."""
    for node in nodes:
        if node["type"] == "mqtt in":
            yield node, 0
        for output, wired in enumerate(node.get("wires", [])):
            if not wired and node["type"] != "mqtt in":
                yield node, output


def with_taps(nodes: list[Node]) -> list[Node]:
    """`nodes` plus a tap on every loose end, named `<node id>.<output>`."""
    taps = [tap(f"{node['id']}.{output}", node, output) for node, output in loose_ends(nodes)]
    return nodes + taps


def seen_by(red: NodeRed, name: str) -> list[dict[str, object]]:
    """The messages one tap logged."""
    return [t for t in red.taps() if t["tap"] == name]


@dataclass(frozen=True, slots=True)
class ReadmeFlows:
    """The README's flows, imported, and the nodes the test watches."""

    nodes: list[Node]
    events_in: str  # the `mqtt in` node on the event topic
    values_in: str  # the `mqtt in` node on the gateway-level wildcard
    split: str  # the switch after it: JSON or plain?
    base: str  # the base topic the flows subscribe to
    commands: set[str]  # what the load-shedding flow publishes to


def readme_flows_for(broker: Mosquitto) -> ReadmeFlows:
    """The README's flows as loaded into Node-RED, their broker moved to `broker`."""
    nodes = imported(readme_flows(README.read_text(encoding="utf-8")), broker.host, broker.port)
    inputs = [n for n in nodes if n["type"] == "mqtt in"]
    assert {n["datatype"] for n in inputs} == {"auto-detect"}  # as the README says
    (events_in,) = (n for n in inputs if n["topic"].endswith("/event"))
    (values_in,) = (n for n in inputs if n["topic"].endswith("/+/+"))
    (split,) = values_in["wires"][0]
    commands = {n["topic"] for n in nodes if n["type"] == "mqtt out"}
    assert commands, "the load-shedding flow switches nothing"
    base = events_in["topic"].split("/")[0]
    return ReadmeFlows(nodes, events_in["id"], values_in["id"], split, base, commands)


async def outage_through(
    red: NodeRed, raw: Recorder, flows: ReadmeFlows, gateway: SimulatedGateway, settings: Settings
) -> float:
    """Run the bridge until Node-RED has its values, fail the grid, stop; when it failed."""
    summary, serial = (f"{flows.base}/{gateway.serial}/{k}" for k in ("summary", "serial"))
    state = f"{flows.base}/bridge/state"
    async with running(settings):
        await red.wait_for(
            lambda r: {summary, serial, f"{flows.base}/bridge/info"} <= topics(r, flows.values_in),
            timeout=30,
        )
        failed = time.monotonic()
        gateway.set_grid(False)
        await red.wait_for(lambda r: bool(seen_by(r, f"{flows.events_in}.0")), timeout=15)
    # the bridge's last word: both subscribers have seen everything it published
    await raw.wait_for(lambda r: any((x.topic, x.payload) == (state, b"offline") for x in r))
    await red.wait_for(
        lambda r: any(
            (t["topic"], t["payload"]) == (state, "offline")
            for t in seen_by(r, f"{flows.values_in}.0")
        )
    )
    return failed


def topics(red: NodeRed, mqtt_in: str) -> set[object]:
    """The topics an `mqtt in` node has passed on."""
    return {t["topic"] for t in seen_by(red, f"{mqtt_in}.0")}


def _grid_outage(payload: object) -> bool:
    return isinstance(payload, dict) and (payload["type"], payload["to"]) == ("grid", "off-grid")


def check_plain_and_json(red: NodeRed, raw: Recorder, values_in: str, split: str) -> None:
    """Objects on the JSON topics, numbers where the wire says a number, strings otherwise."""
    on_wire: dict[str, set[bytes]] = {}
    for record in raw.records:
        on_wire.setdefault(record.topic, set()).add(record.payload)
    received = seen_by(red, f"{values_in}.0")
    assert len(received) > 50
    for message in received:
        topic, kind, value = str(message["topic"]), message["type"], message["payload"]
        if topic.endswith(JSON_TOPICS):
            assert kind == "object", message
            continue
        texts = {p.decode() for p in on_wire[topic]}
        if kind == "number":
            assert any(JSON_NUMBER.fullmatch(t) and float(t) == value for t in texts), message
        else:
            assert kind == "string", message
            assert value in texts, message
            assert not JSON_NUMBER.fullmatch(str(value)), message
    kinds = {m["type"] for m in received}
    assert kinds == {"object", "number", "string"}

    # the README's values flow: output 1 the objects, output 2 everything else
    objects, plain = seen_by(red, f"{split}.0"), seen_by(red, f"{split}.1")
    assert {m["type"] for m in objects} == {"object"}
    assert {m["type"] for m in plain} == {"number", "string"}
    assert len(objects) + len(plain) == len(received)


@pytest.mark.timeout(600)  # the first run installs Node-RED (about 10 s on a warm npm cache)
async def test_readme_flows_in_node_red(
    node_red: Installation, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    flows = readme_flows_for(mosquitto)
    async with (
        NodeRed(node_red, tmp_path / "node-red") as red,
        Recorder(mosquitto.host, mosquitto.port, f"{flows.base}/+/+") as raw,
        Recorder(mosquitto.host, mosquitto.port, "cmnd/#") as switched,
        SimulatedGateway(capture=BATTERY_CAPTURE) as gateway,
    ):
        await red.deploy(with_taps(flows.nodes))
        await red.wait_for(lambda r: "Connected to broker" in r.log(), timeout=20)
        settings = bridge_settings(gateway, mosquitto.port, flows.base, tmp_path / "bridge")
        outage = await outage_through(red, raw, flows, gateway, settings)
        await switched.wait_for(lambda r: {x.topic for x in r} >= flows.commands, timeout=10)

    # the load-shedding flow: one OFF per load, after the outage and not before
    assert {r.topic: r.payload for r in switched.records} == dict.fromkeys(flows.commands, b"OFF")
    assert len(switched.records) == len(flows.commands)
    assert all(r.t > outage for r in switched.records)
    events = seen_by(red, f"{flows.events_in}.0")
    assert all(e["type"] == "object" for e in events)
    assert any(_grid_outage(e["payload"]) for e in events)

    check_plain_and_json(red, raw, flows.values_in, flows.split)
    serial = f"{flows.base}/{gateway.serial}/serial"
    serials = [m for m in seen_by(red, f"{flows.values_in}.0") if m["topic"] == serial]
    # an all-digit word is a number to auto-detect, as the README warns
    assert {(m["type"], m["payload"]) for m in serials} == {("number", int(gateway.serial))}
    assert "[error]" not in red.log()
