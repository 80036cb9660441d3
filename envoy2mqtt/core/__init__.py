"""The pure core: one reading of a gateway (`snapshot`), what changed (`changes`), and the
events that matter at once (`events`), plus the naming rule for topics and ids.

No I/O and no clock of its own: functions of their inputs, so their tests are plain
functions. May import: the standard library and pyenphase's data models; nothing else of
envoy2mqtt, never aiohttp or aiomqtt.
"""
