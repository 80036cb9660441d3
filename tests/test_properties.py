"""Bad input cannot crash the core: mutated real captures through the bridge's own edge.

Each example takes a real capture, breaks it (missing keys, wrong types, NaN, huge numbers,
negative counters, unicode and topic characters in serials) and feeds it through exactly the
code the bridge runs: pyenphase's firmware check, probe and updaters and the gateway client's
own readers (`GatewayClient`, over an in-memory transport instead of HTTP), then the snapshot,
the catalog and the publisher. Only `GatewayError` may come out of the edge, and nothing
invalid may reach the (recording) link.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import math
import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from xml.sax.saxutils import escape

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from pyenphase import Envoy
from pyenphase.exceptions import EnvoyAuthenticationRequired
from pyenphase.firmware import EnvoyFirmware
from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.catalog import derived
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayError, GatewayUnavailable
from envoy2mqtt.gateway.overlay import LaneReadings, merge_inverters
from envoy2mqtt.gateway.translate import translated
from envoy2mqtt.mqtt.discovery import gateway_device_id, unique_id
from envoy2mqtt.mqtt.publisher import GatewayPublisher, PublishOptions
from envoy2mqtt.mqtt.topics import Topics, sanitize
from envoy2mqtt.sim import Capture, load_capture
from envoy2mqtt.sim.capture import file_name
from tests.links import RecordingLink

BASE = "e2m"
PREFIX = "e2m-ha"
TOPICS = Topics(BASE, PREFIX)
SAFE_TOPIC = re.compile(r"[A-Za-z0-9_/-]+")
JSON_TOPICS = ("/event", "/summary", "/config")
CAPTURES = (
    "3.9.36",
    "7.6.175_with_cts",
    "8.2.4286_with_3cts_and_battery_split",
    "8.3.5169_ACB_inventory",
    "8.3.5169_with_generator",
)
LOADED = {name: load_capture(name) for name in CAPTURES}
FAST = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the input: a real capture, mutated ----------------------------------------------------------

Path_ = tuple[str | int, ...]

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.sampled_from([-1, -(10**12), 10**20, -(10**20), 10**400, 1e308, -1e308, 5e-324]),
    st.floats(),  # NaN and infinities included: the wire cannot carry them (invalid JSON)
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=16),
    st.sampled_from(["", " ", "+", "#", "a/b", "../..", "12+34#56", "\x00\x1f", "é-ñ-☀", "\u202e"]),
)


def paths(node: Any, here: Path_ = ()) -> Iterator[Path_]:
    """Every place in a JSON document, the root included."""
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*here, index))


def mutated(document: Any, where: Path_, value: Any, *, delete: bool) -> Any:
    """The document with the value at `where` replaced (or deleted)."""
    if not where:
        return value
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    if delete:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return document


def serial_fields(node: Any) -> Iterator[tuple[Any, str]]:
    """(container, key) of every field that holds a device serial number."""
    if isinstance(node, dict):
        for key, value in node.items():
            if "serial" in key.lower() and isinstance(value, str):
                yield node, key
            else:
                yield from serial_fields(value)
    elif isinstance(node, list):
        for value in node:
            yield from serial_fields(value)


def broken_capture(name: str, data: st.DataObject) -> tuple[dict[str, Any], str, set[str]]:
    """A capture's JSON documents with a few mutations, the serial /info will report, and
    every serial put in (words such as "NaN" may be published as they are)."""
    capture = LOADED[name]
    documents = {
        name: copy.deepcopy(recorded.document)
        for name, recorded in capture.recordings.items()
        if recorded.is_json
    }
    names = sorted(documents)
    for _ in range(data.draw(st.integers(min_value=0, max_value=4), label="mutations")):
        name = data.draw(st.sampled_from(names), label="document")
        where = data.draw(st.sampled_from(list(paths(documents[name]))), label="at")
        delete = bool(where) and data.draw(st.booleans(), label="delete")
        value = None if delete else data.draw(GARBAGE, label="value")
        documents[name] = mutated(documents[name], where, value, delete=delete)
    serials: set[str] = set()
    if data.draw(st.booleans(), label="hostile device serials"):
        name = data.draw(st.sampled_from(names), label="in document")
        for container, key in list(serial_fields(documents[name])):
            container[key] = data.draw(HOSTILE_TEXT, label=key)
            serials.add(container[key].strip())
    serial = data.draw(st.one_of(st.just(capture.serial), HOSTILE_TEXT), label="gateway serial")
    return documents, serial, {serial.strip(), *serials}


# -- the edge over an in-memory transport --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """What pyenphase and the gateway client read from an aiohttp response."""

    status: int
    body: bytes
    url: str

    async def read(self) -> bytes:
        """The body."""
        return self.body


@dataclass(slots=True)
class Replay:
    """A gateway answering from (mutated) documents instead of over HTTP."""

    capture: Capture
    documents: dict[str, Any]
    serial: str

    async def info(self) -> tuple[int, bytes]:
        """/info, with the serial this example reports."""
        body = self.capture.recordings["info"].body.decode()
        sn = f"<sn>{escape(self.capture.serial)}</sn>"
        return 200, body.replace(sn, f"<sn>{escape(self.serial)}</sn>").encode()

    async def request(self, endpoint: str, *_: object, **__: object) -> Reply:
        """One endpoint: the document as JSON (NaN and infinities as Python writes them)."""
        name = file_name(endpoint)
        recorded = self.capture.recordings.get(name)
        if recorded is None:
            return Reply(404, b'{"error": "404 - Not Found"}', endpoint)
        if recorded.status in (401, 403):
            raise EnvoyAuthenticationRequired(f"{endpoint}: {recorded.status}")
        if name in self.documents:
            return Reply(recorded.status, json.dumps(self.documents[name]).encode(), endpoint)
        return Reply(recorded.status, recorded.body, endpoint)


class ReplayFirmware(EnvoyFirmware):
    """pyenphase's /info check, reading the replay's /info."""

    def __init__(self, unused: aiohttp.ClientSession, replay: Replay) -> None:
        super().__init__(unused, "replay")
        self._replay = replay

    async def _get_info(self) -> tuple[int, bytes]:  # type: ignore[override]
        return await self._replay.info()


class ReplayClient(GatewayClient):
    """The bridge's gateway client, reading a `Replay` through pyenphase."""

    def __init__(self, envoy: Envoy) -> None:
        super().__init__("replay")
        self._replayed = envoy

    @property
    def envoy(self) -> Envoy:
        """The pyenphase object wired to the replay."""
        return self._replayed


