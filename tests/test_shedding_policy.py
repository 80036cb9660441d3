"""The shedding policy as plain functions: conditions and times in, actions out, no sleeping."""

from __future__ import annotations

from envoy2mqtt.core.snapshot import GridStatus, Value
from envoy2mqtt.shedding.policy import Action, Command, Conditions, Policy, Reason, Rule

ON, OFF = GridStatus.ON_GRID, GridStatus.OFF_GRID
DRYER = Rule(name="dryer", tier=1, watts=3000)
AIRCON = Rule(name="aircon", tier=1)
HEAT_PUMP = Rule(name="heat-pump", tier=2, shed_below_soc=50, restore_above_soc=60)
FRIDGE = Rule(
    name="fridge", tier=3, shed_below_runway=30, restore_above_runway=45, watts=150, min_off=120
)


def policy(*rules: Rule, restore_after: float = 60, stagger: float = 10) -> Policy:
    return Policy(rules or (DRYER, AIRCON, HEAT_PUMP, FRIDGE), restore_after, stagger)


def seen(
    grid: GridStatus | None, soc: float = 80, runway: float = 600, load: float = 1000
) -> Conditions:
    return Conditions(grid, soc, runway, load)


def shed(*names: str, reason: Reason = Reason.GRID) -> list[Action]:
    return [Action(name, Command.SHED, reason) for name in names]


def restored(name: str, reason: Reason = Reason.GRID) -> list[Action]:
    return [Action(name, Command.RESTORE, reason)]


def test_every_tier1_load_is_shed_the_moment_the_grid_fails_and_only_then() -> None:
    p = policy()
    assert p.observe(0, seen(ON)) == []
    assert p.observe(1, seen(OFF)) == shed("dryer", "aircon")
    assert p.observe(2, seen(OFF)) == []  # once
    assert set(p.shed_loads()) == {"dryer", "aircon"}


def test_an_unknown_grid_status_changes_nothing() -> None:
    p = policy()
    assert p.observe(0, seen(None)) == []
    p.observe(1, seen(OFF))
    assert p.observe(100, seen(None)) == []  # no restore: the grid was not seen back
    assert set(p.shed_loads()) == {"dryer", "aircon"}


def test_restore_waits_for_a_stable_grid_then_one_at_a_time_most_important_first() -> None:
    p = policy(DRYER, AIRCON, HEAT_PUMP, restore_after=60, stagger=10)
    p.observe(0, seen(OFF))
    assert p.observe(1, seen(OFF, soc=40)) == shed("heat-pump", reason=Reason.SOC)
    assert p.observe(100, seen(ON)) == []  # the grid is back: the wait begins
    assert p.observe(159.9, seen(ON)) == []
    assert p.next_due(159.9) == 160
    assert p.observe(160, seen(ON)) == restored("heat-pump")  # tier 2 before tier 1
    assert p.observe(165, seen(ON)) == []  # the stagger
    assert p.next_due(165) == 170
    assert p.observe(170, seen(ON)) == restored("dryer")  # file order within a tier
    assert p.observe(180, seen(ON)) == restored("aircon")
    assert p.next_due(180) is None  # nothing left to restore
    assert list(p.shed_loads()) == []


def test_a_flicker_during_the_wait_restarts_it() -> None:
    p = policy(DRYER, restore_after=60)
    p.observe(0, seen(OFF))
    p.observe(10, seen(ON))
    assert p.observe(50, seen(OFF)) == []  # failed again: already shed
    p.observe(55, seen(ON))
    assert p.observe(70, seen(ON)) == []  # 60 s after the first return, not after this one
    assert p.observe(114.9, seen(ON)) == []
    assert p.observe(115, seen(ON)) == restored("dryer")


def test_a_failure_during_the_staggered_restore_sheds_what_came_back() -> None:
    p = policy(DRYER, AIRCON, restore_after=5, stagger=10)
    p.observe(0, seen(OFF))
    p.observe(1, seen(ON))
    assert p.observe(6, seen(ON)) == restored("dryer")
    assert p.observe(8, seen(OFF)) == shed("dryer")
    p.observe(9, seen(ON))
    assert p.observe(14, seen(ON)) == []  # still the stagger since the last restore
    assert p.observe(16, seen(ON)) == restored("dryer")


def test_charge_tier_has_hysteresis_off_grid() -> None:
    p = policy(HEAT_PUMP)
    assert p.observe(0, seen(ON, soc=30)) == []  # on grid the charge sheds nothing
    assert p.observe(1, seen(OFF, soc=55)) == []
    assert p.observe(2, seen(OFF, soc=49)) == shed("heat-pump", reason=Reason.SOC)
    assert p.observe(30, seen(OFF, soc=55)) == []  # above the shed threshold, below restore
    assert p.observe(40, seen(OFF, soc=59.9)) == []
    assert p.observe(50, seen(OFF, soc=60)) == restored("heat-pump", Reason.SOC)
    assert p.observe(60, seen(OFF, soc=55)) == []  # back above 50: stays on
    assert p.observe(70, seen(OFF, soc=48)) == shed("heat-pump", reason=Reason.SOC)


