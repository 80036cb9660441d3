"""One gateway's commands, carried out beside its lanes: checked, rate-limited, written
(through the gateway's one-request gate, or battery settings through Enlighten), confirmed
from what the gateway does, watched for a revert, and answered on `<base>/<serial>/response`.

A write the first read-back does not show yet is answered `pending` and looked at again every
`tick` while other commands go on; it ends `ok` once the gateway shows it, or `ignored` when its
time is up. Battery settings are confirmed from the battery controller's live values (secctrl,
/ivp/sc/sched), never from the tariff file (on D8.3 a stale copy) nor from the cloud's own view
(it lags 5-15 min). Once confirmed, a value is watched a while in case it goes back (Enphase's
cloud puts a locally set mode back within a minute or two on older firmware); only readings
begun after the confirmation count.

Here too: the controller's options and what it needs of the connected lanes (`Session`), the
writes as `gateway.writes` calls, the watches, and the answers' publishing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Protocol

from pyenphase.models.envoy import EnvoyData

from envoy2mqtt.auth.battery import BatteryCloudError, EnlightenBattery, cloud_fields
from envoy2mqtt.control.commands import (
    Invalid,
    RateLimit,
    Response,
    Status,
    Transaction,
    parse_message,
    reverted,
    same_value,
)
from envoy2mqtt.control.controls import (
    CONTACT_STATUS,
    Offered,
    Scope,
    conflicts,
    contact_statuses,
    current_name,
    offered,
    why_not,
)
from envoy2mqtt.control.discovery import control_configs, response_topic
from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GridStatus, Value, grid_status
from envoy2mqtt.core.stream import EventStream
from envoy2mqtt.gateway import writes
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.errors import GatewayError
from envoy2mqtt.gateway.gate import Lane, current_lane
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.publisher import GatewayPublisher
from envoy2mqtt.mqtt.topics import Topics
from envoy2mqtt.polling.events import BatteryPathChosen


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlOptions:
    """CONTROLS and how commands are looked after."""

    scope: Scope
    watch: float = 300.0  # seconds a confirmed value is watched for a revert (0: not at all)
    reassert: bool = False  # write a reverted storage setting once more
    rate_limit: float = 10.0  # seconds between two writes of one control
    settle: float = 5.0  # seconds a local battery or generator write may take to show
    battery_path: str = "auto"  # BATTERY_CONTROL_PATH: auto, local or enlighten
    cloud: float = 30.0  # seconds a battery write through Enlighten may take to show
    relay_open: float = 60.0  # the grid relay opens ~27 s after the command (top-off first)
    relay_close: float = 30.0  # ... and closes in 8-15 s
    contact: float = 5.0  # a dry contact shows a write within ~3 s
    phantom: float = 90.0  # after a settings write NC contacts read `open` for 5-90 s

    @property
    def tick(self) -> float:
        """How often writes on their way are looked at (seconds)."""
        least = min(self.settle or 5.0, self.cloud, self.relay_close, self.contact)
        return min(2.0, max(0.05, least / 5))


class Session(Protocol):
    """What a controller needs of the connected gateway's lanes (`lanes.Lanes`)."""

    @property
    def client(self) -> GatewayClient: ...
    @property
    def publisher(self) -> GatewayPublisher: ...
    @property
    def data(self) -> EnvoyData: ...
    @property
    def normal_started(self) -> float: ...
    @property
    def contacts_started(self) -> float: ...
    @property
    def clock(self) -> Clock: ...

    async def refresh(self) -> EnvoyData:
        """A full read now, published."""
        ...

    async def read_contacts(self) -> EnvoyData:
        """The dry contacts read now on their own, laid over the data, published."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A valid value for an offered control, on its way to the gateway."""

    offered: Offered
    value: Value
    source: str  # the topic it came on
    transaction: Transaction = None
    reassert: bool = False
    named: str | None = None  # the deprecated name it was sent under: answered under it

    @property
    def path(self) -> str:
        """The control's command path."""
        return self.offered.path

    @property
    def answered_as(self) -> str:
        """The name its answers give: the one it was sent with."""
        return self.named or self.path