class ReplayEnvoy(Envoy):
    """pyenphase's Envoy whose requests the replay answers (the session is never used)."""

    def __init__(self, replay: Replay, unused: aiohttp.ClientSession) -> None:
        super().__init__("replay", client=unused)
        self._replay = replay
        self._firmware = ReplayFirmware(unused, replay)

    async def request(
        self, endpoint: str, data: dict[str, Any] | None = None, method: str | None = None
    ) -> aiohttp.ClientResponse:
        return cast(aiohttp.ClientResponse, await self._replay.request(endpoint))

    async def probe_request(self, endpoint: str) -> aiohttp.ClientResponse:  # type: ignore[override]
        return await self.request(endpoint)


def replayed(replay: Replay, unused: aiohttp.ClientSession) -> Envoy:
    """An Envoy reading the replay."""
    return ReplayEnvoy(replay, unused)


async def connect(envoy: Envoy) -> None:
    """`GatewayClient.connect()` without authentication (the replay needs none)."""
    async with translated("reading /info"):
        await envoy.setup()
    async with translated("probing features"):
        await envoy.probe()


def noted(what: str) -> None:
    """Count what happened for hypothesis' statistics (nothing outside a hypothesis test)."""
    with contextlib.suppress(InvalidArgument):
        event(what)


async def read_like_the_bridge(replay: Replay) -> tuple[GatewayInfo, EnvoyData] | None:
    """Connect and read every lane as the bridge does; None where the edge said GatewayError."""
    async with aiohttp.ClientSession() as unused:
        client = ReplayClient(replayed(replay, unused))
        try:
            await connect(client.envoy)
        except GatewayError as err:
            noted(f"connect: {type(err).__name__}")
            return None
        info = client.info()
        data = EnvoyData()
        for read in (client.read_normal, client.read_inverters):
            try:
                data = merge_inverters(data, await read()) if data.raw else await read()
            except GatewayError as err:
                noted(f"{read.__name__}: {type(err).__name__}")
        data = await overlay_fast_lanes(client, data)
        return info, data


