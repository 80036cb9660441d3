"""Diagnostics of the gateway's credentials: token expiry and type, last success, failures."""

from __future__ import annotations

from datetime import UTC, datetime

from envoy2mqtt.metric import DIAGNOSTIC, GatewayMetrics, Metric, Source
from envoy2mqtt.snapshot import Snapshot


def _iso(moment: datetime | None) -> str | None:
    """An ISO 8601 timestamp in UTC, to the second (Home Assistant's timestamp class)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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
        Metric(
            key="token_expires",
            name="Token expires",
            read=_expires,
            device_class="timestamp",
            category=DIAGNOSTIC,
            icon="mdi:key-chain-variant",
        ),
        Metric(
            key="token_type",
            name="Token type",
            read=_type,
            category=DIAGNOSTIC,
            icon="mdi:account-key",
        ),
        Metric(
            key="auth_last_success",
            name="Last successful authentication",
            read=_last_success,
            device_class="timestamp",
            category=DIAGNOSTIC,
            icon="mdi:shield-check",
        ),
        Metric(
            key="auth_failures",
            name="Authentication failures",
            read=_failures,
            category=DIAGNOSTIC,
            icon="mdi:shield-alert",
        ),
    )
)
