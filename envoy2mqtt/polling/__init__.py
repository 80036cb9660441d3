"""Polling: one gateway's bridge (connect, reconnect), its lanes (tiered reads, one snapshot),
its availability and the energy it integrates, and the events it emits.

`bridge` owns a gateway's `EventStream` and emits `GatewayConnected` / `GatewayDisconnected`;
`lanes` read at their cadences and, for every snapshot, settle it through the publisher,
emit `SnapshotSettled`, then send it; `events` names every event type. May import: `core`,
`catalog`, `auth`, `gateway`, `mqtt` (the publisher; never `mqtt.link`), `settings`,
`statefile`; never
a feature (features subscribe to polling, not the other way round), never aiomqtt.
"""
