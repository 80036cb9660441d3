"""The gateway's own time zone: its "today" counters reset and its nightly drop-out come at
its midnight and its 23:00, not the bridge's (a container runs in UTC unless told otherwise)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone a gateway states (e.g. "US/Central"); None if it states none we know."""
    if not name or name.strip().lower() in ("", "unknown"):
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_to(zone: tzinfo | None, moment: datetime) -> datetime:
    """`moment` on the gateway's clock: its zone where known, else the bridge's own (TZ)."""
    return moment.astimezone(zone) if zone is not None else moment.astimezone()