@dataclass(frozen=True, slots=True, kw_only=True)
class Watched:
    """A value written and confirmed, watched until `until` (monotonic seconds)."""

    path: str
    requested: Value
    since: float  # when the read-back that confirmed it began
    until: float
    transaction: Transaction = None
    reasserted: bool = False  # written once more after a revert already
    named: str | None = None  # the deprecated name the command was sent under


@dataclass(slots=True)
class Watches:
    """The values being watched, by command path."""

    _watched: dict[str, Watched] = field(default_factory=dict)

    def arm(self, watched: Watched) -> None:
        """Watch a confirmed value (replacing an older watch of the same control)."""
        self._watched[watched.path] = watched

    def forget(self, path: str) -> None:
        """Stop watching a control (a new command for it is on its way)."""
        self._watched.pop(path, None)

    def get(self, path: str) -> Watched | None:
        """The watch of a control, if there is one."""
        return self._watched.get(path)

    def check(
        self,
        actual: Callable[[str], Value | None],
        read_since: Callable[[str], float],
        now: float,
    ) -> list[tuple[Watched, Value]]:
        """The watched values shown gone back by a reading begun after their confirmation
        (`read_since(path)`: when the reading behind a path's value began), with the value
        they went back to; those and the expired ones are no longer watched."""
        out: list[tuple[Watched, Value]] = []
        for path, watched in list(self._watched.items()):
            if now > watched.until:
                del self._watched[path]
                continue
            if read_since(path) < watched.since:
                continue
            value = actual(path)
            if value is not None and not same_value(value, watched.requested):
                del self._watched[path]
                out.append((watched, value))
        return out

    def paths(self) -> list[str]:
        """The command paths watched now."""
        return list(self._watched)

    def __len__(self) -> int:
        """How many values are watched."""
        return len(self._watched)


log = logging.getLogger(__name__)
_deprecated_said: set[str] = set()  # deprecated names already logged: one line per process


def current_path(path: str) -> str:
    """The command path `path` goes by now: a deprecated name is taken (logged once per
    process) until the next release removes it."""
    current = current_name(path)
    if current is None:
        return path
    if path not in _deprecated_said:
        _deprecated_said.add(path)
        log.warning(
            "the command name %s is deprecated: use %s (it will be removed in the next release)",
            path,
            current,
        )
    return current


async def write(
    client: GatewayClient, unit: Sequence[tuple[Offered, Value]], refused: set[str]
) -> str | None:
    """Write one unit (the storage settings, the grid relay, one dry contact, the generator
    mode) with its values; None when the gateway took it, else why not.

    A write the gateway refuses (401/403) withdraws its controls (`refused`) until the
    bridge connects again.
    """
    first = unit[0][0]
    fields = {offered.control.field: value for offered, value in unit}
    try:
        await _send(client, first.control.write, first.target, fields)
    except writes.WriteRefused as err:
        refused.update(offered.path for offered, _ in unit)
        log.warning("%s; withdrawn until the bridge connects again", err)
        return f"{err}; withdrawn until the bridge connects to the gateway again"
    except GatewayError as err:
        log.warning("%s", err)
        return str(err)
    except Exception:
        log.exception("writing %s: unexpected error in envoy2mqtt (please report)", first.path)
        return "unexpected error in envoy2mqtt (see its log)"
    return None


async def _send(
    client: GatewayClient, kind: str, target: str | None, fields: dict[str, Value]
) -> None:
    match kind:
        case "storage":
            reserve, flag = fields.get("reserve_soc"), fields.get("charge_from_grid")
            mode = fields.get("mode")
            await writes.set_storage(
                client,
                mode=str(mode) if mode is not None else None,
                reserve_soc=int(reserve) if reserve is not None else None,
                charge_from_grid=flag == "on" if flag is not None else None,
            )
        case "grid":
            await writes.set_grid_relay(client, closed=fields["closed"] == "on")
        case "generator":
            await writes.set_generator_mode(client, str(fields["mode"]))
        case "dry_contact":
            closed = fields.pop("closed", None)
            await writes.set_dry_contact(
                client,
                target or "",
                closed=closed == "closed" if closed is not None else None,
                settings=fields,
            )
        case _:
            raise writes.WriteNotPossible(f"no write carries {kind}")


