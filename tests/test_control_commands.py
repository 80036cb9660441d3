"""Command messages, values, the rate limit, the revert watch and the answers: pure parts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from envoy2mqtt.auth.battery import cloud_fields
from envoy2mqtt.control.commands import (
    GRID,
    RELAY,
    Choice,
    Invalid,
    Message,
    RateLimit,
    Response,
    Status,
    Switch,
    Whole,
    parse_message,
    reverted,
    same_value,
)
from envoy2mqtt.control.controls import Scope, why_not
from envoy2mqtt.control.executor import Watched, Watches

AT = datetime(2026, 7, 1, 14, 3, 12, tzinfo=UTC)


def test_a_json_object_on_set_names_gateway_controls_and_a_transaction() -> None:
    message = parse_message(
        "set", b'{"battery_mode": "backup", "battery_reserve_soc": 30, "transaction": "t1"}'
    )
    assert message == Message(
        (("battery_mode", "backup"), ("battery_reserve_soc", 30)), transaction="t1"
    )


def test_a_device_json_object_prefixes_the_device_path() -> None:
    message = parse_message("dry_contact/NC1/set", b'{"status": "open", "soc_low": 20}')
    assert message.items == (("dry_contact/NC1/status", "open"), ("dry_contact/NC1/soc_low", 20))
    assert message.transaction is None


@pytest.mark.parametrize(
    ("suffix", "payload", "item"),
    [
        ("set/battery_mode", b"backup", ("battery_mode", "backup")),
        ("set/battery_reserve_soc", b"30", ("battery_reserve_soc", 30)),
        ("set/battery_reserve_soc", b" 30.0\n", ("battery_reserve_soc", 30.0)),
        ("set/charge_from_grid", b"true", ("charge_from_grid", True)),
        ("set/grid_enabled", b'"off"', ("grid_enabled", "off")),
        ("dry_contact/NO1/set/mode", b"soc", ("dry_contact/NO1/mode", "soc")),
    ],
)
def test_a_plain_value_on_set_control(
    suffix: str, payload: bytes, item: tuple[str, object]
) -> None:
    assert parse_message(suffix, payload) == Message((item,))


def test_a_plain_value_may_come_with_a_transaction() -> None:
    message = parse_message("set/battery_mode", b'{"value": "economy", "transaction": 7}')
    assert message == Message((("battery_mode", "economy"),), transaction=7)


@pytest.mark.parametrize(
    ("suffix", "payload", "error"),
    [
        ("set", b"backup", "expected a JSON object"),
        ("set", b"[1, 2]", "expected a JSON object"),
        ("set", b"{}", "no control in the message"),
        ("set", b'{"transaction": "t"}', "no control in the message"),
        ("set", b'{"battery_mode": "backup", "transaction": [1]}', "transaction: expected"),
        ("set", b'{"battery_mode": "backup", "transaction": true}', "transaction: expected"),
        ("set", b'{"battery_mode": "backup", "transaction": "%s"}' % (b"t" * 65), "at most 64"),
        ("set/battery_mode", b'{"value": 1, "transaction": %s}' % (b"9" * 65), "at most 64"),
        ("set/battery_mode", b'{"transaction": "t"}', 'expected {"value": ...}'),
        ("dry_contact/set", b"{}", "not a command topic"),
        ("set/", b"x", "not a command topic"),
    ],
)
def test_messages_that_are_not_commands_say_why(suffix: str, payload: bytes, error: str) -> None:
    message = parse_message(suffix, payload)
    assert message.error is not None
    assert error in message.error
    assert message.items == ()


def test_a_choice_takes_its_options_in_any_case_and_names_them_otherwise() -> None:
    modes = Choice(("backup", "self-consumption", "economy"))
    assert modes.parse(" Backup ") == "backup"
    with pytest.raises(Invalid, match='"turbo" is not one of backup, self-consumption, economy'):
        modes.parse("turbo")
    with pytest.raises(Invalid, match="30 is not one of"):
        modes.parse(30)


@pytest.mark.parametrize(
    ("raw", "value"), [(30, 30), (30.0, 30), ("30", 30), (" 0 ", 0), (100, 100)]
)
def test_a_whole_number_within_bounds(raw: object, value: int) -> None:
    assert Whole(0, 100).parse(raw) == value


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (150, "150 is out of range 0-100"),
        (-1, "-1 is out of range 0-100"),
        (30.5, "expected a whole number, got 30.5"),
        ("abc", 'expected a number, got "abc"'),
        (True, "expected a number, got true"),
        (None, "expected a number, got null"),
        ({"a": 1}, "expected a number, got {...}"),
        ("nan", "expected a number"),
    ],
)
def test_a_whole_number_says_what_is_wrong(raw: object, error: str) -> None:
    with pytest.raises(Invalid, match=error.replace("(", r"\(").replace(")", r"\)")):
        Whole(0, 100).parse(raw)


def test_a_switch_takes_on_and_off_in_several_spellings() -> None:
    switch = Switch()
    assert [switch.parse(v) for v in ("on", "ON", "true", "1", 1, True)] == ["on"] * 6
    assert [switch.parse(v) for v in ("off", "false", "0", 0, False)] == ["off"] * 5
    with pytest.raises(Invalid, match='expected on or off, got "maybe"'):
        switch.parse("maybe")


def test_relay_switches_take_their_state_words() -> None:
    assert [RELAY.parse(v) for v in ("closed", "close", "on", True)] == ["closed"] * 4
    assert [RELAY.parse(v) for v in ("open", "off", False)] == ["open"] * 3
    assert [GRID.parse(v) for v in ("closed", "on")] == ["on", "on"]
    assert GRID.parse("open") == "off"
    with pytest.raises(Invalid, match="expected closed or open"):
        RELAY.parse("ajar")


def test_same_value_forgives_a_float_read_back_of_a_whole_number() -> None:
    assert same_value(30.0, 30)
    assert not same_value(31.0, 30)
    assert same_value("Backup", "backup")
    assert not same_value(None, "backup")
    assert not same_value("30", 31)


def test_the_rate_limit_lets_one_write_per_interval_and_control_through() -> None:
    limit = RateLimit(10.0)
    assert limit.wait("battery_mode", 100.0) == 0
    assert limit.wait("battery_mode", 103.0) == pytest.approx(7.0)
    assert limit.wait("battery_reserve_soc", 103.0) == 0  # another control
    assert limit.wait("battery_mode", 109.9) == pytest.approx(0.1)
    assert limit.wait("battery_mode", 110.0) == 0  # a dropped command does not count
    unlimited = RateLimit(0.0)
    assert [unlimited.wait("battery_mode", 1.0) for _ in range(3)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("path", "scope", "refused", "why"),
    [
        ("battery_turbo", Scope.ALL, (), "unknown control 'battery_turbo' (controls here: batt"),
        ("dry_contact/NC1/volume", Scope.ALL, (), "controls here: status, mode, grid_action"),
        ("grid_enabled", Scope.BATTERY, (), "not enabled: CONTROLS=battery (CONTROLS=all"),
        ("dry_contact/NC1/status", Scope.BATTERY, (), "not enabled: CONTROLS=battery"),
        ("grid_enabled", Scope.ALL, ("grid_enabled",), "refused writing it (HTTP 401/403)"),
        ("generator_mode", Scope.ALL, (), "this gateway does not have it"),
    ],
)
def test_why_a_control_cannot_be_commanded(
    path: str, scope: Scope, refused: tuple[str, ...], why: str
) -> None:
    assert why in why_not(path, scope, refused)


def watched(path: str = "battery_mode", since: float = 10.0, until: float = 310.0) -> Watched:
    return Watched(path=path, requested="backup", since=since, until=until, transaction="t1")


def test_a_watched_value_that_goes_back_is_reported_once() -> None:
    watches = Watches()
    watches.arm(watched())
    assert watches.check(lambda _p: "backup", read_since=lambda _p: 20.0, now=21.0) == []
    assert watches.check(lambda _p: "self-consumption", read_since=lambda _p: 30.0, now=31.0) == [
        (watched(), "self-consumption")
    ]
    assert watches.check(lambda _p: "self-consumption", read_since=lambda _p: 40.0, now=41.0) == []
    assert len(watches) == 0


def test_a_reading_begun_before_the_confirming_read_back_does_not_count() -> None:
    watches = Watches()
    watches.arm(watched(since=10.0))
    assert watches.check(lambda _p: "self-consumption", read_since=lambda _p: 9.5, now=12.0) == []
    assert len(watches) == 1


def test_a_watch_expires_and_a_new_command_replaces_it() -> None:
    watches = Watches()
    watches.arm(watched(until=100.0))
    assert watches.check(lambda _p: "economy", read_since=lambda _p: 50.0, now=101.0) == []
    assert len(watches) == 0
    watches.arm(watched())
    watches.forget("battery_mode")
    assert watches.get("battery_mode") is None
    watches.arm(watched())
    assert (
        watches.check(lambda _p: None, read_since=lambda _p: 50.0, now=60.0) == []
    )  # no reading of it
    assert len(watches) == 1


def test_a_response_carries_status_control_values_transaction_and_time() -> None:
    response = Response(
        status=Status.IGNORED,
        control="battery_mode",
        at=AT,
        requested="backup",
        actual="self-consumption",
        transaction="t1",
        message="the gateway answered 200 but kept self-consumption",
    )
    assert json.loads(response.to_json("122238082763")) == {
        "status": "ignored",
        "gateway": "122238082763",
        "control": "battery_mode",
        "requested": "backup",
        "actual": "self-consumption",
        "transaction": "t1",
        "at": "2026-07-01T14:03:12.000+00:00",
        "message": "the gateway answered 200 but kept self-consumption",
    }


def test_a_revert_is_a_control_event_with_the_value_it_went_back_to() -> None:
    body = json.loads(reverted("battery_mode", "backup", "self-consumption", AT, "t1").to_json("1"))
    assert {k: body[k] for k in ("type", "from", "to", "control", "status", "transaction")} == {
        "type": "control",
        "from": "backup",
        "to": "self-consumption",
        "control": "battery_mode",
        "status": "reverted",
        "transaction": "t1",
    }
    assert "transaction" not in json.loads(reverted("x", 1, 2, AT, None).to_json("1"))


def test_a_pending_response_says_how_and_how_long() -> None:
    at = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    pending = Response(
        status=Status.PENDING,
        control="battery_reserve_soc",
        at=at,
        requested=40,
        via="enlighten",
        within=30,
    )
    body = json.loads(pending.to_json("122302045041"))
    assert (body["status"], body["via"], body["within"]) == ("pending", "enlighten", 30)
    plain = json.loads(Response(status=Status.OK, control="status", at=at).to_json("1"))
    assert "via" not in plain
    assert "within" not in plain


def test_a_response_stays_small_whatever_the_command_carried() -> None:
    huge = "x" * 100_000
    message = parse_message("set", json.dumps({huge: huge, "transaction": "t" * 64}).encode())
    assert message.transaction == "t" * 64  # the longest taken, echoed whole
    ((control, raw),) = message.items
    with pytest.raises(Invalid) as invalid:
        Whole(0, 100).parse(raw)
    assert len(str(invalid.value)) < 100  # the value it quotes is cut short
    response = Response(
        status=Status.ERROR,
        control=control,
        at=AT,
        requested=raw,
        transaction=message.transaction,
        message=f"unknown control {control!r}",
    )
    wire = response.to_json("122238082763")
    assert len(wire) < 1024
    body = json.loads(wire)
    assert body["control"] == body["requested"] == "x" * 61 + "..."
    assert body["message"].endswith("...")
    assert body["transaction"] == "t" * 64
    shaped = Response(status=Status.ERROR, control="c", at=AT, requested={"a": [huge]})
    assert json.loads(shaped.to_json("1"))["requested"].startswith('{"a": ["xxx')
    short = Response(status=Status.ERROR, control="c", at=AT, requested={"a": 1})
    assert json.loads(short.to_json("1"))["requested"] == {"a": 1}  # short: as it came
    nan = Response(status=Status.ERROR, control="c", at=AT, requested=float("nan"))
    assert json.loads(nan.to_json("1"), parse_constant=pytest.fail)["requested"] == "nan"


def test_cloud_fields_name_the_profile_the_battery_runs() -> None:
    assert cloud_fields("mode", "backup", "self-consumption") == {"profile": "backup_only"}
    assert cloud_fields("reserve_soc", 40, "economy") == {
        "batteryBackupPercentage": 40,
        "profile": "cost_savings",
    }
    assert cloud_fields("charge_from_grid", "on", None) == {"chargeFromGrid": True}
