"""Grid events from the relay states a System Controller reports islanded, end to end.

On firmware D8.3.6086 an islanded relay reads `open synchronizing`, then `open synchronized`,
and never plain `open`; closing, it still reads `open synchronized` for a while. The bridge
must call each of them off grid, raise one event each way, and show the raw state.
"""

from __future__ import annotations

from pathlib import Path

from envoy2mqtt.sim import SimulatedGateway
from envoy2mqtt.sim.state import INVENTORY, RELAY, STATUS
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running
from tests.test_events_e2e import BATTERY_CAPTURE, events, has_event


def report_relay(gateway: SimulatedGateway, oper: str) -> None:
    """Make every document that carries the relay's position read `oper`."""
    state = gateway.state
    gateway.set_grid(oper == "closed")  # the physics: islanded or not
    state.dirty.add(INVENTORY)
    for device in state.devices("ENPOWER"):
        device["mains_oper_state"] = oper
    if isinstance(state.documents.get(RELAY), dict):
        state.touch(RELAY)["mains_oper_state"] = oper
    status = state.documents.get(STATUS)
    if isinstance(status, dict) and isinstance(status.get("relay"), dict):
        state.touch(STATUS)["relay"]["mains_oper_state"] = oper


async def test_synchronizing_states_are_off_grid_with_one_event_each_way(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        base = f"{unique_prefix}/{gateway.serial}"
        event_topic, grid_topic = f"{base}/event", f"{base}/grid_status"
        enpower = next(gateway.state.devices("ENPOWER"))["serial_num"]
        relay_topic = f"{base}/enpower/{enpower}/grid_relay"
        settings = bridge_settings(gateway, port, unique_prefix, tmp_path, fast_interval=0.5)
        async with (
            Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            # the relay's own topic comes with the first full read (the grid status before it)
            await recorder.wait_for(lambda r: any(x.topic == relay_topic for x in r), timeout=20)
            report_relay(gateway, "open synchronizing")
            await recorder.wait_for(has_event(event_topic, "grid"), timeout=10)
            report_relay(gateway, "open synchronized")
            await recorder.wait_for(
                lambda r: any(
                    x.topic == relay_topic and x.payload == b"open synchronized" for x in r
                ),
                timeout=10,
            )
            report_relay(gateway, "closed")
            await recorder.wait_for(has_event(event_topic, "grid", 2), timeout=10)
            await recorder.wait_for(
                lambda r: any(x.topic == relay_topic and x.payload == b"closed" for x in r[-50:]),
                timeout=10,
            )

    grid = events(recorder.records, event_topic, "grid")
    assert [(e["from"], e["to"]) for e in grid] == [
        ("on-grid", "off-grid"),
        ("off-grid", "on-grid"),
    ]
    relay = [r.payload for r in recorder.on(relay_topic)]
    shown = [p for i, p in enumerate(relay) if i == 0 or p != relay[i - 1]]
    assert shown == [b"closed", b"open synchronizing", b"open synchronized", b"closed"]
    states = [r.payload for r in recorder.on(grid_topic)]
    assert b"off-grid" in states
    assert states[-1] == b"on-grid"
