"""Which loads to switch off or back on, from the grid, the charge, the runway and the time.

Pure: `Policy.observe` takes what was seen and when (monotonic seconds) and returns actions;
it never reads a clock, so its tests need no sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from envoy2mqtt.core.snapshot import GridStatus, Value


class Reason(StrEnum):
    """Why a load is in its state."""

    GRID = "grid"  # tier 1: the grid failed (or, restoring: it came back)
    SOC = "soc"  # off grid and the battery below the load's threshold
    RUNWAY = "runway"  # off grid and too few minutes of battery left
    MANUAL = "manual"  # switched back on by hand during the outage: not fought
    NONE = "none"  # on, as it normally is


class Command(StrEnum):
    """What an action does to a load."""

    SHED = "shed"
    RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the policy is fed: the settled grid status, charge (%), runway (min), load (W)."""

    grid: GridStatus | None = None
    soc: float | None = None
    runway: float | None = None
    load: float | None = None

    @classmethod
    def of(cls, values: Mapping[str, Value]) -> Conditions:
        """The conditions in one snapshot's settled values (absent ones stay unknown)."""
        grid = values.get("grid_status")
        return cls(
            grid=GridStatus(grid) if grid in tuple(GridStatus) else None,
            soc=_number(values.get("battery_soc")),
            runway=_number(values.get("backup_runway")),
            load=_number(values.get("house_load_power")),
        )

    def runway_with(self, watts: float) -> float | None:
        """The runway were `watts` more drawn: what switching a load back on would leave."""
        if self.runway is None or self.load is None or self.load <= 0 or watts <= 0:
            return self.runway
        return self.runway * self.load / (self.load + watts)


