"""Every metric as data: key, name, unit, classes, how to read it from a snapshot, urgency.

The families (gateway, phases, CT meters, inverters and their status flags, IQ Batteries,
Encharge, AC Batteries, Enpower/ensemble, relays, derived values, auth diagnostics) are
tables of `Metric`s read from pyenphase's data models. Pure: no I/O, no clock but the
snapshot's. May import: `core` and pyenphase's models; never aiohttp, aiomqtt, `gateway`,
`auth` or `mqtt`.
"""

from envoy2mqtt.catalog.sources import SOURCES, readings, values

__all__ = ["SOURCES", "readings", "values"]
