"""The shedding topics, below `<base>/shedding/`: one place, as `mqtt.topics` is for the rest.

Every payload is one plain word, like the bridge's other states: `<load>/state` is `on` or
`shed`, `<load>/reason` says why (`grid`, `soc`, `runway`, `manual`, `none`), `armed` is `on`
or `off`. The bridge listens on `armed/set` (the arm switch) and `<load>/set` (`on`: the
user's override), and on `sync`, its own marker that the retained states have all arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from envoy2mqtt.shedding.policy import Reason

LEVEL: Final = "shedding"  # the topic level under the base topic (and the ghosts' owner)
ON: Final = "on"
OFF: Final = "off"
SHED: Final = "shed"
_SWITCH: Final = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def switch_word(word: str) -> bool | None:
    """`on` / `off` (or true / false, 1 / 0, any case) as a bool; None for anything else."""
    return _SWITCH.get(word.strip().lower())


def reason_word(word: str | None) -> Reason | None:
    """A retained reason read back (None if it is not one)."""
    return Reason(word) if word in tuple(Reason) else None


class Parsed(NamedTuple):
    """A topic below the shedding root: the load it names (None: the stage's own) and leaf."""

    load: str | None
    leaf: str


@dataclass(frozen=True, slots=True)
class SheddingTopics:
    """Topic names of load shedding for one base topic."""

    base: str = "envoy2mqtt"

    @property
    def root(self) -> str:
        """`<base>/shedding`."""
        return f"{self.base}/{LEVEL}"

    @property
    def every(self) -> str:
        """The one subscription that sees all of them."""
        return f"{self.root}/#"

    @property
    def armed(self) -> str:
        """`on` / `off`, retained: whether new sheds happen."""
        return f"{self.root}/armed"

    @property
    def armed_set(self) -> str:
        """Where the arm switch is set (`on` / `off`; retained too: a standing setting)."""
        return f"{self.armed}/set"

    @property
    def dry_run(self) -> str:
        """`on` / `off`, retained: SHEDDING_DRY_RUN."""
        return f"{self.root}/dry_run"

    @property
    def sync(self) -> str:
        """The bridge's marker, not retained: published after subscribing, seen after every
        retained message of the subscription."""
        return f"{self.root}/sync"

    def state(self, load: str) -> str:
        """`on` / `shed`, retained."""
        return f"{self.root}/{load}/state"

    def reason(self, load: str) -> str:
        """Why the load is in its state, retained."""
        return f"{self.root}/{load}/reason"

    def command(self, load: str) -> str:
        """`on`: switch a shed load back on and leave it on for the rest of the outage."""
        return f"{self.root}/{load}/set"

    def parse(self, topic: str) -> Parsed | None:
        """Which of these topics `topic` is (None: not one of them)."""
        rest = topic.removeprefix(self.root + "/")
        if rest == topic:
            return None
        parts = rest.split("/")
        if parts in (["armed"], ["dry_run"], ["sync"]):
            return Parsed(None, parts[0])
        if parts == ["armed", "set"]:
            return Parsed(None, "armed/set")
        if len(parts) == 2 and parts[1] in ("state", "reason", "set"):
            return Parsed(parts[0], parts[1])
        return None
