"""Grid status from every relay and collar state the field reports, pure."""

from __future__ import annotations

import logging

import pytest

from envoy2mqtt.catalog.ensemble import COLLARS, ENPOWERS
from envoy2mqtt.core import snapshot
from envoy2mqtt.core.snapshot import GridStatus, collar_status, relay_status

ON, OFF = GridStatus.ON_GRID, GridStatus.OFF_GRID


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("closed", ON),
        ("open", OFF),
        ("open synchronizing", OFF),  # D8.3.6086 islanding: never plain `open`
        ("open synchronized", OFF),  # still off grid while the relay closes
        ("Open Synchronized", OFF),
        ("  open   synchronizing ", OFF),
        ("CLOSED", ON),
        ("open-resyncing", OFF),  # not seen yet: decided by its first word
        ("closed pending", ON),
        ("unknown", None),
        ("", None),
    ],
)
def test_relay_state_means(state: str, status: GridStatus | None) -> None:
    assert relay_status(state) is status


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("on_grid", ON),
        ("off_grid", OFF),
        ("on-grid", ON),
        ("Off Grid", OFF),
        ("ON_GRID", ON),
        ("multimode-ongrid", ON),
        ("multimode-offgrid", OFF),
        ("ongrid", ON),
        ("offgrid", OFF),
        ("grid", None),
        ("on", None),  # neither word says grid: no status rather than a guess
        ("unknown", None),
    ],
)
def test_collar_state_means(state: str, status: GridStatus | None) -> None:
    assert collar_status(state) is status


def test_a_new_state_is_logged_once_per_process(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "_reported", set())
    with caplog.at_level(logging.WARNING, logger=snapshot.__name__):
        for _ in range(5):
            assert relay_status("open islanded") is OFF
            assert relay_status("open synchronized") is OFF  # known: never logged
            assert collar_status("off-grid") is OFF
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2
    assert "'open islanded'" in logged[0]
    assert "off-grid" in logged[0]
    assert "'off-grid'" in logged[1]


def test_relay_entities_accept_any_state_in_home_assistant() -> None:
    """An enum sensor refuses a state outside its options: the relay states are plain text."""
    shapes = {m.key: (m.device_class, m.options) for m in ENPOWERS.metrics}
    shapes |= {m.key: (m.device_class, m.options) for m in COLLARS.metrics}
    for key in ("grid_relay", "grid_relay_commanded", "grid_state"):
        assert shapes[key] == (None, ())
