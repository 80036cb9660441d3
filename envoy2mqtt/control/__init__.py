"""Commands to the gateway over MQTT (CONTROLS): storage mode, reserve, charge from grid, the
grid relay, dry contacts, generator mode.

`extension` is the feature: it subscribes to the command topics (through `mqtt.commands`, so a
retained command never runs) and follows each gateway's stream, running its `executor` while
the gateway is connected. `commands` reads command messages into typed values (pure: enum,
range and type checks, the rate limit); `controls` is every control as data (pure), `checks`
says why a command cannot go; the executor writes through `gateway.writes` (pyenphase's own
write methods, behind the one-request gate), reads back, watches for reverts (`watch`) and
answers (`responses` on `<base>/<serial>/response`, `control` events); `discovery` builds the
Home Assistant entities; battery settings on firmware that ignores them locally go through
Enlighten (`auth.battery`). May import: `core`, `catalog`, `auth`, `gateway`, `mqtt`, `settings`,
`polling` (event types, the bridge), `features` (the extension base); never aiohttp or aiomqtt.
"""
