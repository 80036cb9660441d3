"""Finding gateways on the LAN by mDNS (`_enphase-envoy._tcp`), as Home Assistant does.

Gateways announce the service with their serial (`serialnum`) and firmware (`protovers`) in
the TXT record. The finder keeps the newest announcement of each serial, so a gateway that
moves to another DHCP address is followed: `Locator.moved` wakes the bridge, which reconnects
to the new address under the same serial, so its topics and entities stay the same.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from envoy2mqtt.gateway.errors import GatewayUnavailable

log = logging.getLogger(__name__)

SERVICE: Final = "_enphase-envoy._tcp.local."
AUTO: Final = "auto"  # ENVOY_HOST meaning "find it by mDNS"
RESOLVE_MS: Final = 3000
SETTLE: Final = 2.0  # after the first answer, how long other gateways get to answer too
WAIT: Final = 30.0  # how long one attempt waits for an announcement before saying so
# The gateway serves its API on 80/443 whatever port it announces; a test's simulated
# gateway announces its own port, which is then part of the host.
STANDARD_PORTS: Final = frozenset({0, 80, 443})


def interfaces_from(setting: str) -> list[str]:
    """MDNS_INTERFACES ("192.168.1.5, 10.0.0.2") as a list; empty: every interface."""
    return [part.strip() for part in setting.split(",") if part.strip()]


def is_auto(host: str | None) -> bool:
    """Whether ENVOY_HOST (or a listed gateway's host) asks for discovery: unset or `auto`."""
    return host is None or host.strip().lower() in ("", AUTO)


class NotFound(GatewayUnavailable):
    """No (single) gateway could be found by mDNS; the message says what to check."""


@dataclass(frozen=True, slots=True)
class Found:
    """One gateway as announced: its serial, address, port, firmware and service name."""

    serial: str
    address: str
    port: int
    firmware: str | None
    name: str

    @property
    def host(self) -> str:
        """What the gateway client is given: the address, with the port if unusual."""
        return self.address if self.port in STANDARD_PORTS else f"{self.address}:{self.port}"


class GatewayFinder:
    """Browses mDNS for gateways while `run()` runs; `found` maps serial to newest `Found`."""

    def __init__(self, interfaces: Sequence[str] = ()) -> None:
        """Browse on these interface addresses (empty: every interface)."""
        self.interfaces = list(interfaces)
        self.found: dict[str, Found] = {}
        self._changed = asyncio.Condition()
        self._ready = asyncio.Event()
        self._zeroconf: AsyncZeroconf | None = None
        self._resolving: set[asyncio.Task[None]] = set()
        self._broken: str | None = None  # why mDNS cannot run here, if it cannot

    async def run(self) -> None:
        """Browse until cancelled, then close the mDNS sockets."""
        interfaces = self.interfaces or InterfaceChoice.All
        try:
            for address in self.interfaces:  # checked first: zeroconf leaks a socket on a bad one
                _bindable(address)
            zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as err:  # no multicast-capable interface, or a bad MDNS_INTERFACES
            check = "check MDNS_INTERFACES or " if self.interfaces else ""
            self._broken = f"mDNS cannot run here ({err.strerror or err}) - {check}set ENVOY_HOST"
            log.error("%s", self._broken)
            self._ready.set()
            await asyncio.Event().wait()  # each bridge's attempt says why
            return
        self._zeroconf = zeroconf
        browser = AsyncServiceBrowser(zeroconf.zeroconf, [SERVICE], handlers=[self._on])
        self._ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            for task in self._resolving:
                task.cancel()
            await asyncio.gather(*self._resolving, return_exceptions=True)
            await browser.async_cancel()
            await zeroconf.async_close()
            self._ready.clear()

    def locator(self, serial: str | None) -> Locator:
        """Where one bridge's gateway is: the one with this serial (None: the only one)."""
        return Locator(self, serial)

    async def wait_for(self, serial: str | None, timeout: float = WAIT) -> Found:
        """The gateway with this serial, or the only one found; NotFound when there is none."""
        await self._ready.wait()
        if self._broken is not None:
            raise NotFound(self._broken)
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(self._matching(serial)))
        except TimeoutError:
            which = f" with serial {serial}" if serial else ""
            raise NotFound(
                f"no gateway{which} announced itself by mDNS ({SERVICE.removesuffix('.local.')}) "
                f"within {timeout:.0f} s - is it on this LAN (Docker: network_mode host)? "
                "Or set ENVOY_HOST"
            ) from None
        if serial is None:
            await asyncio.sleep(SETTLE)  # let every gateway on the LAN answer before choosing
        candidates = self._matching(serial)
        if len(candidates) != 1:
            listed = ", ".join(f"{f.serial} at {f.address}" for f in candidates) or "none left"
            raise NotFound(f"several gateways found ({listed}) - set ENVOY_SERIAL to pick one")
        return candidates[0]

    async def moved(self, serial: str, host: str) -> Found:
        """Wait until the gateway with this serial is announced at another host than `host`."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: serial in self.found and self.found[serial].host != host
            )
            return self.found[serial]

    def _matching(self, serial: str | None) -> list[Found]:
        if serial is None:
            return list(self.found.values())
        return [self.found[serial]] if serial in self.found else []

    def _on(  # zeroconf passes every argument by name
        self,
        zeroconf: Zeroconf,  # noqa: ARG002
        service_type: str,  # noqa: ARG002
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._resolve(name, state_change))
        self._resolving.add(task)
        task.add_done_callback(self._resolving.discard)

    async def _resolve(self, name: str, change: ServiceStateChange) -> None:
        if change is ServiceStateChange.Removed:
            gone = [serial for serial, found in self.found.items() if found.name == name]
            for serial in gone:
                log.info("gateway %s withdrew its mDNS announcement", serial)
                del self.found[serial]
            return
        assert self._zeroconf is not None
        info = AsyncServiceInfo(SERVICE, name)
        if not await info.async_request(self._zeroconf.zeroconf, RESOLVE_MS):
            log.debug("mDNS: %s did not resolve", name)
            return
        found = _found(name, info)
        if found is None:
            return
        before = self.found.get(found.serial)
        if before is None or before.host != found.host:
            log.info(
                "mDNS: gateway %s at %s (firmware %s)", found.serial, found.host, found.firmware
            )
        self.found[found.serial] = found
        async with self._changed:
            self._changed.notify_all()


def _bindable(address: str) -> None:
    """OSError unless `address` is one of this host's IPv4 addresses (binding sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((address, 0))


