"""State codes in plain English, the code kept as a Home Assistant attribute."""

from __future__ import annotations

import pytest

from envoy2mqtt.catalog.ensemble import ENPOWERS
from envoy2mqtt.catalog.metric import Device, Entity, Metric
from envoy2mqtt.catalog.status import state_text
from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.discovery import ORIGIN, entity_payload
from envoy2mqtt.mqtt.topics import Topics

INFO = GatewayInfo(serial="122238082763", firmware="8.2.4286")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("ENCHG_STATE_READY", "Ready"),
        ("ENCHG_STATE_CHARGING", "Charging"),
        ("ENPWR_STATE_OPER_CLOSED", "Closed"),
        ("ENPWR_STATE_OPER_NO_GRID", "No grid"),
        ("ENS_DEVICE_STATE_READY", "Ready"),
        ("SOMETHING_NEW", "SOMETHING_NEW"),  # unknown: as the gateway sent it
        ("ENCHG_STATE_", "ENCHG_STATE_"),
        ("", None),
        (None, None),
    ],
)
def test_state_text(code: str | None, text: str | None) -> None:
    assert state_text(code) == text


def test_status_carries_its_code_as_an_attribute() -> None:
    metrics: dict[str, Metric[object]] = {m.key: m for m in ENPOWERS.metrics}  # type: ignore[misc]
    device = Device(kind="enpower", id="482326107450", name="IQ System Controller")
    status = Entity("enpower/482326107450/status", metrics["status"], device)
    payload = entity_payload(Topics(), INFO, status)
    assert payload["json_attributes_topic"] == Topics().state(
        INFO.serial, "enpower/482326107450/status_code"
    )
    assert payload["json_attributes_template"] == '{{ {"code": value} | tojson }}'
    code = Entity("enpower/482326107450/status_code", metrics["status_code"], device)
    assert "json_attributes_topic" not in entity_payload(Topics(), INFO, code)


def test_origin_links_nowhere_dead() -> None:
    assert "support_url" not in ORIGIN
