"""Gateway credentials for firmware 7+: token sources, renewal, the cache, Enlighten, `token`.

`tokens`: where a gateway's JWT comes from (a fixed ENVOY_TOKEN, or an Enlighten account: the
current token, else the one cached in STATE_DIR by `store`, else a fresh one from `enlighten`),
when it is renewed, and the source the settings ask for; `claims`: what a token says; `errors`:
why there is no usable token (the gateway edge and `enlighten` raise them too); `command`: the
`envoy2mqtt token` command. Older firmware uses digest auth, handled by pyenphase in `gateway`.
May import `core`, `settings`, `statefile` (the cache), aiohttp (in `enlighten` only) and pyjwt
(in `claims` only); never `gateway`, `catalog` or `mqtt` at import time (the `token` command
reaches the gateway through `gateway.client`, imported inside the function).
"""
