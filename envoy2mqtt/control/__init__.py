"""Commands to the gateway over MQTT (CONTROLS): storage mode, reserve, charge from grid, the
grid relay, dry contacts, generator mode.

`commands` reads command messages into typed values (pure: enum, range and type checks, the
rate limit); `controls` is every control as data (pure), `checks` says why a command cannot
go; `executor` carries commands out beside the lanes: through `gateway.writes` (pyenphase's
own write methods, behind the one-request gate), then a read-back, a watch for reverts
(`watch`), and `answers` (`responses` on `<base>/<serial>/response`, `control` events);
`discovery` builds the Home Assistant entities; `wiring` attaches a controller to each
bridge and routes the command topics (nothing is subscribed with CONTROLS=none). May import:
`core`, `catalog` (device ids and entities), `gateway`, `mqtt` (topics, discovery helpers,
the publisher), `settings`, `clock`, and in `wiring` only `bridge` and `lanes`; never
aiohttp or aiomqtt.
"""
