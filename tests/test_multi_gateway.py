"""Several gateways in one bridge: configured by GATEWAYS_FILE, each isolated from the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import yaml

from envoy2mqtt.settings import Cadence, Settings, load_settings
from envoy2mqtt.sim import Fault, SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder
from tests.harness import running

# One gateway per firmware family: plain HTTP + Digest, HTTPS + JWT with CTs, and a
# battery site whose Enpower relay reports the grid.
LEGACY = "3.9.36"
CTS = "7.6.175_with_cts"
BATTERY = "8.2.4286_with_3cts_and_battery_split"

POLL = 5.0  # the flat POLL_INTERVAL, which entries without their own cadence inherit
GRID_WITHIN = 6.0  # fast lane 1 s, two agreeing reads (GRID_DEBOUNCE), plus slack


def _noon_offset() -> float:
    """A UTC offset that puts the simulated house at local noon, so production moves."""
    return 12 * 3600 - time.time() % 86_400


def test_listed_gateways_inherit_the_flat_cadence(tmp_path: Path) -> None:
    path = tmp_path / "gateways.yaml"
    path.write_text(
        "gateways:\n"
        "  - host: 127.0.0.1:1\n"
        "  - host: 127.0.0.1:2\n    cadence: {fast: 2}\n"
        "  - host: 127.0.0.1:3\n    cadence: {normal: 30, quiet_start: null}\n"
    )
    settings = load_settings(
        _env_file=None,
        gateways_file=str(path),
        poll_interval=20,
        fast_interval=0.5,
        battery_interval=10,
        inverter_interval=600,
        quiet_window="01:00-01:30",
    )
    flat = settings.cadence()
    first, second, third = settings.gateway_list()
    assert first.cadence == flat
    assert second.cadence == flat.model_copy(update={"fast": 2.0})
    assert third.cadence.normal == 30
    assert third.cadence.quiet_start is None
    assert (third.cadence.fast, third.cadence.inverters) == (0.5, 600)
    assert flat != Cadence()  # the flat settings really differ from the defaults


def test_single_gateway_still_uses_the_flat_cadence() -> None:
    settings = load_settings(_env_file=None, envoy_host="127.0.0.1:1", poll_interval=20)
    (gateway,) = settings.gateway_list()
    assert gateway.cadence.normal == 20


@asynccontextmanager
async def three_gateways() -> AsyncIterator[dict[str, SimulatedGateway]]:
    """The three simulated gateways, drifting as at midday."""
    offset = _noon_offset()
    async with AsyncExitStack() as stack:
        gateways = {
            name: await stack.enter_async_context(
                SimulatedGateway(capture=capture, drift=True, seed=7, utc_offset_s=offset)
            )
            for name, capture in (("legacy", LEGACY), ("cts", CTS), ("battery", BATTERY))
        }
        yield gateways


def write_gateways_file(path: Path, gateways: dict[str, SimulatedGateway]) -> Path:
    """The documented GATEWAYS_FILE format: a `gateways:` list of host, name, token, cadence."""
    entries: list[dict[str, object]] = []
    for name, gateway in gateways.items():
        entry: dict[str, object] = {"host": gateway.host, "name": name}
        if gateway.uses_tls:
            entry["token"] = gateway.make_token()
        if name == "battery":
            entry["cadence"] = {"battery": 10}  # its own; the rest comes from the flat settings
        entries.append(entry)
    path.write_text(yaml.safe_dump({"gateways": entries}), encoding="utf-8")
    return path


def multi_settings(gateways_file: Path, port: int, base: str, state_dir: Path) -> Settings:
    """Bridge settings reading the gateways from the file (no .env, no environment)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        gateways_file=gateways_file,
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_base_topic=base,
        ha_discovery_prefix=f"{base}-ha",
        ha_status_topic=f"{base}-ha/status",
        state_dir=state_dir,
        quiet_window="off",
        poll_interval=POLL,
        request_timeout=2,
    )