def _found(name: str, info: AsyncServiceInfo) -> Found | None:
    """The announcement in our terms; None without a serial or an IPv4 address."""
    properties = info.decoded_properties
    serial = properties.get("serialnum")
    # newest first: right after a move the old address lingers in the cache for a while
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not serial or not addresses:
        log.debug("mDNS: %s has no serial or no IPv4 address; ignored", name)
        return None
    return Found(serial, addresses[0], info.port or 0, properties.get("protovers"), name)


class Locator:
    """One bridge's gateway on the LAN: found by serial, or the only one (then remembered)."""

    def __init__(self, finder: GatewayFinder, serial: str | None) -> None:
        """Look for this serial (None: the one gateway found)."""
        self.finder, self.serial = finder, serial

    async def locate(self) -> str:
        """The gateway's host now (waits for an announcement; NotFound after a while)."""
        found = await self.finder.wait_for(self.serial)
        self.serial = found.serial  # from now on follow this one gateway
        return found.host

    async def moved(self, host: str) -> str:
        """Wait until the gateway is announced elsewhere than `host`; the new host."""
        if self.serial is None:
            await asyncio.Event().wait()  # nothing located yet, so nothing can move
        assert self.serial is not None
        return (await self.finder.moved(self.serial, host)).host


async def until_moved(work: Awaitable[None], locator: Locator | None, host: str) -> str | None:
    """Run `work` to its end (None), or until the gateway moves: then stop it, the new host."""
    if locator is None:
        await work
        return None
    working = asyncio.ensure_future(work)
    moving = asyncio.ensure_future(locator.moved(host))
    try:
        await asyncio.wait({working, moving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, moving):
            task.cancel()
        await asyncio.gather(working, moving, return_exceptions=True)
    if moving.done() and not moving.cancelled():
        return moving.result()
    working.result()  # its exception, if it failed
    return None


@asynccontextmanager
async def browsing(interfaces: Sequence[str] = ()) -> AsyncIterator[GatewayFinder]:
    """A finder browsing while the block runs (for commands; the app runs its own)."""
    finder = GatewayFinder(interfaces)
    task = asyncio.create_task(finder.run(), name="mdns")
    try:
        yield finder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def discover(timeout: float, interfaces: Sequence[str] = ()) -> list[Found]:
    """Every gateway that announces itself within `timeout` seconds (`envoy2mqtt discover`)."""
    async with browsing(interfaces) as finder:
        await asyncio.sleep(timeout)
        return sorted(finder.found.values(), key=lambda found: found.serial)


async def find_one(
    serial: str | None, interfaces: Sequence[str] = (), timeout: float = WAIT
) -> str:
    """The host of the gateway with this serial (None: the only one); NotFound otherwise."""
    async with browsing(interfaces) as finder:
        return (await finder.wait_for(serial, timeout)).host
