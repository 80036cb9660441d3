"""Gateway credentials for firmware 7+: token sources, renewal, the cache, Enlighten.

`tokens`: where a gateway's JWT comes from (a fixed ENVOY_TOKEN, or an Enlighten account: the
current token, else the one cached in STATE_DIR by `store`, else a fresh one from `enlighten`),
when it is renewed, and the source the settings ask for; `claims`: what a token says; `errors`:
why there is no usable token (the gateway edge and `enlighten` raise them too); `battery`: the
Enlighten battery-settings API (the controls' cloud path). Older firmware uses digest auth,
handled by pyenphase in `gateway`; the `envoy2mqtt token` command, which drives a gateway, is
`envoy2mqtt.token_command`, outside this stage, so auth and gateway form no cycle.
May import `core`, `settings`, `statefile` (the cache), aiohttp (in `enlighten` and
`battery`), pyjwt (in `claims`); never `gateway`, `catalog` or `mqtt`.
"""
