"""A dry contact's published status through the gateway's phantom `open`: after any settings
POST (D8.3.6086) every NC contact reads `open` for 5-90 s although no relay moved. A change read
inside `CONTROL_CONTACT_PHANTOM` of the bridge's own settings write stays off its state topic
(and its Home Assistant entity) unless a reading begun after the window still shows it; a status
the bridge itself wrote is a real move, published at once.

Real broker, the simulated gateway over HTTPS with the field on (time compressed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from envoy2mqtt.sim import Field
from envoy2mqtt.sim.setters import DRY_CONTACT_SETTINGS
from tests.broker import Mosquitto, Record
from tests.test_control_battery_paths import SCALE, Site, current_firmware, field_site

CONTACTS = "/ivp/ensemble/dry_contacts"


def phantoms(seconds: float) -> Field:
    """The field gateway, its phantom lasting `seconds` (field seconds, scaled by SCALE)."""
    return dataclasses.replace(current_firmware(), phantom_s=(seconds, seconds))


def statuses(site: Site, contact: str, since: float = 0.0) -> list[Record]:
    """What the contact's status topic carried from `since` (monotonic seconds) on."""
    return [
        r for r in site.recorder.on(f"{site.root}/dry_contact/{contact}/status") if r.t >= since
    ]


def payloads(records: list[Record]) -> list[bytes]:
    """The payloads, in order."""
    return [r.payload for r in records]


@pytest.mark.parametrize("hold", [True, False])
async def test_a_phantom_within_the_window_never_reaches_the_status_topic(
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hold: bool,
) -> None:
    # the write and its read-back take ~5 s here (a full read): the phantom lasts 10 s, so the
    # read-back and the next normal read see it, and the window 15 s
    window = 300 * SCALE
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=phantoms(200),
        control_contact_phantom=window if hold else 0,
    ) as site:
        assert payloads(statuses(site, "NC1")) == [b"closed"]
        sent = time.monotonic()
        with caplog.at_level(logging.INFO, logger="envoy2mqtt.core.changes"):
            await site.send("dry_contact/NC2/set/soc_low", "20")  # a settings POST
            assert [r["status"] for r in await site.final(1)] == ["ok"]
            contacts = site.gateway.document(CONTACTS)["dry_contacts"]
            assert [c["status"] for c in contacts[:2]] == ["open", "open"]  # NC1, NC2: phantoms
            # the window, and a normal read begun after it (POLL_INTERVAL 5, a read ~2.5 s)
            await asyncio.sleep(window + 8.0)
        seen = payloads(statuses(site, "NC1", sent)) + payloads(statuses(site, "NC2", sent))
    if hold:
        assert b"open" not in seen, seen
        dropped = [r.message for r in caplog.records if r.message.endswith("while held: dropped")]
        assert sorted(m.split()[1] for m in dropped) == [
            "dry_contact/NC1/status",
            "dry_contact/NC2/status",
        ], dropped
    else:  # no window: the gateway's phantom is what the topic shows
        assert b"open" in seen, seen


async def test_a_phantom_outlasting_the_window_is_published_after_it(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    window = 8.0  # longer than the write and its read-back (~5 s)
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=phantoms(500),  # 25 s: a normal read begins and ends inside it, after the window
        control_contact_phantom=window,
    ) as site:
        sent = time.monotonic()
        await site.send("dry_contact/NC2/set/soc_low", "20")
        await site.final(1)
        await site.recorder.wait_for(lambda _r: b"open" in payloads(statuses(site, "NC1")), 25)
        reads = [r for r in site.gateway.stats.log if r.path.startswith(CONTACTS)]
    (opened,) = [r for r in statuses(site, "NC1", sent) if r.payload == b"open"]
    # not the read-back right after the write: a reading begun after the window
    after = [r.end for r in reads if r.start >= sent + window]
    assert after, [(r.start - sent, r.end - sent) for r in reads]
    assert opened.t >= after[0], (opened.t - sent, after[0] - sent)


async def test_a_status_the_bridge_writes_inside_the_window_is_published_at_once(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    window = 30.0
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=phantoms(10),  # 0.5 s: over before the command below
        control_contact_phantom=window,
    ) as site:
        await site.send("dry_contact/NC2/set/soc_low", "20")  # the window opens
        await site.final(1)
        await asyncio.sleep(1.0)
        sent = time.monotonic()
        await site.send("dry_contact/NC1/set/status", "open")
        await site.recorder.wait_for(lambda _r: b"open" in payloads(statuses(site, "NC1")), 8)
        took = time.monotonic() - sent
        responses = await site.final(2)
    assert (responses[-1]["control"], responses[-1]["status"]) == ("dry_contact/NC1/status", "ok")
    assert site.gateway.document(CONTACTS)["dry_contacts"][0]["status"] == "open"
    assert took < window / 3, took


async def test_an_outage_inside_the_window_moves_contacts_for_real_at_once(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    """The grid fails a few seconds after a settings write: the gateway sheds its LOAD contacts
    (a real move, not a phantom), shown without waiting out the window."""
    window = 60.0
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=phantoms(10),
        control_contact_phantom=window,
    ) as site:
        settings = site.gateway.state.touch(DRY_CONTACT_SETTINGS)
        for entry in settings["dry_contacts"]:
            if entry["id"] == "NO1":
                entry["type"] = "LOAD"  # an installer's setting: the gateway sheds it off grid
        await site.send("dry_contact/NC2/set/soc_low", "20")  # the window opens
        await site.final(1)
        sent = time.monotonic()
        site.gateway.fail_grid()
        await site.recorder.wait_for(lambda _r: b"open" in payloads(statuses(site, "NO1")), 20)
        took = time.monotonic() - sent
    assert took < window / 3, took
