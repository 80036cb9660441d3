"""The bridge's answers: a response per control on `<base>/<serial>/response`, and the
`control` event of a value that went back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from envoy2mqtt.control.commands import Transaction
from envoy2mqtt.control.discovery import response_topic
from envoy2mqtt.control.responses import Response, Status, reverted
from envoy2mqtt.control.session import Command
from envoy2mqtt.control.watch import Watched
from envoy2mqtt.core.snapshot import Value
from envoy2mqtt.mqtt.link_protocol import Link
from envoy2mqtt.mqtt.topics import Topics

log = logging.getLogger(__name__)


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
            command.path,
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
        event = reverted(watched.path, watched.requested, value, at, watched.transaction)
        self.link.publish_event(self.topics.event(serial), event.to_json(serial))
