"""The README's Node-RED flows, imported the way the editor's Import dialog imports them."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any, Final

Node = dict[str, Any]

TAB: Final = "readme-tab"
_JSON_BLOCK: Final = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_flows(readme: str) -> list[list[Node]]:
    """Every ```json block of the README that is a Node-RED flow (a list of nodes)."""
    flows = []
    for block in _JSON_BLOCK.findall(readme):
        parsed = json.loads(block)
        if isinstance(parsed, list) and all("id" in n and "type" in n for n in parsed):
            flows.append(parsed)
    return flows


def imported(flows: Iterable[list[Node]], broker_host: str, broker_port: int) -> list[Node]:
    """All `flows` on one tab, their broker moved to the test's; nothing else is changed.

    Like the editor, nodes with a position go on the tab and config nodes stay global; a
    config node several flows share (same id, same content) is imported once.
    """
    nodes: dict[str, Node] = {TAB: {"id": TAB, "type": "tab", "label": "README"}}
    for node in (copy.deepcopy(n) for flow in flows for n in flow):
        if "x" in node and "y" in node:
            node["z"] = TAB
        if node["type"] == "mqtt-broker":
            node.update(broker=broker_host, port=str(broker_port))
        if (known := nodes.get(node["id"])) is not None and known != node:
            raise ValueError(f"two README flows use the id {node['id']!r} for different nodes")
        nodes[node["id"]] = node
    return list(nodes.values())


def tap(name: str, after: Node, output: int = 0) -> Node:
    """A function node wired after `after` that logs each message as `TAP {json}` (a warning).

    The warning is Node-RED's own log line, so the test reads exactly what the flow saw.
    """
    code = (
        "const p = msg.payload;"
        "const type = p === null ? 'null' : Array.isArray(p) ? 'array' : "
        "Buffer.isBuffer(p) ? 'buffer' : typeof p;"
        f"node.warn('TAP ' + JSON.stringify({{tap: {json.dumps(name)}, topic: msg.topic, "
        "type: type, payload: p}));"
        "return null;"
    )
    node_id = f"tap-{name}"
    wires: list[list[str]] = after.setdefault("wires", [])
    while len(wires) <= output:
        wires.append([])
    wires[output].append(node_id)
    return {"id": node_id, "type": "function", "name": f"tap {name}", "func": code,
            "outputs": 0, "z": TAB, "x": 0, "y": 0, "wires": []}  # fmt: skip
