"""The gateway edge: everything that talks HTTP(S) to an Envoy / IQ Gateway.

pyenphase does the protocol (firmware probe, both auth schemes, data models); this stage adds
one request in flight per gateway and each request bounded (`gate`), the lanes' pace and quiet
window (`pace`), certificate pinning (`pinning`), digest auth kept inside the gate (`legacy`),
the lanes' overlay of fresh readings (`overlay`, pure), and one translation of foreign I/O and
protocol errors into ours (`errors`, `translate`); our own bugs are not translated. `client`
is the `GatewayClient` the bridge uses: connect, authenticate, read each lane. `adapter` is the
only module that touches pyenphase's private names or reads the gateway's raw JSON, and only
this stage imports pyenphase's client and aiohttp for gateway traffic. May import: `core`,
`auth` (the token source it is handed), `settings`, `statefile` (the pins);
never `catalog` or `mqtt`.
"""
