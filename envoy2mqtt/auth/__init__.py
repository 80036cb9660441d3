"""Gateway credentials for firmware 7+: token sources, renewal, the cache, Enlighten, `token`.

A JWT comes from a fixed ENVOY_TOKEN (`fixed`) or from an Enlighten account (`cloud`: the
current token, else the one cached in STATE_DIR by `store`, else a fresh one from `enlighten`),
renewed ahead of expiry by the rule in `renewal`; `factory` picks the source from the settings.
Older firmware uses digest auth, handled by pyenphase in `gateway`. May import `core`,
`settings`, `statefile` (the cache), aiohttp (in `enlighten` only) and pyjwt (in `claims`
only); never `gateway`, `catalog` or `mqtt` at import time (the `token` command reaches the
gateway through `gateway.client`, imported inside the function).
"""
