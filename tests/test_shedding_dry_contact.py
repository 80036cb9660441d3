"""A dry contact of the gateway as a load: shedding commands it through the bridge's own
control topic (CONTROLS=all), the same path as any user's command, write and read-back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto
from tests.test_shedding_e2e import CAPTURE, site

WRITE = "/ivp/ensemble/dry_contacts"


async def writes(gateway: SimulatedGateway, count: int, timeout: float = 10) -> list[Any]:
    """The bodies of the first `count` dry-contact writes the gateway took."""
    async with asyncio.timeout(timeout):
        while True:
            taken = [w.body for w in gateway.write_log if w.path == WRITE and w.status == 200]
            if len(taken) >= count:
                return taken
            await asyncio.sleep(0.05)


async def test_a_dry_contact_is_opened_on_outage_and_closed_after(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with SimulatedGateway(capture=CAPTURE) as gateway:
        gateway.set_battery(soc=80)
        command = f"{unique_prefix}/{gateway.serial}/dry_contact/NC1/set/status"
        loads: list[dict[str, object]] = [
            {
                "name": "pool-pump",
                "tier": 1,
                "off": {"topic": command, "payload": "open"},
                "on": {"topic": command, "payload": "closed"},
            }
        ]
        # the restore comes sooner than a real RESTORE_AFTER: let the control take it
        options: dict[str, Any] = {"controls": "all", "control_rate_limit": 0.5, "gateway": gateway}
        async with site(mosquitto_session, unique_prefix, tmp_path, loads, **options) as s:
            await s.grid(on=False, events=1)
            await s.wait(lambda s: s.state("pool-pump")[0] == b"shed")
            opened = await writes(gateway, 1)
            await s.grid(on=True, events=2)
            await s.wait(lambda s: s.state("pool-pump")[0] == b"on", timeout=15)
            closed = await writes(gateway, 2)
    assert opened[0]["dry_contacts"]["status"] == "open", opened
    assert closed[1]["dry_contacts"]["status"] == "closed", closed