def ignored_because(
    offered: Offered, requested: Value, actual: Value | None, data: EnvoyData
) -> str:
    """Why the gateway may have answered 200 and kept its value, in words."""
    settings = data.tariff.storage_settings if data.tariff is not None else None
    if offered.control.key == "battery_mode" and settings is not None and settings.opt_schedules:
        return (
            f"the gateway answered 200 but kept {actual}: with optimised schedules on "
            "(opt_schedules) the battery controller ignores a locally set mode; turn them off "
            "in the Enphase app"
        )
    if offered.control.write == "storage":
        return (
            f"the gateway answered 200 but its battery controller still runs {actual} (asked "
            f"{requested}): firmware D8.3 ignores battery settings written locally; "
            "BATTERY_CONTROL_PATH=auto or enlighten writes them through Enlighten"
        )
    return f"the gateway answered 200 but still reports {actual} (asked {requested})"


@dataclass(slots=True)
class Answers:
    """Publishes one gateway's responses and control events (QoS 1, in order, not retained)."""

    link: Link
    topics: Topics
    serial: str = ""

    def respond(
        self,
        command: Command,
        status: Status,
        *,
        actual: Value | None = None,
        message: str | None = None,
        via: str | None = None,
        within: float | None = None,
    ) -> None:
        """The response to one command."""
        self.answer(
            status,
            command.answered_as,
            command.transaction,
            command.value,
            actual=actual,
            message=message,
            reassert=command.reassert,
            via=via,
            within=within,
        )

    def answer(
        self,
        status: Status,
        control: str | None,
        transaction: Transaction,
        requested: object = None,
        *,
        actual: Value | None = None,
        message: str | None = None,
        reassert: bool = False,
        via: str | None = None,
        within: float | None = None,
    ) -> None:
        """A response on `<base>/<serial>/response`."""
        serial = self.serial
        response = Response(
            status=status,
            control=control,
            at=datetime.now(UTC),
            requested=requested,
            actual=actual,
            transaction=transaction,
            message=message,
            reassert=reassert,
            via=via,
            within=within,
        )
        self.link.publish_event(response_topic(self.topics, serial), response.to_json(serial))

    def revert(self, watched: Watched, value: Value) -> None:
        """The `control` event: a confirmed value went back to `value`."""
        serial = self.serial
        log.warning(
            "%s: %s went back from %s to %s", serial, watched.path, watched.requested, value
        )
        at = datetime.now(UTC)
        named = watched.named or watched.path
        event = reverted(named, watched.requested, value, at, watched.transaction)
        self.link.publish_event(self.topics.event(serial), event.to_json(serial))


# behind the grid watch only: someone waits for the answer (never overlapping: the gate)
COMMAND_LANE: Final = Lane.COMMAND
NOT_SENT: Final = "nothing in this message was sent"
OTHERS: Final = "not sent: another value in the message is not valid"
OFFLINE: Final = "the gateway is not connected: nothing was sent"
NO_CLOUD: Final = (
    "this gateway's firmware ignores battery settings written locally; they go through "
    "Enlighten, which needs your Enlighten account: set ENVOY_USERNAME and ENVOY_PASSWORD "
    "(nothing was changed)"
)


class Route(StrEnum):
    """How battery settings are written: to the gateway's tariff, or through Enlighten."""

    LOCAL = "local"
    ENLIGHTEN = "enlighten"


@dataclass(slots=True)
class Awaited:
    """A write taken and on its way: answered once it shows, or when `deadline` passes."""

    command: Command
    deadline: float  # monotonic seconds
    via: Route | None = None  # battery settings: how they were written
    learning: bool = False  # BATTERY_CONTROL_PATH=auto: this write decides the path
    within: float = 0.0  # seconds it was given

    @property
    def battery(self) -> bool:
        """A storage setting (confirmed from the live battery values)."""
        return self.command.offered.control.write == "storage"


