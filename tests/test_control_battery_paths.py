"""Battery settings end to end on the field's gateways: local on firmware that honours the tariff,
through Enlighten on current firmware (D8.3, which ignores local battery writes), confirmed from
the gateway's live values. Real broker, the simulated gateway over HTTPS with the field on (time
compressed), the simulated Enlighten over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomqtt
import pytest
from pydantic import SecretStr

from envoy2mqtt.app import App
from envoy2mqtt.sim import Field, SimulatedGateway
from envoy2mqtt.sim.battery_cloud import CloudSite, storage_applier
from envoy2mqtt.sim.enlighten import CloudFault, SimulatedEnlighten
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running

BATTERY: Final = "8.2.4286_with_3cts_and_battery_split"  # IQ Batteries, Enpower, dry contacts
ACCOUNT: Final = "owner@example.com"
PASSWORD: Final = "a-password-never-logged-7731"
SITE: Final = 4_400_001
HOST: Final = "127.0.0.1"
SCALE: Final = 0.05  # the field's seconds: a 15 s cloud apply in 0.75 s, a 27 s top-off in 1.35 s
TARIFF: Final = "/admin/lib/tariff"
BATTERY_API: Final = "/service/batteryConfig/api/v1/batterySettings"

pytestmark = pytest.mark.timeout(120)


def current_firmware() -> Field:
    """D8.3.6086: local battery writes are taken and ignored."""
    return Field.current_firmware(time_scale=SCALE, seed=7)


def older_firmware() -> Field:
    """Everything the field does, but the battery controller follows the tariff file."""
    return dataclasses.replace(current_firmware(), local_battery_writes_ignored=False)


@dataclass(slots=True)
class Site:
    """A bridge with CONTROLS=all on a field gateway, its cloud, and what its topics carried."""

    gateway: SimulatedGateway
    cloud: SimulatedEnlighten
    recorder: Recorder
    port: int
    prefix: str

    @property
    def root(self) -> str:
        """`<base>/<serial>`."""
        return f"{self.prefix}/{self.gateway.serial}"

    async def send(self, suffix: str, payload: str) -> None:
        """A command below `<base>/<serial>/`."""
        async with aiomqtt.Client(HOST, self.port) as client:
            await client.publish(f"{self.root}/{suffix}", payload, qos=1)

    def responses(self) -> list[dict[str, Any]]:
        """Every response so far, oldest first."""
        return [json.loads(r.payload) for r in self.recorder.on(f"{self.root}/response")]

    async def final(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `count` responses are final (not `pending`); every response so far."""
        topic = f"{self.root}/response"

        def done(_records: object) -> bool:
            finals = [r for r in self.responses() if r["status"] != "pending"]
            return len(finals) >= count

        await self.recorder.wait_for(done, timeout=timeout)
        assert all(r.topic == topic for r in self.recorder.on(topic))
        return self.responses()

    def timings(self, label: str, sent: float) -> str:
        """Each answer since `sent` (time.monotonic()) and when it came, in field seconds too:
        `label: pending/local 0.05 s (1 field s), ok/enlighten 0.97 s (19 field s)`."""
        parts = []
        for record in self.recorder.on(f"{self.root}/response"):
            if record.t >= sent:
                body, took = json.loads(record.payload), record.t - sent
                how = "/".join(str(x) for x in (body["status"], body.get("via")) if x)
                parts.append(f"{how} {took:.2f} s ({took / SCALE:.0f} field s)")
        return f"{label} (time_scale {SCALE}): " + ", ".join(parts)

    def info(self) -> dict[str, Any]:
        """The newest bridge/info."""
        return dict(json.loads(self.recorder.on(f"{self.prefix}/bridge/info")[-1].payload))

    def cloud_writes(self) -> list[tuple[str, int]]:
        """(method, status) of every battery-settings write the cloud got."""
        return [
            (r.method, r.status)
            for r in self.cloud.requests
            if r.path.startswith(BATTERY_API) and r.method != "GET"
        ]

    def live(self) -> tuple[Any, ...]:
        """What the battery controller runs: mode, reserve, charge from grid."""
        schedule = self.gateway.document("/ivp/sc/sched")
        secctrl = self.gateway.document("/ivp/ensemble/secctrl")
        return (
            schedule["Battery Mode"],
            secctrl["configured_backup_soc"],
            schedule["Charge From Grid Allowed"],
        )


