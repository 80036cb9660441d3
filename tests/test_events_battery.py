"""Battery events worth acting on, end to end: a state must hold before it is published."""

from __future__ import annotations

import time
from pathlib import Path

from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, Recorder
from tests.harness import bridge_settings, running
from tests.test_events_e2e import BATTERY_CAPTURE, answered, events, has_event

BATTERY_POWER = "/ivp/ensemble/power"


async def test_a_blip_raises_no_event_and_a_held_state_one(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    port = mosquitto_session.port
    async with SimulatedGateway(capture=BATTERY_CAPTURE) as gateway:
        gateway.set_battery(soc=60, power_w=0)
        base = f"{unique_prefix}/{gateway.serial}"
        topic, state_topic = f"{base}/event", f"{base}/battery_state"
        settings = bridge_settings(
            gateway,
            port,
            unique_prefix,
            tmp_path,
            battery_interval=1.0,
            battery_state_dwell=4.0,
            battery_state_band=350.0,
        )
        async with (
            Recorder("127.0.0.1", port, f"{unique_prefix}/#") as recorder,
            running(settings),
        ):
            await recorder.wait_for(lambda r: any(x.topic == state_topic for x in r), timeout=20)
            for watts in (300, -250, 200, -300):  # hovering inside the band: idle throughout
                gateway.set_battery(power_w=watts)
                await answered(gateway, BATTERY_POWER, after=time.monotonic())
            gateway.set_battery(power_w=2000)  # a blip, shorter than the dwell
            now = time.monotonic()
            await answered(gateway, BATTERY_POWER, after=now, count=1)
            gateway.set_battery(power_w=0)
            now = time.monotonic()
            await answered(gateway, BATTERY_POWER, after=now, count=1)
            gateway.set_battery(power_w=-1500)  # held: believed after the dwell
            await recorder.wait_for(has_event(topic, "battery"), timeout=20)
            changed = next(r.t for r in recorder.records if r.topic == topic)
            held = [
                r
                for r in gateway.stats.log
                if r.path == BATTERY_POWER and r.start < changed and r.end > changed - 4.0
            ]

    battery = events(recorder.records, topic, "battery")
    assert [(e["from"], e["to"]) for e in battery] == [("idle", "charging")]
    assert battery[0]["context"]["battery_power"] == -1500
    states = [r.payload for r in recorder.on(state_topic)]
    assert set(states) == {b"idle", b"charging"}
    assert states[-1] == b"charging"
    assert len(held) >= 3  # several charging reads went by before it was believed