class Controller:
    """The commands of one gateway (its bridge keeps it across reconnects)."""

    def __init__(
        self,
        link: Link,
        topics: Topics,
        options: ControlOptions,
        *,
        cloud: EnlightenBattery | None = None,
        events: EventStream | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Ready for commands; `run()` carries them out while the gateway is connected.

        `cloud` writes battery settings through Enlighten (None: no Enlighten account given);
        `events` is the gateway's stream, told which way battery settings go.
        """
        self.link, self.topics, self.options = link, topics, options
        self.cloud, self._events = cloud, events
        self.route: Route | None = {"local": Route.LOCAL, "enlighten": Route.ENLIGHTEN}.get(
            options.battery_path
        )  # None: auto, still learning
        self.awaited: dict[str, Awaited] = {}
        self._phantoms_until = 0.0  # dry contacts may read `open` falsely until then
        self._commanded: dict[str, Value] = {}  # dry contact id -> the status written meanwhile
        self._grid_at_write: GridStatus | None = None  # at the newest settings write
        self._publish_soon = asyncio.Event()  # a setting changed: a full read, published
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
                    f"rate limited: one write of {command.answered_as} per "
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
        for sent, raw in items:
            path = current_path(sent)
            found = self.offered.get(path)
            if found is None:
                errors.append((sent, raw, why_not(path, self.options.scope, self.refused)))
                continue
            try:
                value = found.control.kind.parse(raw)
            except Invalid as err:
                errors.append((sent, raw, f"{sent.rpartition('/')[2]}: {err}"))
                continue
            named = sent if sent != path else None
            commands.append(
                Command(
                    offered=found, value=value, source=topic, transaction=transaction, named=named
                )
            )
        given = {c.path: (c.offered, c.value) for c in commands}
        sent_as = {c.path: c.answered_as for c in commands}
        errors += [(sent_as[path], given[path][1], why) for path, why in conflicts(given, data)]
        return commands, errors

    # -- carrying them out ----------------------------------------------------------------

    @property
    def path_name(self) -> str:
        """The battery path as bridge/info shows it: local, enlighten or auto (learning)."""
        return str(self.route) if self.route is not None else "auto"

    async def run(self, session: Session) -> None:
        """Carry out commands through `session` until cancelled (the connection ends)."""
        current_lane.set(COMMAND_LANE)
        self._session, self.refused = session, set()
        batch: tuple[Command, ...] = ()
        loop = asyncio.get_running_loop()
        helpers = (
            loop.create_task(self._follow(session)),
            loop.create_task(self._publish(session)),
        )
        try:
            while True:
                batch = await self._queue.get()
                await self._execute(session, batch)
                batch = ()
        finally:
            for helper in helpers:
                helper.cancel()
            self._session = None
            self._abandon(batch)

    def _abandon(self, in_flight: tuple[Command, ...]) -> None:
        lost = "the connection to the gateway was lost during the write: it may or may not apply"
        for command in in_flight:
            self.answers.respond(command, Status.ERROR, message=lost)
        for awaited in self.awaited.values():
            self.answers.respond(
                awaited.command,
                Status.ERROR,
                message="the connection to the gateway was lost before the write showed",
                via=awaited.via,
            )
        self.awaited.clear()
        while not self._queue.empty():
            for command in self._queue.get_nowait():
                self.answers.respond(command, Status.ERROR, message=OFFLINE)

    async def _execute(self, session: Session, batch: tuple[Command, ...]) -> None:
        units: dict[tuple[str, str | None], list[Command]] = {}
        for command in batch:  # one write per unit: the tariff, a dry contact, ...
            control = command.offered.control
            units.setdefault((control.write, command.offered.target), []).append(command)
        for (kind, _target), commands in units.items():
            if kind == "storage":
                await self._battery(session, commands)
            else:
                await self._device(session, commands)

    # -- battery settings: local or through Enlighten -------------------------------------

    async def _battery(self, session: Session, commands: list[Command]) -> None:
        if self.route is Route.ENLIGHTEN:
            await self._via_cloud(session, commands)
            return
        values = [(c.offered, c.value) for c in commands]
        failure = await write(session.client, values, self.refused)
        if failure is not None:
            for command in commands:
                self.answers.respond(command, Status.ERROR, message=failure, via=Route.LOCAL)
            return
        self._settings_written(session)
        self._publish_soon.set()
        live = await self._live(session, commands, Route.LOCAL)
        if live is None:
            return
        deadline = session.clock.monotonic() + self.options.settle
        for command in commands:
            awaited = Awaited(command, deadline, Route.LOCAL, learning=self.route is None)
            if not self._settled(awaited, _live_value(command, live), session):
                self._pending(awaited, self.options.settle, "written to the gateway")

    async def _via_cloud(self, session: Session, commands: list[Command]) -> None:
        cloud = self.cloud
        if cloud is None:
            for command in commands:
                self.answers.respond(command, Status.ERROR, message=NO_CLOUD, via=Route.ENLIGHTEN)
            return
        live = await self._live(session, commands, Route.ENLIGHTEN)
        if live is None:
            return
        fields: dict[str, object] = {}
        for command in sorted(commands, key=lambda c: c.offered.control.field == "mode"):
            fields.update(cloud_fields(command.offered.control.field, command.value, live.mode))
        try:
            await cloud.write(session.publisher.info.serial, fields)
        except BatteryCloudError as err:
            for command in commands:
                self.answers.respond(command, Status.ERROR, message=str(err), via=Route.ENLIGHTEN)
            return
        deadline = session.clock.monotonic() + self.options.cloud
        for command in commands:
            self._pending(
                Awaited(command, deadline, Route.ENLIGHTEN),
                self.options.cloud,
                "Enlighten took it; it reaches the gateway in 10-20 s, confirmed from the "
                "gateway's live values (the cloud's own view lags 5-15 min)",
            )

    async def _live(
        self, session: Session, commands: list[Command], via: Route
    ) -> writes.LiveBattery | None:
        try:
            return await writes.read_live_battery(session.client)
        except GatewayError as err:
            for command in commands:
                self.answers.respond(
                    command,
                    Status.ERROR,
                    message=f"the battery's live values could not be read: {err}",
                    via=via,
                )
            return None

    def _choose(self, route: Route, why: str) -> None:
        if self.route is route:
            return
        self.route = route
        serial = self.answers.serial
        log.info("%s: battery settings go %s from now on: %s", serial, route, why)
        if self._events is not None:
            self._events.emit(BatteryPathChosen(serial, str(route), why))

    # -- devices: the grid relay, dry contacts, the generator -----------------------------

    async def _device(self, session: Session, commands: list[Command]) -> None:
        values = [(c.offered, c.value) for c in commands]
        failure = await write(session.client, values, self.refused)
        if failure is not None:
            for command in commands:
                self.answers.respond(command, Status.ERROR, message=failure)
            return
        if any(c.offered.control.key != "status" for c in commands):
            self._settings_written(session)  # a dry contact's settings, the generator mode
        for command in commands:
            if command.offered.control is CONTACT_STATUS and command.offered.target:
                self._commanded[command.offered.target] = command.value  # a real move
        grid = commands[0].offered.control.write == "grid"
        if grid:
            self._publish_soon.set()  # the commanded state, published soon
        try:
            # the relay's own endpoint answers at once; a full read takes up to a minute on
            # D8.3 and would hold the gate while the relay moves
            actual: Value | None = await session.client.read_grid() if grid else None
            data = None if grid else await _read_back(session, commands[0])
        except GatewayError as err:
            for command in commands:
                self.answers.respond(
                    command, Status.ERROR, message=f"written, but not read back: {err}"
                )
            return
        now = session.clock.monotonic()
        for command in commands:
            within = self._time_for(command)
            awaited = Awaited(command, now + within)
            shown = actual if data is None else _device_value(command, data)
            if not self._settled(awaited, shown, session):
                self._pending(awaited, within, _on_its_way(command))

    def _settings_written(self, session: Session) -> None:
        """[field] after any settings POST the gateway reports every NC contact `open` for
        5-90 s although no relay moved: a contact's change then is held, neither a revert nor
        published (`_hold_phantoms`)."""
        until = session.clock.monotonic() + self.options.phantom
        self._phantoms_until = max(self._phantoms_until, until)
        self._grid_at_write = grid_status(session.data)

    def _time_for(self, command: Command) -> float:
        options, control = self.options, command.offered.control
        match control.write:
            case "grid":
                return options.relay_close if command.value == "on" else options.relay_open
            case "dry_contact":
                return options.contact
        return options.settle

    # -- answers ---------------------------------------------------------------------------

    def _pending(self, awaited: Awaited, within: float, how: str) -> None:
        command = awaited.command
        awaited.within = within
        older = self.awaited.get(command.path)
        if older is not None:
            self.answers.respond(
                older.command,
                Status.IGNORED,
                message="superseded by a newer command for the same control",
                via=older.via,
            )
        self.awaited[command.path] = awaited
        self.answers.respond(
            command,
            Status.PENDING,
            message=f"{how}; the answer follows within {within:g} s",
            via=awaited.via,
            within=within,
        )

    def _settled(self, awaited: Awaited, actual: Value | None, session: Session) -> bool:
        """Answer `ok` (and watch) if `actual` shows the write; whether it did."""
        command = awaited.command
        if not _shows(command, actual):
            return False
        if self.awaited.get(command.path) is awaited:
            del self.awaited[command.path]
        if awaited.learning:
            self._choose(Route.LOCAL, "a local write showed in the battery's live values")
        log.info("%s: %s is now %s", self.answers.serial, command.path, actual)
        said = _not_acted_on(command, session.data)
        if command.offered.control.write == "grid":  # the switch's word, the relay's state
            said, actual = f"the relay reads {actual!r}", _switch_word(actual)
        self.answers.respond(command, Status.OK, actual=actual, via=awaited.via, message=said)
        if awaited.battery:
            self._publish_soon.set()
        if self.options.watch > 0:
            now = session.clock.monotonic()
            self.watches.arm(
                Watched(
                    path=command.path,
                    requested=command.value,
                    since=now,
                    until=now + self.options.watch,
                    transaction=command.transaction,
                    reasserted=command.reassert,
                    named=command.named,
                )
            )
        return True

    async def _expired(self, session: Session, awaited: Awaited, actual: Value | None) -> None:
        """Its time is up and it does not show: ignored (or, learning, sent through Enlighten)."""
        command = awaited.command
        if self.awaited.get(command.path) is awaited:
            del self.awaited[command.path]
        if awaited.learning and _optimised(command, session.data):
            awaited.learning = False  # older firmware with optimised schedules: not the path
        if awaited.learning:
            self._choose(
                Route.ENLIGHTEN,
                f"the gateway took a local {command.path} write (200) and its battery "
                "controller ignored it (firmware D8.3 ignores local battery writes)",
            )
            if self.cloud is not None:
                await self._via_cloud(session, [command])
                return
            why = NO_CLOUD
        elif awaited.battery:
            why = _battery_ignored(awaited, actual, session.data)
        elif command.offered.control.write == "grid":
            why = f"the relay still reads {actual!r} {awaited.within:g} s after the command"
            actual = _switch_word(actual)
        else:
            why = (
                f"the gateway took the write but still reports {actual} after {awaited.within:g} s"
            )
        log.warning(
            "%s: %s = %s ignored: %s", self.answers.serial, command.path, command.value, why
        )
        self.answers.respond(command, Status.IGNORED, actual=actual, message=why, via=awaited.via)

    # -- looking again: writes on their way, and reverts -----------------------------------

    async def _follow(self, session: Session) -> None:
        """Every `tick`: the live values of writes on their way and of watched settings."""
        while True:
            await session.clock.sleep(self.options.tick)
            try:
                await self._look(session)
            except GatewayError as err:
                log.debug("%s: looking at writes on their way: %s", self.answers.serial, err)
            except Exception:
                log.exception("looking at writes on their way: unexpected error (please report)")

    async def _publish(self, session: Session) -> None:
        """A full read, published, soon after a write: as a normal read (a full read takes up
        to a minute on D8.3), beside the queue and the follower, never holding them."""
        current_lane.set(Lane.NORMAL)
        while True:
            await self._publish_soon.wait()
            self._publish_soon.clear()
            try:
                await session.refresh()
            except GatewayError as err:
                log.debug("%s: the read after a write: %s", self.answers.serial, err)

    async def _look(self, session: Session) -> None:
        clock = session.clock
        started = clock.monotonic()
        battery = any(a.battery for a in self.awaited.values()) or any(
            self._is_battery(path) for path in self.watches.paths()
        )
        if battery:
            live = await writes.read_live_battery(session.client)
            for awaited in [a for a in self.awaited.values() if a.battery]:
                self._settled(awaited, _live_value(awaited.command, live), session)
            reverted = self.watches.check(
                lambda path: self._live_actual(path, live), lambda _: started, clock.monotonic()
            )
            for watched, value in reverted:
                self._reverted(watched, value)
        if any(a.command.offered.control.write == "grid" for a in self.awaited.values()):
            oper = await session.client.read_grid()
            for awaited in [a for a in self.awaited.values() if a.command.path == "grid_enabled"]:
                self._settled(awaited, oper, session)
        if any(_contact(a.command) for a in self.awaited.values()):
            await session.read_contacts()  # published: `observe` settles what it shows
        now = clock.monotonic()
        for awaited in [a for a in self.awaited.values() if a.deadline <= now]:
            actual = await self._last_look(session, awaited)
            if self.awaited.get(awaited.command.path) is awaited and not self._settled(
                awaited, actual, session
            ):
                await self._expired(session, awaited, actual)

    async def _last_look(self, session: Session, awaited: Awaited) -> Value | None:
        command = awaited.command
        if awaited.battery:
            return _live_value(command, await writes.read_live_battery(session.client))
        if command.offered.control.write == "grid":
            return await session.client.read_grid()
        return _device_value(command, await _read_back(session, command))

    def _is_battery(self, path: str) -> bool:
        found = self.offered.get(path)
        return found is not None and found.control.write == "storage"

    def _live_actual(self, path: str, live: writes.LiveBattery) -> Value | None:
        found = self.offered.get(path)
        if found is None or found.control.write != "storage":
            return None
        return _live_field(found.control.field, live)

    # -- after every publish --------------------------------------------------------------

    def observe(self, session: Session) -> None:
        """What can be controlled now (and its entities); writes on their way that now show;
        values gone back since the write (battery settings: from the live values instead)."""
        self.answers.serial = session.publisher.info.serial
        self._offer(session)
        self._hold_phantoms(session)
        data, now = session.data, session.clock.monotonic()
        for awaited in [a for a in self.awaited.values() if not a.battery]:
            self._settled(awaited, _device_value(awaited.command, data), session)
        if not len(self.watches):
            return

        def read_since(path: str) -> float:
            """When the reading behind a path's value began (dry contacts: read on their own
            after a write)."""
            found = self.offered.get(path)
            contact = found is not None and found.control.device == "dry_contact"
            return session.contacts_started if contact else session.normal_started

        def actual(path: str) -> Value | None:
            found = self.offered.get(path)
            if found is None or found.control.write == "storage":
                return None
            if found.control.device == "dry_contact" and read_since(path) < self._phantoms_until:
                return None  # held: a revert only if a reading begun after the window shows it
            return found.actual(data)

        for watched, value in self.watches.check(actual, read_since, now):
            self._reverted(watched, value)

    def _grid_moved(self, session: Session) -> bool:
        """Whether the grid changed since the settings write: the gateway then moves its
        contacts for real (their grid and off-grid actions), and they are shown at once."""
        now = grid_status(session.data)
        return None not in (now, self._grid_at_write) and now != self._grid_at_write

    def _hold_phantoms(self, session: Session) -> None:
        """A dry contact's status read in a reading begun inside the phantom window keeps its
        published value (the publisher holds it) until a reading begun after the window shows
        it; a status this bridge wrote meanwhile is a real move, shown at once."""
        if session.contacts_started >= self._phantoms_until or self._grid_moved(session):
            self._commanded.clear()
            session.publisher.hold(())
            return
        held = []
        for target, (path, status) in contact_statuses(session.data).items():
            commanded = self._commanded.get(target)
            if commanded is None or not same_value(status, commanded):
                held.append(path)
        session.publisher.hold(held)

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
                named=watched.named,
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


def _live_field(field: str, live: writes.LiveBattery) -> Value | None:
    match field:
        case "mode":
            return live.mode
        case "reserve_soc":
            return live.reserve_soc
        case "charge_from_grid":
            flag = live.charge_from_grid
            return None if flag is None else ("on" if flag else "off")
    return None


def _live_value(command: Command, live: writes.LiveBattery) -> Value | None:
    return _live_field(command.offered.control.field, live)


def _contact(command: Command) -> bool:
    return command.offered.control.device == "dry_contact"


async def _read_back(session: Session, command: Command) -> EnvoyData:
    """What the gateway shows after a device write: a dry contact from its own two endpoints
    (seconds), anything else from a full read (a minute on current firmware)."""
    return await (session.read_contacts() if _contact(command) else session.refresh())


def _device_value(command: Command, data: EnvoyData) -> Value | None:
    """What the gateway shows of a device write: the grid relay's actual state (its first
    word: `open synchronizing` is open), else the control's own value."""
    if command.offered.control.write == "grid":
        return data.enpower.mains_oper_state if data.enpower is not None else None
    return command.offered.actual(data)


