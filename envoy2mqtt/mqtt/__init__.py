"""The MQTT side: topic names, Home Assistant discovery, the summary, the publisher, the link.

`publisher` turns snapshots into messages (states, events, summary, discovery) through the
`Link` protocol; `link` is the only module in the package that imports aiomqtt. May import:
`core`, `catalog`, `settings`; never `gateway` or `auth`.
"""
