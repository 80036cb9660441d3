"""What the bridge says back about a command, and the `control` event of a revert. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from envoy2mqtt.control.commands import Transaction
from envoy2mqtt.core.events import Event
from envoy2mqtt.core.snapshot import Value

REVERTED = "reverted"
CONTROL_EVENT = "control"


class Status(StrEnum):
    """How a command ended."""

    PENDING = "pending"  # taken, on its way: the final answer follows (within `within` s)
    OK = "ok"  # written, and read back as asked
    IGNORED = "ignored"  # taken (200) but the battery controller / relay kept its old value
    ERROR = "error"  # not written (invalid, not available, rate limited, refused, failed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """One control's outcome, published as JSON on `<base>/<serial>/response`."""

    status: Status
    control: str | None  # the command path; None when the message named none readable
    at: datetime
    requested: object = None
    actual: Value | None = None
    transaction: Transaction = None
    message: str | None = None  # why, in words (errors and ignored writes)
    reassert: bool = False  # the bridge wrote a reverted setting once more (CONTROL_REASSERT)
    via: str | None = None  # how it was written: local (the gateway) or enlighten (the cloud)
    within: float | None = None  # pending: seconds until the final answer at the latest

    def to_json(self, serial: str) -> str:
        """The response's wire form."""
        body: dict[str, object] = {
            "status": self.status.value,
            "gateway": serial,
            "control": self.control,
            "requested": self.requested,
            "actual": self.actual,
            "transaction": self.transaction,
            "at": self.at.isoformat(timespec="milliseconds"),
        }
        if self.message:
            body["message"] = self.message
        if self.reassert:
            body["reassert"] = True
        if self.via:
            body["via"] = self.via
        if self.within is not None:
            body["within"] = round(self.within, 1)
        return json.dumps(body, separators=(",", ":"), default=str)


def reverted(
    control: str, requested: Value, actual: Value, at: datetime, transaction: Transaction
) -> Event:
    """The `control` event of a value that went back after it was read back as asked."""
    extra: dict[str, Value] = {"control": control, "status": REVERTED}
    if transaction is not None:
        extra["transaction"] = transaction
    return Event(CONTROL_EVENT, requested, actual, at, extra=extra)