GRID_ACTIONS: Final = ("grid_action", "micro_grid_action")


def _not_acted_on(command: Command, data: EnvoyData) -> str | None:
    """Why a grid action stored on a dry contact does nothing: the gateway acts on grid and
    off-grid actions only for contacts whose `type` is LOAD [field: "NC2 shed, NC1 didn't"]."""
    control, target = command.offered.control, command.offered.target
    if (
        control.device != "dry_contact"
        or control.key not in GRID_ACTIONS
        or command.value == "none"
    ):
        return None
    settings = (data.dry_contact_settings or {}).get(target or "")
    kind = str(getattr(settings, "type", "") or "")
    if not kind or kind.upper() == "LOAD":
        return None
    return (
        f"stored, but {target} is of type {kind}: the gateway acts on grid and off-grid actions "
        "only for contacts whose type is LOAD (set in the installer app)"
    )


def _switch_word(relay: Value | None) -> str | None:
    """The grid switch's word for a relay state: `open synchronizing` is off (open)."""
    word = str(relay).split()[0].lower() if relay else ""
    return {"closed": "on", "open": "off"}.get(word)


def _shows(command: Command, actual: Value | None) -> bool:
    if command.offered.control.write == "grid":
        word = str(actual).split()[0].lower() if actual else ""
        return word == ("closed" if command.value == "on" else "open")
    return same_value(actual, command.value)


def _on_its_way(command: Command) -> str:
    if command.offered.control.write != "grid":
        return "written to the gateway; not shown yet"
    if command.value == "off":
        return (
            "commanded open: the gateway tops the battery up from the grid first, the relay "
            "opens about 27 s after the command"
        )
    return "commanded closed: the relay closes in 8-15 s"


def _optimised(command: Command, data: EnvoyData) -> bool:
    """A mode write ignored because optimised schedules are on (older firmware)."""
    settings = data.tariff.storage_settings if data.tariff is not None else None
    return command.offered.control.field == "mode" and bool(settings and settings.opt_schedules)


def _battery_ignored(awaited: Awaited, actual: Value | None, data: EnvoyData) -> str:
    command = awaited.command
    if awaited.via is Route.ENLIGHTEN:
        return (
            f"Enlighten took it but the gateway still runs {actual}: the cloud has not "
            "delivered it yet (pending too long); it may still arrive"
        )
    return ignored_because(command.offered, command.value, actual, data)
