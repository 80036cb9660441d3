"""Diagnostics of the gateway itself: what it is and how it is set up."""

from __future__ import annotations

from envoy2mqtt.catalog.base import COUNT, FLAG, TEXT, joined, on_off
from envoy2mqtt.catalog.metric import DIAGNOSTIC, GatewayMetrics

DIAGNOSTICS = GatewayMetrics(
    (
        TEXT(
            "firmware",
            "Firmware",
            lambda s: s.gateway.firmware,
            "Gateway firmware version",
            category=DIAGNOSTIC,
            icon="mdi:chip",
        ),
        TEXT(
            "serial",
            "Serial number",
            lambda s: s.gateway.serial,
            "Gateway serial number",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "part_number",
            "Part number",
            lambda s: s.gateway.part_number,
            "Gateway part number (model and revision)",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "model",
            "Model",
            lambda s: s.gateway.model,
            "Gateway model as pyenphase names it",
            category=DIAGNOSTIC,
        ),
        FLAG(
            "metered",
            "Metered",
            lambda s: on_off(s.gateway.metered),
            "Whether the gateway can meter (it has CT inputs)",
            category=DIAGNOSTIC,
        ),
        COUNT(
            "phase_count",
            "Phases",
            lambda s: s.gateway.phase_count,
            "Number of phases the CTs measure",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "phase_mode",
            "Phase mode",
            lambda s: s.gateway.phase_mode,
            "single / split / three",
            category=DIAGNOSTIC,
        ),
        TEXT(
            "ct_meters",
            "CT meters",
            lambda s: joined(list(s.gateway.ct_meters)),
            "The CTs enabled in the gateway, e.g. 'production, net-consumption'",
            category=DIAGNOSTIC,
        ),
    ),
    inputs=("gateway",),
)
