"""`envoy2mqtt token`: obtain or check each gateway's token and print its status.

The token itself is printed only with `--show`; everything else is safe to paste in an issue.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from envoy2mqtt.auth.claims import TokenInfo
from envoy2mqtt.auth.errors import TokenError
from envoy2mqtt.auth.tokens import CloudTokens, FixedToken, token_source
from envoy2mqtt.settings import GatewaySettings, Settings

Lines = list[tuple[str, str]]


async def token_command(
    settings: Settings, *, show: bool, renew: bool, out: TextIO = sys.stdout
) -> int:
    """Print the token status of every gateway; 0 if each has a token its gateway accepts."""
    worst = 0
    for gateway in settings.gateway_list():
        lines: Lines = []
        code = await _inspect(settings, gateway, lines, show=show, renew=renew)
        out.write(f"gateway {gateway.host}\n")
        out.writelines(f"  {label + ':':<10} {text}\n" for label, text in lines)
        worst = max(worst, code)
    return worst


async def _inspect(
    settings: Settings, gateway: GatewaySettings, lines: Lines, *, show: bool, renew: bool
) -> int:
    # imported here, not at the top: the gateway edge imports auth, never the reverse
    from envoy2mqtt.gateway.client import GatewayClient
    from envoy2mqtt.gateway.errors import GatewayAuthError, GatewayError
    from envoy2mqtt.gateway.finder import NotFound, find_one, interfaces_from, is_auto

    source = token_source(settings, gateway)
    if renew and isinstance(source, FixedToken):
        lines.append(
            ("error", "ENVOY_TOKEN is fixed: set ENVOY_USERNAME and ENVOY_PASSWORD instead")
        )
        return 1
    if renew and isinstance(source, CloudTokens):
        source.skip_cache()
    serial, reached = gateway.serial or "", False
    host = gateway.host
    if is_auto(host):
        try:
            host = await find_one(gateway.serial, interfaces_from(settings.mdns_interfaces))
        except NotFound as err:
            lines.append(("gateway", f"not found by mDNS ({err})"))
            return 1
    async with GatewayClient(
        host,
        username=gateway.username,
        password=gateway.password.get_secret_value() if gateway.password else None,
        tokens=source,
        timeout=settings.request_timeout,
    ) as client:
        try:
            info = await client.connect()
        except GatewayAuthError as err:
            lines.append(("error", str(err)))
            return 1
        except GatewayError as err:
            lines.append(("gateway", f"not reachable ({err})"))
        else:
            serial, reached = info.serial, True
            lines += [("serial", info.serial), ("firmware", info.firmware)]
    return await _report(source, serial, lines, reached=reached, show=show)


async def _report(
    source: FixedToken | CloudTokens | None, serial: str, lines: Lines, *, reached: bool, show: bool
) -> int:
    if reached and (source is None or source.status().last_success is None):
        lines.append(("auth", "digest (firmware < 7: user envoy or installer), no token needed"))
        return 0
    if source is None:
        return 1
    if not serial:
        lines.append(("error", "the serial number is unknown: set ENVOY_SERIAL"))
        return 1
    try:
        token = await source.token(serial)  # the token just checked, or a cached/new one
    except TokenError as err:
        lines.append(("error", str(err)))
        return 1
    if not reached:
        lines.append(("serial", serial))
    lines += _status(source, token, show=show)
    if reached:
        lines.append(("gateway", "accepted the token"))
    return 0 if reached else 1


def _status(source: FixedToken | CloudTokens, token: str, *, show: bool) -> Lines:
    lines: Lines = [("source", source.origin or "unknown")]
    info = source.info
    if info is not None:
        lines += [("type", info.kind or "unknown"), ("expires", _expiry(info))]
        renew_at = source.renewal.renew_at(info)
        if renew_at is not None and isinstance(source, CloudTokens):
            lines.append(("renews", f"from {renew_at.isoformat(timespec='minutes')}"))
    lines.append(("token", token if show else "hidden (add --show to print it)"))
    return lines


def _expiry(info: TokenInfo) -> str:
    if info.expires_at is None:
        return "never (the token has no exp claim)"
    when = info.expires_at.isoformat(timespec="minutes")
    left = info.expires_at - datetime.now(UTC)
    if left.total_seconds() <= 0:
        return f"{when} (expired)"
    return f"{when} (in {left.days} d {left.seconds // 3600} h)"