@contextlib.asynccontextmanager
async def field_site(
    broker: Mosquitto,
    prefix: str,
    state_dir: Path,
    *,
    field: Field,
    account: bool = True,
    cloud_options: dict[str, Any] | None = None,
    **settings: object,
) -> AsyncIterator[Site]:
    """The gateway, its cloud site and the bridge (tokens and battery settings from the same
    Enlighten account), once the battery controls are announced."""
    async with SimulatedGateway(capture=BATTERY, field=field) as gateway:
        gateway.set_storage(optimised_schedules=False)  # the older firmware's mode can stick
        cloud = SimulatedEnlighten(
            accounts={ACCOUNT: PASSWORD},
            sites=[CloudSite(site_id=SITE, serials=(gateway.serial,), owner=ACCOUNT)],
            time_scale=SCALE,
            **({"apply": storage_applier([gateway])} | (cloud_options or {})),
        )
        async with cloud:
            values: dict[str, object] = {
                "controls": "all",
                "poll_interval": 5,
                "control_settle": 1,  # a local write shows at once where it is honoured
                "control_cloud_timeout": 8,  # the field's 10-20 s apply, scaled, and room to read
                "control_relay_open_timeout": 8,
                "control_relay_close_timeout": 8,
                "control_rate_limit": 0,
                "enlighten_login_url": cloud.login_url,
                "entrez_token_url": cloud.token_url,
                **settings,
            }
            if account:
                values.update(envoy_username=ACCOUNT, envoy_password=SecretStr(PASSWORD))
            app = App(bridge_settings(gateway, broker.port, prefix, state_dir, **values))
            async with Recorder(HOST, broker.port, f"{prefix}/#") as recorder, running(app):
                marker = "/control_battery_reserve_soc/config"
                async with Recorder(HOST, broker.port, f"{prefix}-ha/#") as configs:
                    await configs.wait_for(lambda r: any(x.topic.endswith(marker) for x in r), 60)
                await asyncio.sleep(0.2)
                yield Site(gateway, cloud, recorder, broker.port, prefix)


