"""The gateway edge: everything that talks HTTP(S) to an Envoy / IQ Gateway.

pyenphase does the protocol (firmware probe, both auth schemes, data models); this stage adds
one request in flight per gateway (the gate), polite pacing and back-off, certificate pinning,
the lanes' overlay of fresh readings, and one translation of foreign errors into ours. Only
`adapter` touches pyenphase's private names, and only this stage imports pyenphase's client
and aiohttp for gateway traffic. May import: `core`, `auth` (the token source it is handed),
`settings`; never `catalog` or `mqtt`.
"""
