"""Load shedding as an extension: feeds the policy, sends its commands, keeps its state.

It follows its gateway's stream: every `SnapshotSettled` is handled before the lanes send
the snapshot's own messages, so a tier-1 command is on the link's urgent queue ahead of the
grid event itself. Commands are never retained, and a retained override on a load's command
topic is never carried out (`mqtt.commands`); the retained per-load state is what a restarted
bridge learns what it had shed from (the `sync` marker tells it when every retained message
has arrived). While the broker is away, commands wait here, one per load: an `off` and a
later `on` that never went out cancel each other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC
from typing import Final

from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.mqtt.commands import take_commands
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.polling.bridge import Bridge
from envoy2mqtt.polling.events import (
    GatewayConnected,
    HomeAssistantOnline,
    MqttConnected,
    SnapshotSettled,
)
from envoy2mqtt.shedding.notices import Notices, shed_event
from envoy2mqtt.shedding.plan import Load, Plan
from envoy2mqtt.shedding.policy import Action, Command, Conditions, Policy, Reason
from envoy2mqtt.shedding.topics import (
    LEVEL,
    OFF,
    ON,
    SHED,
    SheddingTopics,
    reason_word,
    switch_word,
)

log = logging.getLogger(__name__)

LEARN_TIMEOUT: Final = 5.0  # no retained state by then (broker away): decide without it


class Shedder(Extension):
    """Load shedding for one site: its policy, its loads' commands and its topics."""

    def __init__(
        self, hub: Hub, plan: Plan, *, discovery: bool = True, clock: Clock | None = None
    ) -> None:
        """References and the policy's initial state; `async with` starts it."""
        super().__init__(hub)
        self.plan, self.link = plan, hub.link
        self.names = SheddingTopics(hub.topics.base)
        self.clock = clock or Clock()
        self.policy = Policy(
            [load.rule for load in plan.loads],
            restore_after=plan.restore_after,
            stagger=plan.stagger,
        )
        self.learned = False  # the retained states have been read back (or none came)
        self.publisher: GatewayPublisher | None = None
        self.notices = Notices(hub.link, hub.topics, self.names, discovery)
        self._started = self.clock.monotonic()
        self._nonce = uuid.uuid4().hex[:12]
        self._retained: dict[str, dict[str, str]] = {}  # load -> {"state"|"reason": word}
        self._arm_set = False  # an arm setting came from `armed/set`: it wins over `armed`
        self._values: Mapping[str, Value] = {}
        self._seen: Conditions | None = None
        self._deferred = False  # conditions seen before `ready`, not yet decided on
        self._held: dict[str, Action] = {}  # commands waiting for the broker, one per load
        self._notices: list[tuple[Action, Mapping[str, Value]]] = []
        self._saw_off: set[str] = set()  # shed loads whose state topic has since said off
        self._refused: set[str] = set()  # gateways told they are not the configured one
        self._blind = False  # warned that the gateway has no grid status
        self._wake = asyncio.Event()
        self._watched: Bridge | None = None  # the gateway whose grid counts

    def start(self) -> None:
        """Subscribe to the shedding topics, the loads' own state topics and the streams."""
        self.link.subscribe(self.names.every, self._on_message)
        for load in self.plan.loads:
            take_commands(self.link, self.names.command(load.name), self._on_command)
        for topic in {load.feedback.topic for load in self.plan.loads if load.feedback}:
            self.link.subscribe(topic, self._on_feedback)
        self.on_gateways(GatewayConnected, self._offered)
        self.on_gateways(SnapshotSettled, self._settled)
        self.on(self.hub.events, MqttConnected, lambda _: self.connected())
        self.on(self.hub.events, HomeAssistantOnline, lambda _: self.republish())
        self.spawn(self.run(), "shedding")

    # -- following the gateway ----------------------------------------------------------------

    def _offered(self, bridge: Bridge, connected: GatewayConnected) -> None:
        """A gateway connected: if its grid is the one that counts, follow its snapshots."""
        serial = connected.info.serial
        if not self.plan.watches(connected.settings, serial):
            if serial not in self._refused:
                self._refused.add(serial)
                log.warning(
                    "shedding: gateway %s is not %s: not watched", serial, self.plan.gateway
                )
            return
        publisher = connected.session.publisher
        if self.publisher is not publisher:
            log.info("shedding: %d loads follow gateway %s", len(self.plan.loads), serial)
        self._watched, self.publisher = bridge, publisher
        self.notices.announce(publisher, self.plan)

    def _settled(self, bridge: Bridge, settled: SnapshotSettled) -> None:
        if bridge is self._watched:
            self.observe(settled.values)

    def connected(self) -> None:
        """The broker (re)connected: send what waited, then read the retained state back."""
        for action in self._held.values():
            load = self.plan.load(action.load)
            if load is not None:
                self._send(load, action)
        self._held.clear()
        self.link.publish(self.names.sync, self._nonce, qos=1)
        if self.learned:
            self.republish()

    def republish(self) -> None:
        """Discovery, the switch and every load's state (after a reconnect or HA's birth)."""
        if not self.learned:
            return  # publishing now would overwrite the retained state still to be read
        if self.publisher is not None:
            self.notices.announce(self.publisher, self.plan)
        self.notices.everything(self.policy, self.plan)

    @property
    def level(self) -> str:
        """The topic level its discovery configs are filed under (for the ghost sweep)."""
        return LEVEL

    @property
    def discovery_topics(self) -> frozenset[str]:
        """The entity configs published (the app's ghost sweep keeps them)."""
        return self.notices.discovery_topics

    # -- deciding ----------------------------------------------------------------------------

    def observe(self, values: Mapping[str, Value]) -> None:
        """A snapshot's settled values: decide now (its events go out after our commands)."""
        self._values = values
        self._seen = Conditions.of(values)
        if self._seen.grid is None and not self._blind:
            self._blind = True
            log.warning("shedding: this gateway reports no grid status: nothing will be shed")
        if self.ready:
            self._decide()
        else:
            self._deferred = True  # decided once the retained state is known (or not coming)
            self._wake.set()

    @property
    def ready(self) -> bool:
        """Whether decisions may be made: the retained state is known, or will not come."""
        return self.learned or self.clock.monotonic() - self._started >= LEARN_TIMEOUT

    def _decide(self) -> None:
        self._deferred = False
        if self._seen is None:
            return
        for action in self.policy.observe(self.clock.monotonic(), self._seen):
            self._act(action)
        self._wake.set()  # the grid may be back: `run` sets its timer for the restore

    def _act(self, action: Action) -> None:
        load = self.plan.load(action.load)
        if load is None:
            return
        verb = "shed" if action.command is Command.SHED else "restored"
        log.info("shedding: %s %s (%s)", load.name, verb, action.reason.value)
        if action.commanded:
            if self.plan.dry_run:
                log.info("shedding: dry run, %s not commanded", load.name)
            elif self.link.connected.is_set():
                self._send(load, action)
            else:
                self._hold(action)
        self._saw_off.discard(load.name)
        self._notices.append((action, dict(self._values)))
        self._wake.set()  # its state and event go out after the publisher's own events

    def _send(self, load: Load, action: Action) -> None:
        switch = load.off if action.command is Command.SHED else load.on
        self.link.publish(switch.topic, switch.payload, qos=switch.qos, urgent=True)

    def _hold(self, action: Action) -> None:
        waiting = self._held.pop(action.load, None)
        if waiting is not None and waiting.command is not action.command:
            return  # neither went out: the load is as it was, and as it should be
        self._held[action.load] = action

    # -- time --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish states and events as decided; restore on time with nothing new seen."""
        while True:
            self._flush_notices()
            if self.ready and self._deferred:
                self._decide()
                continue
            now = self.clock.monotonic()
            due = self._started + LEARN_TIMEOUT if not self.ready else self._due(now)
            self._wake.clear()
            try:
                async with asyncio.timeout(None if due is None else max(due - now, 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                if self.ready and self._seen is not None:
                    self._decide()

    def _due(self, now: float) -> float | None:
        return self.policy.next_due(now) if self._seen is not None else None

    def _flush_notices(self) -> None:
        notices, self._notices = self._notices, []
        for action, values in notices:
            self.notices.load(self.policy, action.load)
            if self.publisher is not None:
                at = self.clock.wall().astimezone(UTC)
                event = shed_event(action, self.plan, values, at)
                self.notices.event(self.publisher.info.serial, event)

    # -- listening ---------------------------------------------------------------------------

    async def _on_message(self, topic: str, payload: bytes) -> None:
        parsed = self.names.parse(topic)
        if parsed is None or not payload:
            return
        word = payload.decode(errors="replace").strip()
        if parsed.leaf == "sync":
            if word == self._nonce and not self.learned:
                self._learn()
        elif parsed.leaf == "armed/set":
            self._arm(word, source=topic)
        elif parsed.leaf == "armed":
            armed = switch_word(word)
            if not self.learned and not self._arm_set and armed is not None:
                self.policy.armed = armed
        elif parsed.load is not None and parsed.leaf in ("state", "reason") and not self.learned:
            self._retained.setdefault(parsed.load, {})[parsed.leaf] = word

    def _learn(self) -> None:
        """Every retained message has arrived: take what it says of loads not decided since."""
        self.learned = True
        now = self.clock.monotonic()
        for name, said in self._retained.items():
            shed = said.get("state") == SHED
            reason = reason_word(said.get("reason")) or (Reason.GRID if shed else Reason.NONE)
            if self.policy.adopt(name, shed=shed, reason=reason, now=now) and shed:
                log.info("shedding: %s was shed (%s) before the restart", name, reason.value)
        self._retained.clear()
        self.republish()
        self._decide()

    def _arm(self, word: str, *, source: str) -> None:
        armed = switch_word(word)
        if armed is None:
            log.warning("shedding: %s takes on or off, not %r", source, word[:20])
            return
        self._arm_set = True
        if armed != self.policy.armed:
            log.info("shedding %s (%s)", "armed" if armed else "disarmed", source)
            self.policy.armed = armed
            if armed and self.ready:
                self._decide()
        if self.learned:
            self.notices.retain(self.names.armed, ON if armed else OFF)

    async def _on_command(self, topic: str, payload: bytes) -> None:
        """`<load>/set` (live only): `on` switches a shed load back on for the outage."""
        parsed = self.names.parse(topic)
        if parsed is None or parsed.load is None:
            return
        name, word = parsed.load, payload.decode(errors="replace").strip()
        if word.lower() != ON:
            log.warning("shedding: %s takes on, not %r", topic, word[:20])
            return
        action = self.policy.override(name, commanded=True)
        if action is not None:
            self._act(action)

    async def _on_feedback(self, topic: str, payload: bytes) -> None:
        """A load's own state topic: an `on` after its `off` is the user switching it back."""
        for load in self.plan.loads:
            feedback = load.feedback
            if feedback is None or feedback.topic != topic:
                continue
            said = feedback.reads(payload)
            if said is None or not self.policy.states[load.name].shed:
                continue
            if not said:
                self._saw_off.add(load.name)
            elif load.name in self._saw_off:
                action = self.policy.override(load.name, commanded=False)
                if action is not None:
                    self._act(action)