def steps(responses: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(status, control, via) of each response."""
    return [(r["status"], r["control"], r.get("via")) for r in responses]


# -- which path: auto learns it ----------------------------------------------------------------


async def test_auto_on_current_firmware_learns_enlighten_and_confirms_on_the_gateway(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session, unique_prefix, tmp_path, field=current_firmware()
    ) as site:
        assert site.info()["gateways"][0]["battery_control_path"] == "auto"
        sent = time.monotonic()
        await site.send("set/battery_reserve_soc", "40")
        responses = await site.final(1)
        learning = site.timings("reserve 40, auto (local tried, then Enlighten)", sent)
        assert steps(responses) == [
            ("pending", "battery_reserve_soc", "local"),  # written to the tariff...
            ("pending", "battery_reserve_soc", "enlighten"),  # ...ignored: through the cloud
            ("ok", "battery_reserve_soc", "enlighten"),
        ]
        assert responses[-1]["actual"] == 40
        assert "within" in responses[1]
        assert site.live()[1] == 40
        await site.recorder.wait_for(
            lambda _r: site.info()["gateways"][0]["battery_control_path"] == "enlighten", 5
        )
        # the cloud's own view still waits for the gateway's report: not an error
        assert site.cloud.battery.battery(SITE).requested["batteryBackupPercentage"] == 40
        # from now on straight through Enlighten: charge from grid wants the disclaimer first
        sent = time.monotonic()
        await site.send("set/charge_from_grid", "on")
        responses = await site.final(2)
        cloud = site.timings("charge from grid on, Enlighten", sent)
        assert steps(responses[3:]) == [
            ("pending", "charge_from_grid", "enlighten"),
            ("ok", "charge_from_grid", "enlighten"),
        ]
        assert site.live()[2] is True
        assert site.cloud_writes() == [("PUT", 200), ("POST", 200), ("PUT", 200)]
        assert [w.path for w in site.gateway.write_log] == [TARIFF]  # the one local try
        # never `ok` for a write that went to the tariff only
        assert not [r for r in site.responses() if r.get("via") == "local" and r["status"] == "ok"]
    print(f"\n{learning}\n{cloud}")


async def test_auto_on_firmware_that_honours_the_tariff_stays_local(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session, unique_prefix, tmp_path, field=older_firmware()
    ) as site:
        sent = time.monotonic()
        await site.send("set", json.dumps({"battery_reserve_soc": 35, "battery_mode": "backup"}))
        responses = await site.final(2)
        assert sorted(steps(responses)) == [
            ("ok", "battery_mode", "local"),
            ("ok", "battery_reserve_soc", "local"),
        ]
        print(f"\n{site.timings('reserve 35 and mode backup, local (older firmware)', sent)}")
        assert site.live()[:2] == ("backup", 35)
        await site.recorder.wait_for(
            lambda _r: site.info()["gateways"][0]["battery_control_path"] == "local", 5
        )
        assert site.cloud_writes() == []


async def test_local_forced_on_current_firmware_is_ignored_never_ok(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="local",
    ) as site:
        before = site.live()
        sent = time.monotonic()
        await site.send("set/charge_from_grid", "on")
        responses = await site.final(1)
        assert steps(responses) == [
            ("pending", "charge_from_grid", "local"),
            ("ignored", "charge_from_grid", "local"),
        ]
        print(f"\n{site.timings('charge from grid on, local forced on D8.3', sent)}")
        assert responses[-1]["actual"] == "off"
        assert "ignores battery settings written locally" in responses[-1]["message"]
        # the tariff's copy says "on": the bridge no longer believes it
        stale = site.gateway.document(TARIFF)["tariff"]["storage_settings"]["charge_from_grid"]
        assert stale is True
        assert site.live() == before
        assert site.cloud_writes() == []


async def test_without_an_enlighten_account_the_bridge_says_why(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session, unique_prefix, tmp_path, field=current_firmware(), account=False
    ) as site:
        await site.send("set/battery_reserve_soc", "45")
        responses = await site.final(1)
        assert steps(responses) == [
            ("pending", "battery_reserve_soc", "local"),
            ("ignored", "battery_reserve_soc", "local"),
        ]
        assert "ENVOY_USERNAME and ENVOY_PASSWORD" in responses[-1]["message"]
        # learnt: the next one is answered at once, nothing written
        await site.send("set/battery_mode", "backup")
        responses = await site.final(2)
        assert steps(responses[2:]) == [("error", "battery_mode", "enlighten")]
        assert len(site.gateway.write_log) == 1


# -- what Enlighten does -------------------------------------------------------------------------


async def test_a_profile_switch_brings_back_that_profiles_values(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="enlighten",
    ) as site:
        sent = time.monotonic()
        await site.send("set/battery_reserve_soc", "25")  # self-consumption keeps 25
        await site.final(1)
        reserve = site.timings("reserve 25, Enlighten", sent)
        sent = time.monotonic()
        await site.send("set/battery_mode", "backup")  # Full Backup keeps its own 100
        await site.final(2)
        mode = site.timings("mode backup, Enlighten", sent)
        assert site.live()[:2] == ("backup", 100)
        await site.send("set/battery_mode", "self-consumption")
        responses = await site.final(3)
        assert [r["status"] for r in responses if r["status"] != "pending"] == ["ok"] * 3
        assert site.live()[:2] == ("self-consumption", 25)
        assert [w.path for w in site.gateway.write_log] == []  # nothing written locally
    print(f"\n{reserve}\n{mode}")


async def test_enlighten_down_is_a_clear_error_without_a_retry_storm(
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="enlighten",
    ) as site:
        site.cloud.set_fault(CloudFault.UNAVAILABLE)
        calls = site.cloud.calls
        await site.send("set/battery_reserve_soc", "50")
        responses = await site.final(1)
        assert steps(responses) == [("error", "battery_reserve_soc", "enlighten")]
        assert "unavailable (HTTP 503)" in responses[0]["message"]
        assert site.cloud.calls == calls + 1  # one attempt
        for value in ("51", "52", "53"):
            await site.send("set/battery_reserve_soc", value)
        responses = await site.final(4)
        assert all("next attempt is allowed in" in r["message"] for r in responses[1:])
        assert site.cloud.calls == calls + 1  # backing off: nothing more sent
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("cloud_options", "said"),
    [
        ({"blocked_agents": ("Mozilla",)}, "HTTP 406"),
        ({"mfa": True}, "multi-factor"),
    ],
)
async def test_enlighten_refusing_the_client_or_the_account_says_why(
    mosquitto_session: Mosquitto,
    unique_prefix: str,
    tmp_path: Path,
    cloud_options: dict[str, Any],
    said: str,
) -> None:
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="enlighten",
        cloud_options=cloud_options,
    ) as site:
        await site.send("set/battery_mode", "backup")
        responses = await site.final(1)
        assert steps(responses) == [("error", "battery_mode", "enlighten")]
        assert said in responses[0]["message"]


async def test_a_write_the_cloud_never_delivers_is_ignored_with_the_reason(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="enlighten",
        control_cloud_timeout=2,
        cloud_options={"apply": None},  # taken, pending, never reaching the gateway
    ) as site:
        before = site.live()
        await site.send("set/battery_reserve_soc", "55")
        responses = await site.final(1)
        assert steps(responses) == [
            ("pending", "battery_reserve_soc", "enlighten"),
            ("ignored", "battery_reserve_soc", "enlighten"),
        ]
        assert "pending too long" in responses[-1]["message"]
        assert site.live() == before


# -- the grid relay -----------------------------------------------------------------------------


async def test_the_relay_opens_after_the_top_off_and_is_ok_once_it_moved(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session, unique_prefix, tmp_path, field=current_firmware()
    ) as site:
        sent = time.monotonic()
        await site.send("set/grid_enabled", "off")
        responses = await site.final(1)
        opened = site.timings("grid relay open (top-off first)", sent)
        pending, done = responses
        assert (pending["status"], done["status"], done["actual"]) == ("pending", "ok", "off")
        assert "tops the battery up" in pending["message"]
        assert "open sync" in done["message"]  # `open synchronizing` counts as open
        assert site.gateway.relay_state[0] == "open"
        sent = time.monotonic()
        await site.send("set/grid_enabled", "on")
        responses = await site.final(2)
        closed = site.timings("grid relay close", sent)
        assert responses[-1]["status"] == "ok"
        assert responses[-1]["message"] == "the relay reads 'closed'"
    print(f"\n{opened}\n{closed}")


# -- dry contacts: the gateway's phantom `open` ---------------------------------------------------


@pytest.mark.parametrize("hold", [True, False])
async def test_contacts_reading_open_after_a_settings_write_are_not_a_revert(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path, hold: bool
) -> None:
    window = 90 * SCALE  # the field's longest phantom, scaled
    # the phantom lasts its longest, so it is still there when the write has been answered
    longest = dataclasses.replace(current_firmware(), phantom_s=(90.0, 90.0))
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=longest,
        control_contact_phantom=window if hold else 0,
    ) as site:
        sent = time.monotonic()
        await site.send("dry_contact/NC1/set/status", "closed")
        assert [r["status"] for r in await site.final(1)] == ["ok"]  # watched from now on
        contact = site.timings(f"dry contact NC1 closed (hold {hold})", sent)
        await site.send("dry_contact/NC2/set/soc_low", "20")  # a settings POST
        await site.final(2)
        contacts = site.gateway.document("/ivp/ensemble/dry_contacts")["dry_contacts"]
        assert contacts[0]["status"] == "open"  # NC1: although no relay moved
        await asyncio.sleep(window + 1.0)  # the window, and a normal read after it
        reverted = [
            json.loads(r.payload)
            for r in site.recorder.on(f"{site.root}/event")
            if json.loads(r.payload)["type"] == "control"
        ]
    # without the hold, the phantom reads as NC1 gone back to open
    assert bool(reverted) is not hold, reverted
    print(f"\n{contact}")


async def test_a_battery_setting_going_back_is_seen_in_the_live_values_on_the_enlighten_path(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    async with field_site(
        mosquitto_session,
        unique_prefix,
        tmp_path,
        field=current_firmware(),
        battery_control_path="enlighten",
    ) as site:
        sent = time.monotonic()
        await site.send("set/battery_reserve_soc", "60")
        assert [r["status"] for r in await site.final(1)] == ["pending", "ok"]
        print(f"\n{site.timings('reserve 60, Enlighten', sent)}")
        # someone (the app, the cloud) puts the reserve back: the controller runs 30 again
        site.gateway.apply_battery_settings(
            mode="self-consumption", charge_from_grid=False, reserve_soc=30
        )

        def events(_records: object) -> list[dict[str, Any]]:
            bodies = [json.loads(r.payload) for r in site.recorder.on(f"{site.root}/event")]
            return [b for b in bodies if b["type"] == "control"]

        await site.recorder.wait_for(lambda r: bool(events(r)), timeout=10)
        (event,) = events(None)
        assert (event["status"], event["control"], event["from"], event["to"]) == (
            "reverted",
            "battery_reserve_soc",
            60,
            30.0,
        )