def _number(value: Value | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One load as the policy sees it: its tier and thresholds (validated by `loads`)."""

    name: str
    tier: int  # 1 sheds with the grid; higher tiers are more important
    shed_below_soc: float | None = None
    restore_above_soc: float | None = None
    shed_below_runway: float | None = None  # minutes
    restore_above_runway: float | None = None
    watts: float = 0.0  # the load's own draw, estimated: the runway it would cost
    min_off: float = 0.0  # seconds it stays off at least

    def shed_reason(self, seen: Conditions) -> Reason | None:
        """Why, off grid, this load must be off now (None: it may stay on)."""
        if self.tier == 1:
            return Reason.GRID
        if _below(seen.soc, self.shed_below_soc):
            return Reason.SOC
        if _below(seen.runway, self.shed_below_runway):
            return Reason.RUNWAY
        return None

    def may_return(self, seen: Conditions) -> bool:
        """Whether, still off grid, this load may come back: past every threshold it has."""
        if self.tier == 1:
            return False
        if self.shed_below_soc is not None and not _at_least(seen.soc, self.restore_above_soc):
            return False
        return self.shed_below_runway is None or _at_least(
            seen.runway_with(self.watts), self.restore_above_runway
        )


def _below(value: float | None, threshold: float | None) -> bool:
    return value is not None and threshold is not None and value < threshold


def _at_least(value: float | None, threshold: float | None) -> bool:
    return value is not None and threshold is not None and value >= threshold


@dataclass(frozen=True, slots=True)
class Action:
    """Switch a load off (`shed`) or on (`restore`), and why.

    `commanded` False: only the state changes (the user already switched it on by hand).
    """

    load: str
    command: Command
    reason: Reason
    commanded: bool = True


@dataclass(slots=True)
class LoadState:
    """One load's state as the policy keeps it."""

    shed: bool = False
    reason: Reason = Reason.NONE
    since: float = -math.inf  # when it was shed (monotonic seconds)


@dataclass(slots=True)
class Policy:
    """The shedding state machine of one site's loads."""

    rules: Sequence[Rule]
    restore_after: float = 60.0  # the grid stable this long before anything is restored
    stagger: float = 10.0  # seconds between two restores
    armed: bool = True  # disarmed: nothing new is shed; what was shed is still restored
    states: dict[str, LoadState] = field(init=False)
    grid: GridStatus | None = None
    on_grid_since: float | None = None
    last_restore: float = -math.inf
    overridden: set[str] = field(default_factory=set)  # switched on by hand this outage
    decided: set[str] = field(default_factory=set)  # acted on since start (not re-learned)

    def __post_init__(self) -> None:
        self.states = {rule.name: LoadState() for rule in self.rules}

    def observe(self, now: float, seen: Conditions) -> list[Action]:
        """The actions these conditions call for at `now`: sheds at once, one restore at most."""
        self._track_grid(now, seen.grid)
        actions = self._sheds(now, seen) if self.armed else []
        restore = self._restore(now, seen)
        if restore is not None:
            actions.append(restore)
        return actions

    def stable(self, now: float) -> bool:
        """Whether the grid has been back for `restore_after` seconds."""
        since = self.on_grid_since
        on_grid = self.grid is GridStatus.ON_GRID
        return on_grid and since is not None and now - since >= self.restore_after

    def _track_grid(self, now: float, grid: GridStatus | None) -> None:
        if grid is None:
            return  # unknown: what was known holds
        if grid is GridStatus.OFF_GRID:
            self.on_grid_since = None  # a flicker restarts the wait
        elif self.on_grid_since is None:
            self.on_grid_since = now  # after a restart too: nothing restored before its time
        self.grid = grid
        if self.stable(now):
            self.overridden.clear()  # the outage is over

    def _sheds(self, now: float, seen: Conditions) -> list[Action]:
        if self.grid is not GridStatus.OFF_GRID:
            return []
        actions = []
        for rule in sorted(self.rules, key=lambda r: r.tier):  # least important first
            state = self.states[rule.name]
            if state.shed or rule.name in self.overridden:
                continue
            reason = rule.shed_reason(seen)
            if reason is not None:
                self._set(rule.name, LoadState(shed=True, reason=reason, since=now))
                actions.append(Action(rule.name, Command.SHED, reason))
        return actions

    def _restore(self, now: float, seen: Conditions) -> Action | None:
        """The most important shed load that may come back now, if the stagger allows one."""
        if now - self.last_restore < self.stagger:
            return None
        stable = self.stable(now)
        if not stable and self.grid is not GridStatus.OFF_GRID:
            return None  # on grid, but not for long enough yet (or never seen)
        for rule in self.by_importance():
            state = self.states[rule.name]
            if not state.shed or now - state.since < rule.min_off:
                continue
            if stable or rule.may_return(seen):
                self._set(rule.name, LoadState())
                self.last_restore = now
                return Action(rule.name, Command.RESTORE, Reason.GRID if stable else state.reason)
        return None

    def by_importance(self) -> list[Rule]:
        """The loads, most important (highest tier) first; file order within a tier."""
        return sorted(self.rules, key=lambda r: -r.tier)

    def override(self, name: str, *, commanded: bool) -> Action | None:
        """The user wants a shed load on: it is left on for the rest of the outage.

        `commanded`: the bridge is asked to switch it on (an override command); otherwise the
        user already did (its state topic said so) and only the state changes.
        """
        state = self.states.get(name)
        if state is None or not state.shed:
            return None
        self._set(name, LoadState(reason=Reason.MANUAL))
        self.overridden.add(name)  # until the grid is stable again: a flicker does not fight it
        return Action(name, Command.RESTORE, Reason.MANUAL, commanded=commanded)

    def adopt(self, name: str, *, shed: bool, reason: Reason, now: float) -> bool:
        """Take a load's state learned from its retained topic (after a restart).

        Only for loads not acted on since start: the policy's own newer decision wins. The
        load counts as shed from `now` (its `min_off` starts again). Returns whether taken.
        """
        if name not in self.states or name in self.decided:
            return False
        if shed:
            self.states[name] = LoadState(shed=True, reason=reason, since=now)
        else:
            self.states[name] = LoadState(reason=reason)
            if reason is Reason.MANUAL:
                self.overridden.add(name)
        return True

    def next_due(self, now: float) -> float | None:
        """When, with nothing new seen, a restore could next become due (None: not by time)."""
        shed = [rule for rule in self.rules if self.states[rule.name].shed]
        if not shed:
            return None
        times = [self.last_restore + self.stagger]
        times += [self.states[rule.name].since + rule.min_off for rule in shed]
        if self.grid is GridStatus.ON_GRID and self.on_grid_since is not None:
            times.append(self.on_grid_since + self.restore_after)
        future = [t for t in times if t > now]
        return min(future) if future else None

    def shed_loads(self) -> Iterable[str]:
        """The loads shed now."""
        return (name for name, state in self.states.items() if state.shed)

    def _set(self, name: str, state: LoadState) -> None:
        self.states[name] = state
        self.decided.add(name)
