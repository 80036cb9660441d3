"""Finding the gateway by mDNS: announced on loopback only, found, picked, and followed.

Every announcement here is made by a zeroconf instance bound to 127.0.0.1, and every finder
browses 127.0.0.1 only (MDNS_INTERFACES), so nothing is ever sent on a real network.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from envoy2mqtt.app import App
from envoy2mqtt.gateway.finder import (
    SERVICE,
    Found,
    GatewayFinder,
    NotFound,
    browsing,
    discover,
    find_one,
    is_auto,
)
from envoy2mqtt.settings import load_settings
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Record, Recorder
from tests.harness import bridge_settings, running

LOOPBACK = ["127.0.0.1"]
CAPTURE = "7.6.175_with_cts"  # HTTPS + JWT, as every gateway sold today


class Announcer:
    """Announces gateways as a real one does (TXT serialnum and protovers), on loopback only."""

    def __init__(self) -> None:
        self.zeroconf = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        self.infos: dict[str, AsyncServiceInfo] = {}

    def _info(self, serial: str, address: str, port: int, firmware: str) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE,
            f"envoy {serial}.{SERVICE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"serialnum": serial, "protovers": firmware, "txtvers": "1"},
            server=f"envoy-{serial}.local.",
        )

    async def announce(
        self, serial: str, address: str = "127.0.0.1", port: int = 443, firmware: str = "7.6.175"
    ) -> None:
        """Announce (or re-announce at a new address/port) the gateway with this serial."""
        info = self._info(serial, address, port, firmware)
        if serial in self.infos:
            await self.zeroconf.async_update_service(info)
        else:
            await self.zeroconf.async_register_service(info)
        self.infos[serial] = info

    async def close(self) -> None:
        await self.zeroconf.async_unregister_all_services()
        await self.zeroconf.async_close()


@asynccontextmanager
async def announcer() -> AsyncIterator[Announcer]:
    speaker = Announcer()
    try:
        yield speaker
    finally:
        await speaker.close()


def finding() -> AbstractAsyncContextManager[GatewayFinder]:
    return browsing(LOOPBACK)


def fake_serial() -> str:
    return "9" + str(uuid4().int)[:11]  # 12 digits, as real serials, unique per test


# --- pure -----------------------------------------------------------------------------------


def test_unset_or_auto_host_means_discovery() -> None:
    assert is_auto(None)
    assert is_auto("")
    assert is_auto(" Auto ")
    assert not is_auto("envoy.local")


def test_unset_envoy_host_is_auto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("ENVOY_HOST", raising=False)
    (gateway,) = load_settings(envoy_serial="122302045041").gateway_list()
    assert (gateway.host, gateway.serial) == ("auto", "122302045041")


def test_host_keeps_the_port_only_when_unusual() -> None:
    assert Found("1", "192.0.2.7", 80, "7.6.175", "envoy").host == "192.0.2.7"
    assert Found("1", "192.0.2.7", 443, None, "envoy").host == "192.0.2.7"
    assert Found("1", "127.0.0.1", 8443, None, "envoy").host == "127.0.0.1:8443"


# --- the finder on loopback -------------------------------------------------------------------


async def test_discover_lists_serial_address_and_firmware() -> None:
    serial = fake_serial()
    async with announcer() as speaker:
        await speaker.announce(serial, port=8443, firmware="8.2.4286")
        found = await discover(2.0, LOOPBACK)
    ours = [f for f in found if f.serial == serial]
    assert ours == [Found(serial, "127.0.0.1", 8443, "8.2.4286", f"envoy {serial}.{SERVICE}")]


async def test_picks_by_serial_and_refuses_to_guess_between_two() -> None:
    first, second = fake_serial(), fake_serial()
    async with announcer() as speaker, finding() as finder:
        await speaker.announce(first, port=1001)
        await speaker.announce(second, port=1002)
        assert (await finder.wait_for(second, timeout=5)).host == "127.0.0.1:1002"
        assert (await finder.wait_for(first, timeout=5)).host == "127.0.0.1:1001"
        with pytest.raises(NotFound, match=r"several gateways found .* set ENVOY_SERIAL"):
            await finder.wait_for(None, timeout=5)


async def test_a_missing_gateway_says_what_to_check() -> None:
    async with finding() as finder:
        with pytest.raises(NotFound) as caught:
            await finder.wait_for(fake_serial(), timeout=0.5)
    message = str(caught.value)
    assert "announced itself by mDNS" in message
    assert "ENVOY_HOST" in message


async def test_where_mdns_cannot_run_it_says_so() -> None:
    # an address no interface here has: binding to it fails, so nothing is ever sent
    with pytest.raises(NotFound, match=r"mDNS cannot run here .* check MDNS_INTERFACES"):
        await find_one(None, ["203.0.113.5"], timeout=1)


def test_listed_gateways_with_host_auto_are_found_by_serial(tmp_path: Path) -> None:
    gateways = [{"host": "auto", "serial": "122302045041"}, {"host": "192.0.2.7"}]
    settings = load_settings(
        _env_file=None, gateways=gateways, mqtt_host="127.0.0.1", state_dir=tmp_path
    )
    auto, fixed = App(settings).bridges
    assert auto.locator is not None
    assert auto.locator.serial == "122302045041"
    assert fixed.locator is None


async def test_a_new_address_is_followed() -> None:
    serial = fake_serial()
    async with announcer() as speaker, finding() as finder:
        await speaker.announce(serial, "127.0.0.1")
        assert (await finder.wait_for(serial, timeout=5)).host == "127.0.0.1"
        moving = asyncio.create_task(finder.moved(serial, "127.0.0.1"))
        await speaker.announce(serial, "127.0.0.1")  # announced again, as after a reboot
        await asyncio.sleep(0.5)
        assert not moving.done()  # the same address again is no move
        await speaker.announce(serial, "127.0.0.2")  # as after a new DHCP lease
        async with asyncio.timeout(5):
            moved = await moving
    assert (moved.serial, moved.host) == (serial, "127.0.0.2")


def test_discover_command_prints_what_it_finds() -> None:
    serial = fake_serial()

    async def announce_while_discovering() -> subprocess.CompletedProcess[str]:
        async with announcer() as speaker:
            await speaker.announce(serial, port=8443, firmware="8.2.4286")
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "envoy2mqtt.cli", "discover"),
                *("--timeout", "2", "--interfaces", "127.0.0.1"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode is not None
            return subprocess.CompletedProcess([], process.returncode, out.decode(), err.decode())

    done = asyncio.run(announce_while_discovering())
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith(serial))
    assert line.split() == [serial, "127.0.0.1:8443", "8.2.4286"]


# --- the bridge follows its gateway ---------------------------------------------------------


def _since(records: list[Record], topic: str, payload: bytes, after: float) -> bool:
    return any(r.topic == topic and payload in r.payload and r.t >= after for r in records)


async def test_bridge_finds_its_gateway_and_follows_it_to_a_new_address(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with (
        SimulatedGateway(capture=CAPTURE) as first,
        SimulatedGateway(capture=CAPTURE) as second,  # the same gateway after its move
        announcer() as speaker,
        Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
        Recorder("127.0.0.1", port, f"{unique_prefix}-ha/#") as entities,
    ):
        assert first.serial == second.serial
        # only the credentials and the broker, as a newcomer sets them: no ENVOY_HOST
        settings = bridge_settings(
            first, port, unique_prefix, tmp_path, envoy_host=None, mdns_interfaces="127.0.0.1"
        )
        await speaker.announce(first.serial, port=first.port, firmware=first.firmware)
        started = time.monotonic()
        async with running(settings) as app:
            availability = f"{unique_prefix}/{first.serial}/availability"
            records = await recorder.wait_for(
                lambda r: _since(r, availability, b"online", started), timeout=30
            )
            found_in = next(r.t for r in records if r.topic == availability) - started
            (bridge,) = app.bridges
            assert bridge.settings.host == first.host
            publisher = bridge.publisher
            await _settled(recorder, entities)
            topics_before, configs_before = set(recorder.latest()), entities.latest()
            assert configs_before  # Home Assistant was told about the gateway's entities

            # The gateway moves: the old address goes dead, it announces the new one.
            await first.stop()
            moved_at = time.monotonic()
            await speaker.announce(first.serial, port=second.port, firmware=second.firmware)
            info, new_host = f"{unique_prefix}/bridge/info", second.host.encode()
            records = await recorder.wait_for(
                lambda r: _since(r, info, new_host, moved_at), timeout=15
            )
            took = next(r.t for r in records if r.t >= moved_at and new_host in r.payload)
            assert second.stats.requests["/info"] > 0
            assert bridge.settings.host == second.host
            assert bridge.publisher is publisher  # same serial: same device, same entities
            await _settled(recorder, entities)
            new_topics = set(recorder.latest()) - topics_before
            assert not new_topics, f"the move created topics: {sorted(new_topics)}"
            assert entities.latest() == configs_before  # the same entities, unchanged
    print(
        f"\nfound and online {found_in:.2f} s after start (2 s of it letting other gateways"
        f" answer); new address published {took - moved_at:.3f} s after the move was announced"
    )


async def _settled(*recorders: Recorder, quiet: float = 1.5, limit: float = 20.0) -> None:
    """Wait until no new topic has appeared for `quiet` seconds (the first burst is over)."""
    deadline = time.monotonic() + limit
    seen = -1
    while time.monotonic() < deadline:
        count = sum(len(r.latest()) for r in recorders)
        if count == seen:
            return
        seen = count
        await asyncio.sleep(quiet)
    raise TimeoutError(f"topics still appearing after {limit} s")
