"""Change detection, counter integrity and debouncing: pure functions, plain tests."""

import logging

import pytest

from envoy2mqtt.core.changes import ChangeDetector, CounterGuard, Debouncer, Hold


def test_unchanged_value_is_not_republished() -> None:
    changes = ChangeDetector()
    assert changes.diff({"battery_soc": 80}, now=0) == {"battery_soc": 80}
    assert changes.diff({"battery_soc": 80}, now=1) == {}


def test_unchanged_value_is_refreshed_after_the_heartbeat() -> None:
    changes = ChangeDetector(heartbeat=300)
    changes.diff({"production_power": 100}, now=0)
    assert changes.diff({"production_power": 100}, now=299) == {}
    assert changes.diff({"production_power": 100}, now=300) == {"production_power": 100}


def test_deadband_suppresses_small_changes_only() -> None:
    changes = ChangeDetector()
    bands = {"net_power": 5.0}
    changes.diff({"net_power": 100}, now=0, deadbands=bands)
    assert changes.diff({"net_power": 104}, now=1, deadbands=bands) == {}
    assert changes.diff({"net_power": 106}, now=2, deadbands=bands) == {"net_power": 106}


def test_words_change_on_any_difference() -> None:
    changes = ChangeDetector()
    changes.diff({"grid_status": "on-grid"}, now=0, deadbands={"grid_status": 100})
    assert changes.diff({"grid_status": "off-grid"}, now=1) == {"grid_status": "off-grid"}


def test_vanished_keys_are_reported_once() -> None:
    changes = ChangeDetector()
    changes.diff({"a": 1, "b": 2}, now=0)
    assert changes.vanished({"a": 1}) == ["b"]
    assert changes.vanished({"a": 1}) == []


def test_counter_never_goes_backwards_and_holds_last_good() -> None:
    guard = CounterGuard()
    assert guard.check("lifetime", 1000) == 1000
    assert guard.check("lifetime", 0) == 1000
    assert guard.check("lifetime", 990) == 1000
    assert guard.check("lifetime", 1010) == 1010


def test_today_counter_resets_only_after_the_day_changes() -> None:
    guard = CounterGuard()
    assert guard.check("today", 5000, daily=True) == 5000
    # a glitch during the day is held
    assert guard.check("today", 0, daily=True) == 5000
    # the reset that follows midnight is genuine
    assert guard.check("today", 3, daily=True, day_changed=True) == 3
    assert guard.check("today", 40, daily=True) == 40


def test_late_reset_after_midnight_is_accepted_without_a_spike() -> None:
    guard = CounterGuard()
    guard.check("today", 5000, daily=True)
    # first reading of the new day still shows yesterday's total: held, no spike
    assert guard.check("today", 5010, daily=True, day_changed=True) == 5010
    # the gateway resets a few minutes late: accepted as the new day
    assert guard.check("today", 2, daily=True) == 2
    # a later glitch that day is held again
    assert guard.check("today", 0, daily=True) == 2


def test_lifetime_counters_never_reset_even_at_midnight() -> None:
    guard = CounterGuard()
    guard.check("lifetime", 5000)
    assert guard.check("lifetime", 1, day_changed=True) == 5000


def test_counter_glitch_is_logged_once(caplog: "object") -> None:
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    guard = CounterGuard()
    guard.check("x", 10)
    with caplog.at_level(logging.WARNING):
        guard.check("x", 1)
        guard.check("x", 2)
    assert sum("went backwards" in r.message for r in caplog.records) == 1


def test_debounce_needs_consecutive_reads() -> None:
    debounce = Debouncer(reads=2)
    assert debounce.feed("grid", "on-grid") == "on-grid"
    assert debounce.feed("grid", "off-grid") == "on-grid"
    assert debounce.feed("grid", "on-grid") == "on-grid"  # a glitch: no flap
    assert debounce.feed("grid", "off-grid") == "on-grid"
    assert debounce.feed("grid", "off-grid") == "off-grid"