def _arrived(records: list[Record], topic: str, payload: bytes, after: float) -> bool:
    return any(r.topic == topic and r.payload == payload and r.t >= after for r in records)


async def _flip_grid(
    recorder: Recorder, gateway: SimulatedGateway, topic: str, *, on: bool
) -> float:
    """Flip the grid relay and return how long the bridge took to publish it."""
    payload = b"on-grid" if on else b"off-grid"
    flipped = time.monotonic()
    assert gateway.set_grid(on)
    records = await recorder.wait_for(
        lambda r: _arrived(r, topic, payload, flipped), timeout=GRID_WITHIN
    )
    arrival = next(
        r.t for r in records if r.topic == topic and r.payload == payload and r.t >= flipped
    )
    return arrival - flipped


def _state_published_after(records: list[Record], root: str, after: float) -> bool:
    """A state value (not availability) of the gateway under `root` published after `after`."""
    return any(
        r.topic.startswith(root) and not r.topic.endswith("/availability") and r.t >= after
        for r in records
    )


async def _polled_by(gateway: SimulatedGateway, path: str, count: int, deadline: float) -> bool:
    """Whether the gateway has answered `path` `count` times in all by `deadline` (monotonic)."""
    while gateway.stats.requests[path] < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.mark.slow
@pytest.mark.parametrize("fault", [Fault.TIMEOUT, Fault.DOWN])
async def test_one_failing_gateway_does_not_hold_up_the_others(
    fault: Fault, mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with three_gateways() as sims:
        gateways_file = write_gateways_file(tmp_path / "gateways.yaml", sims)
        settings = multi_settings(gateways_file, port, unique_prefix, tmp_path / "state")
        cadences = {g.name: g.cadence for g in settings.gateway_list()}
        assert cadences["legacy"].normal == POLL  # inherited from the flat settings
        assert (cadences["battery"].battery, cadences["battery"].normal) == (10, POLL)

        roots = {name: f"{unique_prefix}/{sim.serial}/" for name, sim in sims.items()}
        availability = {name: root + "availability" for name, root in roots.items()}
        grid = roots["battery"] + "grid_status"
        async with (
            Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(
                lambda r: (
                    all(_arrived(r, t, b"online", 0) for t in availability.values())
                    and _arrived(r, grid, b"on-grid", 0)
                ),
                timeout=30,
            )

            # One gateway fails; the other two carry on at their own cadence.
            failing = sims["cts"]
            failing.set_fault(fault)
            failed_at = time.monotonic()
            polls_before = sims["legacy"].stats.requests["/api/v1/production"]
            latencies = [
                await _flip_grid(recorder, sims["battery"], grid, on=False),
                await _flip_grid(recorder, sims["battery"], grid, on=True),
            ]
            await recorder.wait_for(
                lambda r: _arrived(r, availability["cts"], b"offline", failed_at), timeout=20
            )
            await recorder.wait_for(
                lambda r: _state_published_after(r, roots["legacy"], failed_at),
                timeout=2 * POLL,
            )
            legacy_polling = await _polled_by(
                sims["legacy"], "/api/v1/production", polls_before + 3, failed_at + 3 * POLL + 2
            )

            # The failing gateway comes back on its own once the fault clears.
            failing.set_fault(Fault.NONE)
            cleared_at = time.monotonic()
            await recorder.wait_for(
                lambda r: _arrived(r, availability["cts"], b"online", cleared_at), timeout=40
            )
            latencies.append(await _flip_grid(recorder, sims["battery"], grid, on=False))
            stopping = time.monotonic()

    assert max(latencies) < GRID_WITHIN
    assert legacy_polling, "the legacy gateway was not polled every POLL seconds"
    for name in ("legacy", "battery"):
        early = [r.payload for r in recorder.on(availability[name]) if r.t < stopping]
        assert b"offline" not in early, (name, early)
    assert _state_published_after(recorder.records, roots["cts"], cleared_at)
