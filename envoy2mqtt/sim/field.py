"""How the real 2026 gateway behaves in the field, as switches and figures for the simulator.

`Field.off()` (the default) is instant replay: the simulator answers as its captures do. Every
other constructor switches in behaviours that public field reports describe; each figure
below names its source. `time_scale` multiplies every duration, so a test can run the 27 s
relay top-off in 2.7 s with `time_scale=0.1`; benchmarks use 1.0.

    field = Field.current_firmware(time_scale=0.1)          # or Field(latencies=True, ...)
    async with SimulatedGateway(capture="8.3.5169_with_generator", field=field) as gateway:
        gateway.fail_grid()              # relay: `open synchronizing`, then `open synchronized`
        gateway.restore_grid()           # recloses after 8-15 field seconds
        gateway.reboot()                 # inventory temperatures read "unknown" for a while
        gateway.housekeeping_now(90)     # every request hangs 90 field seconds
        gateway.stats.max_in_flight_slow, gateway.stats.log   # what the bridge asked, and when

Sources (cited as [F], [P], [M], [I] in the comments):
[F] github.com/mpreissner/ha-enphase-realtime docs/FINDINGS.md (live tests on D8.3.6086,
    Sept-Oct 2026).
[P] github.com/pyenphase/pyenphase docs/known_issues.md, and pyenphase/envoy.py's note on
    firmware 8.3.5433 writing net-consumption into total-consumption.
[M] github.com/Matthew1471/Enphase-API, Documentation/IQ Gateway API/IVP/LiveData/Status.adoc,
    Stream.adoc, Ensemble/Relay.adoc.
[I] issue threads: home-assistant/core#156189 (timeout every night about 23:02, D8.3.5167),
    vincentwolsink/home_assistant_enphase_envoy_installer#235 (unavailable every day at
    23:01), home-assistant/core#123216 (livedata "Live stream not enabled" reply),
    grzegorz914/homebridge-enphase-envoy#80 (live values flow for about 15 minutes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Self

Range = tuple[float, float]  # seconds (or watts): low, high; a value is drawn uniformly


class EndpointClass(StrEnum):
    """How fast the gateway answers an endpoint: the /ivp/* API, or the slow legacy pages."""

    FAST = "fast"
    PRODUCTION = "production"
    INVENTORY = "inventory"
    HOME = "home"

    @property
    def slow(self) -> bool:
        """production.json, inventory.json and home.json: seconds to a minute on D8.3.6086."""
        return self is not EndpointClass.FAST


_SLOW_PATHS: Final = {
    "/production.json": EndpointClass.PRODUCTION,
    "/production": EndpointClass.PRODUCTION,
    "/inventory.json": EndpointClass.INVENTORY,
    "/inventory": EndpointClass.INVENTORY,
    "/home.json": EndpointClass.HOME,
    "/home": EndpointClass.HOME,
}


def endpoint_class(path: str) -> EndpointClass:
    """The latency class of a request path (no query string)."""
    return _SLOW_PATHS.get(path, EndpointClass.FAST)


@dataclass(frozen=True, kw_only=True, slots=True)
class Field:
    """One switch per field behaviour, and the figures the field reports give for it."""

    # Answer times per endpoint class, answered concurrently [F "Slow endpoints to avoid
    # polling" and "Update rates": /ivp/* fetch mean 0.36 s, worst 1.58 s, polled at 1 Hz
    # while production.json was read in the background].
    latencies: bool = False
    production_s: Range = (30.0, 55.0)
    inventory_s: Range = (18.0, 22.0)  # [F] "~20 s"
    home_s: Range = (60.0, 75.0)  # [F] "over 60 s"
    fast_s: Range = (0.2, 0.5)
    fast_worst_s: float = 1.58  # [F] worst fetch
    # How often a fast answer takes the worst time. [F] gives one worst figure for its 1 Hz
    # run (152 polls, 0 failures, median gap 1.10 s), so at most a few slow answers in ~300:
    # 1 %. The event benchmark also runs 2 % (`--tail 0.02`) as a harder gateway.
    fast_worst_share: float = 0.01

    # Relay states while islanded [F "Second relay test": `open synchronizing` at 12:15:16,
    # `open synchronized` from 12:15:32, never plain `open`; closing read admin `closed`,
    # oper `open synchronized`].
    relay_transitions: bool = False
    synchronizing_s: float = 16.0

    # A relay write [F "Grid relay opened and closed live": the command at 10:51:17, relay
    # open at 10:51:45 after a battery top-off; second test 27 s; closing 8 s and ~15 s].
    relay_write_timing: bool = False
    island_after_s: float = 27.0
    reclose_s: Range = (8.0, 15.0)
    top_off_w: float = 3200.0  # [F] the battery charged from the grid "ramping to about 3.2 kW"

    # The nightly housekeeping window: requests hang [I #156189, #235: every night ~23:01].
    housekeeping: bool = False
    housekeeping_at_s: float = 23 * 3600.0  # seconds after local midnight
    housekeeping_s: Range = (60.0, 120.0)

    # Inventory numbers read the string "unknown" after a reboot [F "Non-numeric inventory
    # values after a reboot": 03:14 and 03:15 after a 03:06 reboot].
    unknown_after_reboot: bool = False
    unknown_s: float = 600.0
    unknown_keys: tuple[str, ...] = ("temperature", "maxCellTemp")

    # Energy counters [P known_issues: whToday resets late after midnight, resets to a
    # non-zero value, steps; envoy.py: from 8.3.5433 total-consumption repeats net].
    counter_quirks: bool = False
    late_reset_s: float = 1800.0  # whToday keeps yesterday's count this long after midnight
    counter_step_every_s: float = 3600.0
    counter_step_wh: float = 250.0
    net_as_total: bool = False

    # Battery power wanders around 0 W in self-consumption (brief: ±50-300 W).
    battery_noise: bool = False
    noise_w: Range = (50.0, 300.0)

    # PUT /admin/lib/tariff answered 200 and saved, the controller ignores it [F "Local writes
    # do not work (D8.3.6086)"]. Off: older firmware that honours local writes.
    local_battery_writes_ignored: bool = False

    # Dry contacts [F "Dry contacts: no live write without the user": a write shows within
    # ~3 s; after any settings POST every NC contact reads `open` for 5-90 s; "NC2 shed, NC1
    # didn't": only contacts of type LOAD follow the grid actions].
    dry_contact_phantoms: bool = False
    dry_contact_write_s: float = 3.0
    phantom_s: Range = (5.0, 90.0)

    # /ivp/livedata/status served from the simulator's state [M Status.adoc, Stream.adoc];
    # values flow only for a while after POST /ivp/livedata/stream {"enable": 1} [I #80:
    # about 15 minutes; #123216: otherwise "Last available status data shown"].
    livedata: bool = False
    livedata_stream_s: float = 900.0

    time_scale: float = 1.0
    seed: int | None = None

    @classmethod
    def off(cls) -> Self:
        """Instant replay of the captures (the default)."""
        return cls()

    @classmethod
    def on(cls, *, time_scale: float = 1.0, seed: int | None = None) -> Self:
        """Every field behaviour, with the figures measured on D8.3.6086."""
        return cls(
            latencies=True,
            relay_transitions=True,
            relay_write_timing=True,
            housekeeping=True,
            unknown_after_reboot=True,
            counter_quirks=True,
            net_as_total=True,
            battery_noise=True,
            local_battery_writes_ignored=True,
            dry_contact_phantoms=True,
            livedata=True,
            time_scale=time_scale,
            seed=seed,
        )

    @classmethod
    def current_firmware(cls, *, time_scale: float = 1.0, seed: int | None = None) -> Self:
        """The gateway on D8.3.6086: the same as `on`."""
        return cls.on(time_scale=time_scale, seed=seed)

    @classmethod
    def moderate(cls, *, time_scale: float = 1.0, seed: int | None = None) -> Self:
        """Everything on, but the slow pages answer in seconds (brief: a lighter variant)."""
        return dataclasses.replace(
            cls.on(time_scale=time_scale, seed=seed),
            production_s=(5.0, 9.0),
            inventory_s=(3.0, 4.0),
            home_s=(10.0, 12.0),
        )

    def scaled(self, seconds: float) -> float:
        """A field duration in this run's seconds."""
        return seconds * self.time_scale

    def latency_range(self, kind: EndpointClass) -> Range:
        """The answer-time range for an endpoint class (unscaled)."""
        match kind:
            case EndpointClass.PRODUCTION:
                return self.production_s
            case EndpointClass.INVENTORY:
                return self.inventory_s
            case EndpointClass.HOME:
                return self.home_s
        return self.fast_s


FIELD_OFF: Final = Field.off()
