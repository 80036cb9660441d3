"""Load shedding: the bridge itself switches loads off when the grid fails and back on after.

`policy` is the pure state machine: fed the grid status, the state of charge, the backup
runway and the time, it returns which loads to shed or restore and why (tier 1 with the grid,
further tiers on charge or runway, with hysteresis; a staggered restore once the grid has been
stable). `loads` checks LOADS_FILE at start-up (one clear line per mistake) into the frozen
dataclasses of `plan`. `actor` is the extension: it follows its gateway's stream
(`SnapshotSettled` feeds the policy), sends the loads' commands through the MQTT link (urgent,
ahead of the snapshot's own events), learns its retained state back after a restart, and
takes the arm switch and manual overrides; `notices` publishes its states and events,
`entities` describes its Home Assistant entities and `topics` names its topics.

May import: `core` (all the policy imports), `catalog`, `mqtt` (the `Link` protocol, topics,
discovery payloads, the command guard; never `mqtt.link`, the only aiomqtt importer),
`settings`, `polling` (event types), `features` (the extension base) and pydantic (in
`loads` only); never `gateway` or `auth`.
"""
