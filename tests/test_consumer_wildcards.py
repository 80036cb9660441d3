"""The README's wildcard table, held to what a real subscriber receives from the real bridge.

The table (Topics: "What a wildcard subscription delivers") is read from the README itself, so
an edit to it without the matching behaviour fails here, and so does a wildcard the README
mentions elsewhere (a Node-RED flow, an example) without a row in the table.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiomqtt

from envoy2mqtt.mqtt.summary import MAX_PACKET, packet_size
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder
from tests.harness import bridge_settings, running

README: Final = Path(__file__).resolve().parents[1] / "README.md"
BATTERY_CAPTURE: Final = "8.2.4286_with_3cts_and_battery_split"
HEADER: Final = "| subscribe to | JSON objects on | plain values (a number or a word) on |"
ALL: Final = "all"  # the JSON column's word for every topic on the filter
JSON_NUMBER: Final = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
# a topic filter with a wildcard level, under the default base topic or its placeholder
MENTIONED: Final = re.compile(r"(?:envoy2mqtt|<base>)(?:/[\w<>.+#-]+)+")
EXAMPLE_SERIAL: Final = re.compile(r"^\d{12}$")
NAMED: Final = re.compile(r"`([^`]+)`")  # a filter or a topic named in a table cell
# a broker ACL's permission line (`topic write envoy2mqtt/+/set`): not a subscription
ACL_LINE: Final = re.compile(
    r"^\s*(?:topic|pattern)\s+(?:read|write|readwrite)\s+\S+$", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class Promise:
    """One row of the table: what `topic_filter` delivers."""

    topic_filter: str  # with <base> and <serial> placeholders
    json_on: frozenset[str]  # topics named as JSON, below the filter's fixed part
    all_json: bool  # "all": every topic on this filter carries JSON
    plain_on: frozenset[str]  # topics named as plain
    plain: bool  # whether plain values arrive at all ("none": they do not)

    def concrete(self, base: str, serial: str) -> str:
        """The filter for this base topic and gateway."""
        return self.topic_filter.replace("<base>", base).replace("<serial>", serial)

    def topics(self, names: frozenset[str], base: str, serial: str) -> set[str]:
        """Named topics in full: the filter's fixed part (up to a wildcard), then the name."""
        fixed = self.concrete(base, serial).split("+")[0].split("#")[0]
        return {fixed + name.replace("<serial>", serial) for name in names}

    def is_json(self, topic: str, base: str, serial: str) -> bool:
        """Whether the README says `topic` carries JSON on this filter."""
        return self.all_json or topic in self.topics(self.json_on, base, serial)


def promises(readme: str) -> list[Promise]:
    """The wildcard table's rows, as the README states them."""
    lines = readme.splitlines()
    start = lines.index(HEADER) + 2  # past the header and its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        filters, json_on, plain = (cell.strip() for cell in line.strip("|").split(" | "))
        rows += [
            Promise(
                topic_filter=f,
                json_on=frozenset(NAMED.findall(json_on)),
                all_json=json_on == ALL,
                plain_on=frozenset(NAMED.findall(plain)),
                plain=not plain.startswith("none"),
            )
            for f in NAMED.findall(filters)
        ]
    return rows


def mentioned_wildcards(readme: str) -> set[str]:
    """Every topic filter with a wildcard the README mentions, in the table's placeholders."""
    found = set()
    for match in MENTIONED.findall(ACL_LINE.sub("", readme)):
        levels = ["<base>", *match.split("/")[1:]]
        if not {"+", "#"} & set(levels):
            continue
        levels = ["<serial>" if EXAMPLE_SERIAL.match(level) else level for level in levels]
        found.add("/".join(levels))
    return found


async def command(host: str, port: int, topic: str, payload: bytes) -> None:
    """Send one command (not retained), as a user's automation would."""
    async with aiomqtt.Client(host, port) as client:
        await client.publish(topic, payload, qos=1)


def is_plain(payload: bytes) -> bool:
    """One number (JSON's grammar) or one line of text that is no JSON document at all."""
    text = payload.decode()
    if not text or "\n" in text:
        return False
    if JSON_NUMBER.fullmatch(text):
        return True
    try:
        json.loads(text)
    except ValueError:
        return True
    return False  # an object, a list, a quoted string, true, false or null


def is_object(payload: bytes) -> bool:
    """A JSON object."""
    try:
        return isinstance(json.loads(payload), dict)
    except ValueError:
        return False


def shown(promise: Promise, base: str, serial: str) -> Callable[[list[Record]], bool]:
    """A Recorder predicate: every topic the row names, and some plain value, have arrived."""
    named = promise.topics(promise.json_on | promise.plain_on, base, serial)

    def holds(records: list[Record]) -> bool:
        plain_seen = any(not promise.is_json(r.topic, base, serial) for r in records)
        return (
            bool(records)
            and named <= {r.topic for r in records}
            and (plain_seen or not promise.plain)
        )

    return holds


def readme_summary_fields() -> frozenset[str]:
    """The fields of the example summary the README's ESP32 section shows."""
    found = re.search(r'^\s+(\{"pv":.*\})\s*$', README.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, "the README shows no example summary"
    return frozenset(json.loads(found.group(1)))


def test_every_wildcard_the_readme_mentions_is_in_the_table() -> None:
    readme = README.read_text(encoding="utf-8")
    table = {p.topic_filter for p in promises(readme)}
    assert {"<base>/<serial>/+", "<base>/+/event"} <= table
    assert mentioned_wildcards(readme) <= table


async def test_each_documented_wildcard_delivers_what_the_readme_says(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    table = promises(README.read_text(encoding="utf-8"))
    host, port, base = mosquitto_session.host, mosquitto_session.port, unique_prefix
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        serial = gateway.serial
        # with controls on, so the `response` rows have something to show
        settings = bridge_settings(gateway, port, base, tmp_path, controls="battery")
        summary = f"{base}/{serial}/summary"
        async with contextlib.AsyncExitStack() as stack:
            recorders = [
                await stack.enter_async_context(Recorder(host, port, p.concrete(base, serial)))
                for p in table
            ]
            displays = await stack.enter_async_context(Recorder(host, port, summary))
            await stack.enter_async_context(running(settings))
            full = readme_summary_fields()
            await displays.wait_for(
                lambda r: any(frozenset(json.loads(x.payload)) == full for x in r), timeout=20
            )
            gateway.set_grid(False)  # an event, so the `event` rows have something to show
            await command(host, port, f"{base}/{serial}/set/battery_reserve_soc", b"30")
            for promise, recorder in zip(table, recorders, strict=True):
                await recorder.wait_for(shown(promise, base, serial), timeout=10)

    for promise, recorder in zip(table, recorders, strict=True):
        for record in recorder.records:
            if promise.is_json(record.topic, base, serial):
                assert is_object(record.payload), (promise.topic_filter, record)
            else:
                assert promise.plain, (promise.topic_filter, record)
                assert is_plain(record.payload), (promise.topic_filter, record)
    # the ESP32 section: the whole packet, topic included, fits PubSubClient's 256 bytes, and
    # carries the fields its example shows (all of them on a site with a battery)
    sizes = [packet_size(r.topic, r.payload.decode()) for r in displays.records]
    assert max(sizes) < MAX_PACKET
    # online in seconds, complete later: the first summaries carry what is known already (the
    # grid, read before the slow pages); from the first full reading on, every field is there
    fields = [frozenset(json.loads(r.payload)) for r in displays.records]
    assert full in fields
    since = fields.index(full)
    assert set(fields[since:]) == {full}
    assert all(early < full for early in fields[:since])