def test_runway_tier_counts_its_own_draw_before_coming_back() -> None:
    p = policy(FRIDGE)
    assert p.observe(0, seen(OFF, runway=31)) == []
    assert p.observe(1, seen(OFF, runway=29, load=1000)) == shed("fridge", reason=Reason.RUNWAY)
    # 50 min at 1000 W is 43.5 min with the fridge's 150 W back on: below 45, it waits
    assert p.observe(200, seen(OFF, runway=50, load=1000)) == []
    assert p.observe(210, seen(OFF, runway=52, load=1000)) == restored("fridge", Reason.RUNWAY)


def test_a_load_stays_off_at_least_its_min_off() -> None:
    p = policy(FRIDGE, restore_after=10, stagger=0)
    p.observe(0, seen(OFF, runway=10))
    p.observe(1, seen(ON))
    assert p.observe(20, seen(ON)) == []  # stable, but shed only 20 s ago
    assert p.next_due(20) == 120
    assert p.observe(120, seen(ON)) == restored("fridge")


def test_a_load_waiting_its_min_off_does_not_hold_up_the_others() -> None:
    p = policy(DRYER, FRIDGE, restore_after=10, stagger=5)
    p.observe(0, seen(OFF, runway=10))
    p.observe(1, seen(ON))
    assert p.observe(11, seen(ON)) == restored("dryer")
    assert p.observe(120, seen(ON)) == restored("fridge")


def test_disarmed_sheds_nothing_new_but_restores_what_it_shed() -> None:
    p = policy(DRYER, AIRCON, restore_after=0, stagger=0)
    p.observe(0, seen(OFF))
    p.armed = False
    assert p.observe(1, seen(ON)) == restored("dryer")  # no wait, no stagger configured
    assert p.observe(2, seen(ON)) == restored("aircon")
    assert p.observe(3, seen(OFF)) == []


def test_a_load_switched_on_by_hand_is_not_fought_for_the_rest_of_the_outage() -> None:
    p = policy(DRYER, AIRCON, restore_after=60)
    p.observe(0, seen(OFF))
    assert p.override("dryer", commanded=False) == Action(
        "dryer", Command.RESTORE, Reason.MANUAL, commanded=False
    )
    assert p.override("dryer", commanded=False) is None  # already on
    p.observe(10, seen(ON))
    assert p.observe(20, seen(OFF)) == []  # the same outage, flickering: left alone
    assert p.states["dryer"].reason is Reason.MANUAL
    p.observe(30, seen(ON))
    assert p.observe(90, seen(ON)) == restored("aircon")
    assert p.observe(200, seen(OFF)) == shed("dryer", "aircon")  # a new outage: shed again


def test_learned_state_after_a_restart_restores_nothing_before_its_time() -> None:
    p = policy(DRYER, AIRCON, restore_after=60, stagger=10)
    assert p.adopt("dryer", shed=True, reason=Reason.GRID, now=0)
    assert p.adopt("aircon", shed=False, reason=Reason.MANUAL, now=0)
    assert not p.adopt("nobody", shed=True, reason=Reason.GRID, now=0)
    assert p.observe(1, seen(ON)) == []  # on grid at start-up: for how long is unknown
    assert p.observe(60, seen(ON)) == []
    assert p.observe(61, seen(ON)) == restored("dryer")


def test_learned_state_never_overrides_a_decision_made_since_start() -> None:
    p = policy(DRYER)
    p.observe(0, seen(OFF))
    assert not p.adopt("dryer", shed=False, reason=Reason.NONE, now=1)
    assert p.states["dryer"].shed


def test_restart_during_an_outage_sheds_nothing_twice() -> None:
    p = policy(DRYER, AIRCON)
    p.adopt("dryer", shed=True, reason=Reason.GRID, now=0)
    assert p.observe(1, seen(OFF)) == shed("aircon")


def test_conditions_come_from_the_settled_values() -> None:
    values: dict[str, Value] = {
        "grid_status": "off-grid",
        "battery_soc": 41,
        "backup_runway": 95,
        "house_load_power": 1200,
    }
    assert Conditions.of(values) == Conditions(OFF, 41.0, 95.0, 1200.0)
    assert Conditions.of({"grid_status": "weird", "battery_soc": "x"}) == Conditions()
    assert Conditions(OFF, runway=60, load=0).runway_with(500) == 60  # no load: no estimate
