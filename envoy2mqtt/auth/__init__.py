"""Gateway credentials: token sources, the token store, the Enlighten client, `token` command.

Firmware 7+ wants a JWT: a fixed ENVOY_TOKEN, or one fetched from Enlighten, cached in
STATE_DIR and renewed ahead of expiry. Older firmware uses digest auth, handled by pyenphase
in `gateway`. May import: `core`, `settings`, aiohttp (for Enlighten only) and pyjwt; never
`gateway`, `catalog` or `mqtt` (the `token` command reaches the gateway through `gateway`,
imported lazily at run time).
"""
