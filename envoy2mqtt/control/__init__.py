"""Commands to the gateway over MQTT (CONTROLS): storage mode, reserve, charge from grid, the
grid relay, dry contacts, generator mode.

`extension` is the feature: it subscribes to the command topics (through `mqtt.commands`, so a
retained command never runs) and follows each gateway's stream, running its `executor` while
the gateway is connected. `commands` reads command messages into typed values and says what the
bridge answers (pure); `controls` is every control as data and why a command cannot go (pure);
the `executor` writes through `gateway.writes` (pyenphase's own write methods, behind the
one-request gate) or, for battery settings on firmware that ignores them locally, through
Enlighten (`auth.battery`), confirms from the gateway's live values, watches for reverts and
answers on `<base>/<serial>/response`; `discovery` builds the Home Assistant entities.

May import: `core`, `catalog`, `auth`, `gateway`, `mqtt`, `settings`, `polling` (event types,
the bridge), `features` (the extension base); never aiohttp or aiomqtt.
"""
