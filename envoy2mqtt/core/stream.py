"""A typed event stream: the polling side emits, features subscribe; nobody sets callbacks.

Delivery is synchronous and in subscription order, so whatever a subscriber queues while
handling an event (load shedding's commands) is queued before the emitter goes on (the
snapshot's own event messages). A subscriber's bug is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(slots=True)
class Subscription:
    """One subscriber's handlers on one stream; `close()` ends them all."""

    stream: EventStream
    handlers: list[tuple[type[Any], Callable[[Any], None]]] = field(default_factory=list)

    def on(self, kind: type[E], handler: Callable[[E], None]) -> Subscription:
        """Call `handler(event)` for every event of type `kind` (chainable)."""
        self.stream.add(kind, handler)
        self.handlers.append((kind, handler))
        return self

    def close(self) -> None:
        """Stop receiving."""
        for kind, handler in self.handlers:
            self.stream.remove(kind, handler)
        self.handlers.clear()


class EventStream:
    """Events by type, delivered at once to the handlers subscribed to that type."""

    def __init__(self, name: str = "") -> None:
        """An empty stream; `name` is for the log (a gateway's host, or "app")."""
        self.name = name
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self) -> Subscription:
        """A new subscription; add handlers with `.on(kind, handler)`."""
        return Subscription(self)

    def add(self, kind: type[E], handler: Callable[[E], None]) -> None:
        """Call `handler` for events of type `kind` (prefer `subscribe().on(...)`)."""
        self._handlers.setdefault(kind, []).append(handler)

    def remove(self, kind: type[E], handler: Callable[[E], None]) -> None:
        """Stop calling `handler` for `kind`."""
        handlers = self._handlers.get(kind, [])
        if handler in handlers:
            handlers.remove(handler)

    def emit(self, event: object) -> None:
        """Deliver `event` to every handler of its type, in the order they subscribed."""
        for handler in list(self._handlers.get(type(event), ())):
            try:
                handler(event)
            except Exception:  # one feature's bug must not cost the others their event
                log.exception(
                    "%s: handling %s failed in envoy2mqtt (please report)",
                    self.name or "events",
                    type(event).__name__,
                )
