"""Diagnostics of the gateway's credentials: token expiry and type, last success, failures."""

from __future__ import annotations

from datetime import UTC, datetime

from envoy2mqtt.catalog.base import COUNT, TEXT, TIMESTAMP
from envoy2mqtt.catalog.metric import DIAGNOSTIC, GatewayMetrics, Source
from envoy2mqtt.core.snapshot import Snapshot


def _iso(moment: datetime | None) -> str | None:
    """An ISO 8601 timestamp in UTC, to the second (Home Assistant's timestamp class)."""
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # a moment at the very edge of datetime
        return None


def _expires(snap: Snapshot) -> str | None:
    return _iso(snap.auth.token_expires_at) if snap.auth else None


def _type(snap: Snapshot) -> str | None:
    return snap.auth.token_type if snap.auth else None


def _last_success(snap: Snapshot) -> str | None:
    return _iso(snap.auth.last_success) if snap.auth else None


def _failures(snap: Snapshot) -> int | None:
    return snap.auth.failures if snap.auth else None


AUTH: Source = GatewayMetrics(
    (
        TIMESTAMP(
            "token_expires",
            "Token expires",
            _expires,
            "When the gateway's JWT expires (firmware 7+; renewed ahead by itself)",
            icon="mdi:key-chain-variant",
        ),
        TEXT(
            "token_type",
            "Token type",
            _type,
            "owner or installer (installer tokens last about 12 hours)",
            category=DIAGNOSTIC,
            icon="mdi:account-key",
        ),
        TIMESTAMP(
            "auth_last_success",
            "Last successful authentication",
            _last_success,
            "When the gateway last accepted our token",
            icon="mdi:shield-check",
        ),
        COUNT(
            "auth_failures",
            "Authentication failures",
            _failures,
            "Refused tokens and failed token requests since the bridge started",
            category=DIAGNOSTIC,
            icon="mdi:shield-alert",
        ),
    ),
    inputs=("auth",),
)
