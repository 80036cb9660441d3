"""One gateway's commands, carried out beside its lanes: checked, rate-limited, written
through the gateway's one-request gate (ahead of the normal reads), read back, watched for
a revert, and answered on `<base>/<serial>/response`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.control.answers import Answers
from envoy2mqtt.control.checks import conflicts, why_not
from envoy2mqtt.control.commands import Invalid, RateLimit, Transaction, parse_message, same_value
from envoy2mqtt.control.controls import Offered, offered
from envoy2mqtt.control.discovery import control_configs
from envoy2mqtt.control.responses import Status
from envoy2mqtt.control.session import Command, ControlOptions, Session
from envoy2mqtt.control.watch import Watched, Watches
from envoy2mqtt.control.write import ignored_because, write
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.gateway import writes
from envoy2mqtt.gateway.errors import GatewayError
from envoy2mqtt.gateway.gate import Lane, current_lane
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.topics import Topics

log = logging.getLogger(__name__)

# ahead of the normal and inverter reads, behind the grid watch: never overlapping (the gate)
COMMAND_LANE: Final = Lane.BATTERY
NOT_SENT: Final = "nothing in this message was sent"
OTHERS: Final = "not sent: another value in the message is not valid"
OFFLINE: Final = "the gateway is not connected: nothing was sent"


class Controller:
    """The commands of one gateway (its bridge keeps it across reconnects)."""

    def __init__(
        self,
        link: Link,
        topics: Topics,
        options: ControlOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Ready for commands; `run()` carries them out while the gateway is connected."""
        self.link, self.topics, self.options = link, topics, options
        self.offered: dict[str, Offered] = {}
        self.refused: set[str] = set()  # the gateway answered 401/403: withdrawn
        self.watches = Watches()
        self._clock = clock
        self._limits = RateLimit(options.rate_limit)
        self._queue: asyncio.Queue[tuple[Command, ...]] = asyncio.Queue()
        self._session: Session | None = None
        self.answers = Answers(link, topics)
        self._announced: tuple[tuple[str, ...], int] | None = None  # (paths, entity generation)

    # -- commands from MQTT ---------------------------------------------------------------

    def submit(self, level: str, suffix: str, payload: bytes, topic: str) -> None:
        """One command message (not retained) for this gateway, `suffix` below its topic."""
        message = parse_message(suffix, payload)
        self.answers.serial = self.answers.serial or level
        transaction = message.transaction
        if message.error is not None:
            self.answers.answer(Status.ERROR, None, transaction, message=message.error)
            return
        session = self._session
        if session is None:
            for path, raw in message.items:
                self.answers.answer(Status.ERROR, path, transaction, raw, message=OFFLINE)
            return
        commands, errors = self._checked(message.items, transaction, topic, session.data)
        if errors:  # one bad value: nothing of the message goes, and every part says so
            wrong = {path: why for path, _raw, why in errors}
            for path, raw in message.items:
                why = wrong.get(path, OTHERS)
                told = f"{why}; {NOT_SENT}" if len(message.items) > 1 else why
                self.answers.answer(Status.ERROR, path, transaction, raw, message=told)
            return
        now, accepted = self._clock(), []
        for command in commands:
            wait = self._limits.wait(command.path, now)
            if wait:
                limited = (
                    f"rate limited: one write of {command.path} per "
                    f"{self.options.rate_limit:g} s; try again in {wait:.0f} s"
                )
                self.answers.respond(command, Status.ERROR, message=limited)
                continue
            log.info(
                "%s: command %s = %s from %s",
                self.answers.serial,
                command.path,
                command.value,
                topic,
            )
            self.watches.forget(command.path)
            accepted.append(command)
        if accepted:
            self._queue.put_nowait(tuple(accepted))

    def _checked(
        self,
        items: Iterable[tuple[str, object]],
        transaction: Transaction,
        topic: str,
        data: EnvoyData,
    ) -> tuple[list[Command], list[tuple[str, object, str]]]:
        commands: list[Command] = []
        errors: list[tuple[str, object, str]] = []
        for path, raw in items:
            found = self.offered.get(path)
            if found is None:
                errors.append((path, raw, why_not(path, self.options.scope, self.refused)))
                continue
            try:
                value = found.control.kind.parse(raw)
            except Invalid as err:
                errors.append((path, raw, f"{found.control.key}: {err}"))
                continue
            commands.append(
                Command(offered=found, value=value, source=topic, transaction=transaction)
            )
        given = {c.path: (c.offered, c.value) for c in commands}
        errors += [(path, given[path][1], why) for path, why in conflicts(given, data)]
        return commands, errors

    # -- carrying them out ----------------------------------------------------------------

    async def run(self, session: Session) -> None:
        """Carry out commands through `session` until cancelled (the connection ends)."""
        current_lane.set(COMMAND_LANE)
        self._session, self.refused = session, set()
        batch: tuple[Command, ...] = ()
        try:
            while True:
                batch = await self._queue.get()
                await self._execute(session, batch)
                batch = ()
        finally:
            self._session = None
            self._abandon(batch)

    def _abandon(self, in_flight: tuple[Command, ...]) -> None:
        lost = "the connection to the gateway was lost during the write: it may or may not apply"
        for command in in_flight:
            self.answers.respond(command, Status.ERROR, message=lost)
        while not self._queue.empty():
            for command in self._queue.get_nowait():
                self.answers.respond(command, Status.ERROR, message=OFFLINE)

    async def _execute(self, session: Session, batch: tuple[Command, ...]) -> None:
        written: list[Command] = []
        units: dict[tuple[str, str | None], list[Command]] = {}
        for command in batch:  # one write per unit: the tariff, a dry contact, ...
            control = command.offered.control
            units.setdefault((control.write, command.offered.target), []).append(command)
        for commands in units.values():
            values = [(c.offered, c.value) for c in commands]
            failure = await write(session.client, values, self.refused)
            if failure is None:
                written += commands
            for command in commands if failure is not None else ():
                self.answers.respond(command, Status.ERROR, message=failure)
        if written:
            await self._confirm(session, written)

    async def _confirm(self, session: Session, written: list[Command]) -> None:
        """Read back; a value not yet shown gets `settle` seconds more, then counts as ignored."""
        try:
            data = await session.refresh()
            if self.options.settle > 0 and any(not _took(c, data) for c in written):
                await session.clock.sleep(self.options.settle)
                data = await session.refresh()
        except GatewayError as err:
            for command in written:
                self.answers.respond(
                    command, Status.ERROR, message=f"written, but not read back: {err}"
                )
            return
        since, now = session.normal_started, session.clock.monotonic()
        for command in written:
            actual = command.offered.actual(data)
            if not _took(command, data):
                why = ignored_because(command.offered, command.value, actual, data)
                log.warning(
                    "%s: %s = %s ignored: %s", self.answers.serial, command.path, command.value, why
                )
                self.answers.respond(command, Status.IGNORED, actual=actual, message=why)
                continue
            log.info("%s: %s is now %s", self.answers.serial, command.path, actual)
            self.answers.respond(command, Status.OK, actual=actual)
            if self.options.watch > 0:
                self.watches.arm(
                    Watched(
                        path=command.path,
                        requested=command.value,
                        since=since,
                        until=now + self.options.watch,
                        transaction=command.transaction,
                        reasserted=command.reassert,
                    )
                )

    # -- after every publish --------------------------------------------------------------

    def observe(self, session: Session) -> None:
        """What can be controlled now (and its entities); values gone back since the write."""
        self.answers.serial = session.publisher.info.serial
        self._offer(session)
        if not len(self.watches):
            return
        data, now = session.data, session.clock.monotonic()

        def actual(path: str) -> Value | None:
            found = self.offered.get(path)
            return found.actual(data) if found is not None else None

        for watched, value in self.watches.check(actual, session.normal_started, now):
            self._reverted(watched, value)

    def _reverted(self, watched: Watched, value: Value) -> None:
        self.answers.revert(watched, value)
        serial = self.answers.serial
        found = self.offered.get(watched.path)
        if self.options.reassert and found and found.control.reassert and not watched.reasserted:
            log.info("%s: writing %s = %s once more", serial, watched.path, watched.requested)
            again = Command(
                offered=found,
                value=watched.requested,
                source="reassert",
                transaction=watched.transaction,
                reassert=True,
            )
            self._queue.put_nowait((again,))

    def _offer(self, session: Session) -> None:
        try:
            can = writes.writable(session.client)
        except GatewayError:
            return
        now = offered(can, session.data, self.options.scope, self.refused)
        if now.keys() != self.offered.keys():
            log.info(
                "%s: controls offered: %s", self.answers.serial, ", ".join(sorted(now)) or "none"
            )
        self.offered = now
        publisher = session.publisher
        announcer = publisher.announcer
        announced = (tuple(sorted(now)), announcer.generation)
        if self._announced == announced:
            return
        self._announced = announced
        configs = control_configs(
            self.topics, publisher.info, now.values(), announcer.entities, publisher.name
        )
        publisher.announce_controls(configs)


def _took(command: Command, data: EnvoyData) -> bool:
    return same_value(command.offered.actual(data), command.value)