async def overlay_fast_lanes(client: GatewayClient, data: EnvoyData) -> EnvoyData:
    """The fast and battery lanes' readings laid over `data`, as the bridge does."""
    lanes = LaneReadings()
    try:
        state: str | None = None
        if data.enpower is not None:
            state = await client.read_grid()
        elif data.collar is not None:
            state = await client.read_collar()
        lanes.grid = (1.0, state) if state is not None else None
        if any(meter is not None for meter in data.ctmeters.values()):
            lanes.meters = (1.0, await client.read_meters())
        if data.encharge_aggregate is not None:
            combined = data.battery_aggregate is not None
            lanes.battery = (1.0, await client.read_battery(combined=combined))
    except GatewayError as err:
        noted(f"fast lanes: {type(err).__name__}")
    return lanes.over(data)


def publish(
    info: GatewayInfo, data: EnvoyData, options: PublishOptions | None = None
) -> list[tuple[str, bytes]]:
    """Snapshot -> catalog -> publisher, twice (a change, then a reconnect), and recorded."""
    link = RecordingLink()
    publisher = GatewayPublisher(link, TOPICS, info, options or PublishOptions())
    now = datetime.now(UTC)
    extra = derived.observe(derived.BatteryIntegrator(), data, now)
    publisher.publish_snapshot(Snapshot(info, data, now, None, extra))
    publisher.set_available(True)
    publisher.publish_snapshot(Snapshot(info, data, datetime.now(UTC), None, extra))
    publisher.republish()
    publisher.set_available(False)
    return [(sent.topic, sent.payload) for sent in link.sent]


# -- what may be published -----------------------------------------------------------------------


def assert_valid(topic: str, payload: bytes, verbatim: Set[str] = frozenset()) -> None:
    """Topics only [A-Za-z0-9_/-] below the base; payloads plain finite numbers or words.

    `verbatim`: texts the gateway sent that are published as they are, even "NaN".
    """
    assert SAFE_TOPIC.fullmatch(topic), topic
    assert topic.startswith((f"{BASE}/", f"{PREFIX}/")), topic
    assert "//" not in topic, topic
    assert not topic.endswith("/"), topic
    if topic.endswith(JSON_TOPICS):
        if payload:  # an empty retained config removes an entity
            orjson.loads(payload)  # strict: no NaN, no Infinity
        return
    text = payload.decode("utf-8")
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    assert math.isfinite(number) or text in verbatim, (topic, text)
    assert text, topic
    assert text.isprintable(), (topic, text)
    assert text == text.strip(), (topic, text)


def check_messages(messages: list[tuple[str, bytes]], verbatim: Set[str] = frozenset()) -> None:
    """Every message valid; no unique id used by two configs."""
    for topic, payload in messages:
        assert_valid(topic, payload, verbatim)
    configs = {t: orjson.loads(p) for t, p in messages if t.endswith("/config") and p}
    owners: dict[str, str] = {}
    for topic, config in configs.items():
        ids = [e.get("unique_id") for e in config.get("cmps", {}).values()] or [
            config.get("unique_id")
        ]
        for identifier in ids:
            assert isinstance(identifier, str), topic
            assert SAFE_TOPIC.fullmatch(identifier), identifier
            assert owners.setdefault(identifier, topic) == topic, identifier


# -- the properties ------------------------------------------------------------------------------


@FAST
@given(st.sampled_from(CAPTURES), st.data())
def test_mutated_captures_never_escape_the_edge_or_publish_garbage(
    name: str, data: st.DataObject
) -> None:
    documents, serial, verbatim = broken_capture(name, data)
    read = asyncio.run(read_like_the_bridge(Replay(LOADED[name], documents, serial)))
    if read is None:
        return
    check_messages(publish(*read), verbatim)


# NaN and infinities cannot come over the wire (orjson refuses them), but arithmetic on huge
# numbers makes them, so they are put straight into pyenphase's number fields
NUMBER_GARBAGE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**30, -(10**30), -1, -1.5e308, 1e308]),
    st.floats(),
    st.integers(min_value=-(2**64), max_value=2**64),
)


def is_number(value: object) -> bool:
    """A JSON number as pyenphase keeps it (bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def models(data: Any, here: str = "") -> Iterator[tuple[str, Any]]:
    """(path, pyenphase model) of every dataclass inside the data, itself included."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        yield here, data
        for item in dataclasses.fields(data):
            yield from models(getattr(data, item.name), f"{here}.{item.name}")
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from models(value, f"{here}[{key!r}]")


def replaced(data: Any, target: Any, name: str, value: Any) -> Any:
    """`data` with field `name` of the model `target` (found by identity) set to `value`."""
    if data is target:
        return dataclasses.replace(data, **{name: value})
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        changes = {
            item.name: replaced(getattr(data, item.name), target, name, value)
            for item in dataclasses.fields(data)
        }
        return dataclasses.replace(data, **changes)
    if isinstance(data, dict):
        return {key: replaced(item, target, name, value) for key, item in data.items()}
    return data


