"""What the publisher does with each entity, read off its metric's fields once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy2mqtt.catalog.metric import Entity
from envoy2mqtt.core.events import Watch
from envoy2mqtt.core.snapshot import Value


@dataclass(frozen=True, slots=True)
class Roles:
    """The entities' roles: deadbands, urgency, counters, clamping, debounce, events, summary.

    Built when the set of entities changes, not on every publish, so no behaviour is keyed
    on a metric's name anywhere but in the catalog's own fields.
    """

    deadbands: dict[str, float] = field(default_factory=dict)
    urgent: frozenset[str] = frozenset()
    counters: dict[str, bool] = field(default_factory=dict)  # path -> a "today" counter
    clamped: frozenset[str] = frozenset()
    debounced: frozenset[str] = frozenset()
    watch: Watch = field(default_factory=Watch)
    # (short key, path), in catalog order: where two metrics share a key the later one wins
    # (house_load_power over consumption_power, which on battery sites counts charging as load)
    summary: tuple[tuple[str, str], ...] = ()
    pacing: dict[str, tuple[float, float]] = field(default_factory=dict)  # (interval, jump)
    held: dict[str, str] = field(default_factory=dict)  # battery state path -> its power's path
    smoothed: dict[str, str] = field(default_factory=dict)  # runway path -> its load's path
    # path -> the paths a renamed value is still published under (until the next release)
    deprecated: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        entities: Iterable[Entity],
        intervals: Mapping[str, float] | None = None,
        power_jump: float = 0.0,
    ) -> Roles:
        """The roles of these entities, in catalog order.

        `intervals`: the minimum seconds between state publishes per `Metric.pace` ("energy",
        "power", "measurement"); urgent metrics are never held back. A power that moves by
        `power_jump` or more is published at once all the same.
        """
        listed = list(entities)
        limits = intervals or {}

        def paths(flag: str) -> frozenset[str]:
            return frozenset(e.path for e in listed if getattr(e.metric, flag))

        return cls(
            deadbands={e.path: e.metric.deadband for e in listed if e.metric.deadband},
            urgent=paths("urgent"),
            counters={e.path: e.metric.daily for e in listed if e.metric.is_counter},
            clamped=paths("clamp_negative"),
            debounced=paths("debounced"),
            watch=Watch(
                events={e.path: e.metric.event for e in listed if e.metric.event},
                context=tuple(e.path for e in listed if e.metric.in_context),
            ),
            summary=tuple((e.metric.summary, e.path) for e in listed if e.metric.summary),
            held=_beside(listed, "holds"),
            smoothed=_beside(listed, "smoothed"),
            deprecated={e.path: e.deprecated_paths for e in listed if e.deprecated_paths},
            pacing={
                e.path: (limits[pace], power_jump if pace == "power" else 0.0)
                for e in listed
                if (pace := e.metric.pace) is not None and pace in limits and not e.metric.urgent
            },
        )

    def with_deprecated(self, values: Mapping[str, Value]) -> dict[str, Value]:
        """`values`, and each renamed one's value under its old paths too."""
        out = dict(values)
        for path, old in self.deprecated.items():
            if path in values:
                out.update(dict.fromkeys(old, values[path]))
        return out

    @property
    def deprecated_paths(self) -> frozenset[str]:
        """Every old path a renamed value is still published under."""
        return frozenset(old for paths in self.deprecated.values() for old in paths)


def _beside(entities: list[Entity], flag: str) -> dict[str, str]:
    """Each path whose metric names another (`flag`) -> that one's path, on the same device."""
    out: dict[str, str] = {}
    for entity in entities:
        if (other := getattr(entity.metric, flag)) is not None:
            parent = entity.path.rpartition("/")[0]
            out[entity.path] = f"{parent}/{other}" if parent else other
    return out
