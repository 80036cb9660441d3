"""The pure core: one reading of a gateway (`snapshot`), what changed (`changes`), the
events that matter at once (`events`), the naming rule for topics and ids, and the two
mechanisms everything else shares: a typed `stream` of events and the injected `clock`.

No I/O: functions of their inputs, so their tests are plain functions. May import: the
standard library and pyenphase's data models; nothing else of envoy2mqtt, never aiohttp or
aiomqtt.
"""