GOOD: dict[str, tuple[GatewayInfo, EnvoyData]] = {}


def good_reading(name: str) -> tuple[GatewayInfo, EnvoyData]:
    """The capture as the bridge reads it when nothing is wrong (cached)."""
    if name not in GOOD:
        capture = LOADED[name]
        documents = {n: r.document for n, r in capture.recordings.items() if r.is_json}
        read = asyncio.run(read_like_the_bridge(Replay(capture, documents, capture.serial)))
        assert read is not None, name
        GOOD[name] = read
    return GOOD[name]


@FAST
@given(st.sampled_from(CAPTURES), st.data())
def test_nan_huge_and_negative_numbers_in_models_publish_nothing_invalid(
    name: str, data: st.DataObject
) -> None:
    info, reading = good_reading(name)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6), label="changes")):
        numbers = [
            (path, model, item.name)
            for path, model in models(reading)
            if path
            for item in dataclasses.fields(model)
            if is_number(getattr(model, item.name))
        ]
        path, model, item = data.draw(st.sampled_from(numbers), label="field")
        reading = replaced(reading, model, item, data.draw(NUMBER_GARBAGE, label=f"{path}.{item}"))
    check_messages(publish(info, reading))


HOSTILE_SERIALS = ["12+34", "12#34", "12/34", "12\x0034", "\x1b[31m", "☀☀", " ", "+/#", "NaN"]


@pytest.mark.parametrize("mode", ["entity", "device"])
@pytest.mark.parametrize("serial", HOSTILE_SERIALS)
def test_hostile_gateway_serials_stay_inside_their_topic_level(serial: str, mode: str) -> None:
    info, reading = good_reading("8.2.4286_with_3cts_and_battery_split")
    messages = publish(
        dataclasses.replace(info, serial=serial), reading, PublishOptions(ha_discovery_mode=mode)
    )
    check_messages(messages, {serial.strip()})
    levels = {topic.split("/")[1] for topic, _ in messages if topic.startswith(f"{BASE}/")}
    assert len(levels - {"bridge"}) == 1, levels


@given(HOSTILE_TEXT)
def test_sanitize_leaves_one_safe_non_empty_level(text: str) -> None:
    cleaned = sanitize(text)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cleaned), cleaned
    assert sanitize(cleaned) == cleaned  # stable: the same serial always gives the same topic


@given(HOSTILE_TEXT, HOSTILE_TEXT)
def test_topics_and_unique_ids_from_hostile_names_are_safe(serial: str, name: str) -> None:
    path = f"inverter/{sanitize(name)}/power"
    for topic in (
        TOPICS.gateway(serial),
        TOPICS.availability(serial),
        TOPICS.state(serial, path),
        TOPICS.event(serial),
        TOPICS.entity_config("sensor", serial, path),
        TOPICS.device_config(gateway_device_id(serial)),
    ):
        assert SAFE_TOPIC.fullmatch(topic), topic
        assert "//" not in topic, topic
    for identifier in (unique_id(serial, path), gateway_device_id(serial)):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", identifier), identifier


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12+34", "12_34"),
        ("a/b#c", "a_b_c"),
        ("\x00\x1f", "unknown"),
        ("  x  ", "x"),
        ("é", "unknown"),
    ],
)
def test_sanitize_examples(text: str, expected: str) -> None:
    assert sanitize(text) == expected


async def test_garbage_pyenphase_cannot_parse_comes_out_as_gateway_unavailable() -> None:
    capture = LOADED["8.2.4286_with_3cts_and_battery_split"]
    documents = {n: copy.deepcopy(r.document) for n, r in capture.recordings.items() if r.is_json}
    replay = Replay(capture, documents, capture.serial)
    async with aiohttp.ClientSession() as unused:
        client = ReplayClient(replayed(replay, unused))
        await connect(client.envoy)
        documents["production.json"] = {"production": "not a list", "consumption": 7}
        documents["ivp_ensemble_secctrl"] = ["not", "an", "object"]
        documents["ivp_ensemble_power"] = {"devices:": [{"no serial": True}]}
        with pytest.raises(GatewayUnavailable, match=r"unexpected data|not JSON"):
            await client.read_normal()
        with pytest.raises(GatewayUnavailable, match="unexpected data"):
            await client.read_battery()
