"""Daily counters and the quiet window follow the gateway's own zone, not the bridge's.

The bridge runs in UTC here (as a container does unless TZ is set); the gateways are east
(Sydney, UTC+10/+11) and west (US/Central, UTC-6/-5) of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import pytest

from envoy2mqtt.catalog.metric import Entity, Metric, Reading
from envoy2mqtt.catalog.roles import Roles
from envoy2mqtt.core.zones import local_to, zone_named
from envoy2mqtt.mqtt.settle import Settler

TODAY: Metric[object] = Metric(key="production_energy_today", name="Today", read=lambda _: None,
               state_class="total_increasing", daily=True)  # fmt: skip
ENTITY = Entity(TODAY.key, TODAY)
ROLES = Roles.of([ENTITY])


@pytest.fixture(autouse=True)
def bridge_in_utc() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def today(settler: Settler, wh: int, at: datetime, zone: str | None) -> object:
    readings = {ENTITY.path: Reading(ENTITY, wh)}
    return settler.settle(readings, ROLES, at, zone=zone_named(zone))[ENTITY.path]


@pytest.mark.parametrize(
    ("zone", "midnight_utc"),
    [
        ("Australia/Sydney", datetime(2026, 7, 1, 14, 0, tzinfo=UTC)),  # UTC+10 in July
        ("US/Central", datetime(2026, 7, 2, 5, 0, tzinfo=UTC)),  # UTC-5 in July
    ],
)
def test_the_reset_at_the_gateways_midnight_is_taken(zone: str, midnight_utc: datetime) -> None:
    settler = Settler()
    before = midnight_utc - timedelta(minutes=5)
    assert today(settler, 30_000, before - timedelta(hours=6), zone) == 30_000
    assert today(settler, 31_000, before, zone) == 31_000
    # the gateway resets at its midnight: taken at once, not held as a glitch
    assert today(settler, 0, midnight_utc + timedelta(minutes=1), zone) == 0
    assert today(settler, 120, midnight_utc + timedelta(hours=2), zone) == 120


@pytest.mark.parametrize("zone", ["Australia/Sydney", "US/Central"])
def test_a_drop_at_the_bridges_midnight_is_a_glitch(zone: str) -> None:
    settler = Settler()
    utc_midnight = datetime(2026, 7, 2, 0, 0, tzinfo=UTC)
    assert today(settler, 20_000, utc_midnight - timedelta(minutes=10), zone) == 20_000
    # the bridge's (UTC) day changed, the gateway's did not: a drop to 0 is held
    assert today(settler, 0, utc_midnight + timedelta(minutes=10), zone) == 20_000


def test_without_a_stated_zone_the_bridges_own_is_used() -> None:
    moment = datetime(2026, 7, 2, 3, 0, tzinfo=UTC)
    assert local_to(None, moment).utcoffset() == timedelta(0)  # TZ=UTC here
    assert zone_named("unknown") is None
    assert zone_named("Not/AZone") is None
    assert local_to(zone_named("US/Central"), moment).hour == 22  # the evening before


def test_quiet_window_is_the_gateways_23_00() -> None:
    from envoy2mqtt.gateway.pace import in_window

    sydney = zone_named("Australia/Sydney")
    # 13:00 UTC is 23:00 in Sydney (UTC+10 in July): the gateway's nightly drop-out
    moment = datetime(2026, 7, 1, 13, 0, tzinfo=UTC)
    start, end = clock_time(22, 58), clock_time(23, 6)
    assert in_window(local_to(sydney, moment).time(), start, end)
    assert not in_window(local_to(None, moment).time(), start, end)