def test_debounce_says_when_a_change_awaits_confirmation() -> None:
    debounce = Debouncer(reads=3)
    debounce.feed("grid", "on-grid")
    assert not debounce.pending("grid")
    debounce.feed("grid", "off-grid")
    assert debounce.pending("grid")
    debounce.feed("grid", "off-grid")
    assert debounce.pending("grid")  # two of three reads
    assert debounce.feed("grid", "off-grid") == "off-grid"
    assert not debounce.pending("grid")
    debounce.feed("grid", "on-grid")
    debounce.feed("grid", "off-grid")  # contradicted: back to the believed state
    assert not debounce.pending("grid")


def test_paced_value_waits_its_interval_unless_it_jumps() -> None:
    changes = ChangeDetector(heartbeat=300)
    pacing = {"power": (15.0, 500.0), "energy": (60.0, 0.0)}
    assert changes.diff({"power": 1000, "energy": 10}, 0.0, None, pacing) == {
        "power": 1000,
        "energy": 10,
    }
    assert changes.diff({"power": 1100, "energy": 11}, 5.0, None, pacing) == {}  # held back
    assert changes.diff({"power": 1700, "energy": 12}, 6.0, None, pacing) == {"power": 1700}
    assert changes.diff({"power": 1750, "energy": 13}, 21.0, None, pacing) == {"power": 1750}
    assert changes.diff({"power": 1750, "energy": 14}, 59.0, None, pacing) == {}
    assert changes.diff({"power": 1750, "energy": 15}, 60.0, None, pacing) == {"energy": 15}


def test_a_held_change_that_reverts_is_not_published() -> None:
    changes = ChangeDetector(heartbeat=300)
    pacing = {"power": (15.0, 0.0)}
    changes.diff({"power": 1000}, 0.0, None, pacing)
    assert changes.diff({"power": 1200}, 5.0, None, pacing) == {}
    assert changes.diff({"power": 1000}, 20.0, None, pacing) == {}


CONTACT = "dry_contact/NC1/status"


def publish(changes: ChangeDetector, hold: Hold, values: dict[str, str], now: float) -> object:
    """What a publisher sends: the held values, diffed."""
    return changes.diff(hold.apply(values, changes.last), now)


def test_a_held_change_that_goes_back_is_never_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes, hold = ChangeDetector(), Hold("122")
    assert publish(changes, hold, {CONTACT: "closed"}, 0) == {CONTACT: "closed"}
    hold.hold([CONTACT])
    with caplog.at_level(logging.INFO):
        assert publish(changes, hold, {CONTACT: "open"}, 1) == {}
        assert publish(changes, hold, {CONTACT: "open"}, 2) == {}
        assert publish(changes, hold, {CONTACT: "closed"}, 3) == {}
        hold.hold([])
        assert publish(changes, hold, {CONTACT: "closed"}, 4) == {}
    assert [r.message for r in caplog.records if r.levelno == logging.INFO] == [
        "122: dry_contact/NC1/status read open, back to closed while held: dropped"
    ]


def test_a_held_change_still_read_when_its_hold_ends_is_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes, hold = ChangeDetector(), Hold("122")
    publish(changes, hold, {CONTACT: "closed", "other": "a"}, 0)
    hold.hold([CONTACT])
    with caplog.at_level(logging.INFO):
        assert publish(changes, hold, {CONTACT: "open", "other": "b"}, 1) == {"other": "b"}
        hold.hold(())
        assert publish(changes, hold, {CONTACT: "open", "other": "b"}, 2) == {CONTACT: "open"}
        assert publish(changes, hold, {CONTACT: "open", "other": "b"}, 3) == {}
    assert [r.message for r in caplog.records if r.levelno == logging.INFO] == [
        "122: dry_contact/NC1/status closed -> open, still read after its hold: published"
    ]


def test_a_held_value_never_published_is_published_as_read() -> None:
    changes, hold = ChangeDetector(), Hold()
    hold.hold([CONTACT])
    assert publish(changes, hold, {CONTACT: "open"}, 0) == {CONTACT: "open"}  # nothing to keep


def test_a_held_value_is_refreshed_at_the_heartbeat_as_it_was_published() -> None:
    changes, hold = ChangeDetector(heartbeat=300), Hold()
    publish(changes, hold, {CONTACT: "closed"}, 0)
    hold.hold([CONTACT])
    assert publish(changes, hold, {CONTACT: "open"}, 300) == {CONTACT: "closed"}
