"""Features as extensions: each one a room with a start and a stop, talking through events.

`extension` holds the base class and the `Hub` every extension is given (the MQTT link, topic
names, the app's event stream, the gateways' bridges and their streams, the one TaskGroup).
The small features live here (`bridge_info`, `health`, `ghosts`, `retained`); the large ones
have their own stage (`control`, `shedding`). An extension's constructor stores references
only; `__aenter__` subscribes and starts its tasks, `__aexit__` cleans up. Adding a feature
is a new room and one line in `app.py`.

May import: `core`, `mqtt` (never `mqtt.link`: the hub's link is a protocol), `polling`
(the event types and the bridge), `settings`; never `gateway` or `auth`, aiohttp or aiomqtt.
"""
