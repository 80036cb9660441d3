"""Ghost discovery configs: ours found retained on the broker and removed; nobody else's."""

from __future__ import annotations

import json

from envoy2mqtt.core.snapshot import GatewayInfo
from envoy2mqtt.mqtt.announce import Announcer
from envoy2mqtt.mqtt.discovery import DiscoveryMessage
from envoy2mqtt.mqtt.ghosts import Ghosts
from envoy2mqtt.mqtt.topics import Topics
from tests.links import RecordingLink

BASE = "envoy2mqtt"
INFO = GatewayInfo(serial="1", firmware="8.2.4286")


def config(serial: str, path: str, *, origin: str = "envoy2mqtt", base: str = BASE) -> bytes:
    return json.dumps(
        {
            "name": path,
            "unique_id": f"envoy2mqtt_{serial}_{path}",
            "state_topic": f"{base}/{serial}/{path}",
            "availability": [{"topic": f"{base}/bridge/state"}],
            "origin": {"name": origin},
        }
    ).encode()


def test_only_our_configs_under_our_base_are_ours() -> None:
    ghosts = Ghosts(BASE)
    ghosts.seen("homeassistant/sensor/1/a/config", config("1", "a"))
    ghosts.seen("homeassistant/sensor/2/a/config", config("2", "a", origin="Zigbee2MQTT"))
    ghosts.seen("homeassistant/sensor/3/a/config", config("3", "a", base="other-instance"))
    ghosts.seen("homeassistant/sensor/4/a/config", b"not json envoy2mqtt")
    ghosts.seen("homeassistant/sensor/5/a/config", b'{"name": "x"}')
    assert ghosts.found == {"homeassistant/sensor/1/a/config": "1"}


def test_abbreviated_and_device_configs_are_recognised() -> None:
    ghosts = Ghosts(BASE)
    device = {
        "dev": {"ids": ["envoy2mqtt_9"]},
        "o": {"name": "envoy2mqtt"},
        "cmps": {
            "envoy2mqtt_9_p": {"p": "sensor", "uniq_id": "envoy2mqtt_9_p", "stat_t": f"{BASE}/9/p"}
        },
    }
    ghosts.seen("homeassistant/device/envoy2mqtt_9/config", json.dumps(device).encode())
    assert ghosts.found == {"homeassistant/device/envoy2mqtt_9/config": "9"}


def test_an_empty_payload_forgets_a_config() -> None:
    ghosts = Ghosts(BASE)
    ghosts.seen("homeassistant/sensor/1/a/config", config("1", "a"))
    ghosts.seen("homeassistant/sensor/1/a/config", b"")
    assert ghosts.found == {}


def test_stale_are_those_not_announced_and_unknown_gateways_wait() -> None:
    ghosts = Ghosts(BASE)
    for serial, path in (("1", "a"), ("1", "gone"), ("2", "a")):
        ghosts.seen(f"homeassistant/sensor/{serial}/{path}/config", config(serial, path))
    announced = {"1": {"homeassistant/sensor/1/a/config"}}
    # gateway 2 may be one that is merely offline: its configs stay until every gateway is known
    assert ghosts.stale(announced, every_gateway_known=False) == [
        "homeassistant/sensor/1/gone/config"
    ]
    assert ghosts.stale(announced, every_gateway_known=True) == [
        "homeassistant/sensor/1/gone/config",
        "homeassistant/sensor/2/a/config",
    ]


def test_a_held_announcer_publishes_nothing_then_removes_what_was_left_first() -> None:
    link = RecordingLink()
    announcer = Announcer(link, Topics(BASE), mode="device")
    wanted = DiscoveryMessage("homeassistant/device/envoy2mqtt_1/config", {"cmps": {}})
    left = ["homeassistant/sensor/1/a/config", wanted.topic]  # an earlier run's, in entity mode
    announcer.controls = (wanted,)
    announcer.hold()
    assert announcer.announce(INFO) == 0
    assert link.sent == []
    assert announcer.take_over(left, INFO) == 2  # what waited goes now
    assert [(s.topic, s.payload) for s in link.sent] == [
        ("homeassistant/sensor/1/a/config", b""),  # the unique ids freed first
        (wanted.topic, b'{"cmps": {}}'),
    ]
    assert not announcer.waiting
    assert announcer.withdrawn == {"homeassistant/sensor/1/a/config"}  # the sweep leaves it be


def test_an_announcer_taking_over_before_its_first_announce_removes_the_rest_then() -> None:
    link = RecordingLink()
    announcer = Announcer(link, Topics(BASE))
    assert announcer.take_over(["homeassistant/device/envoy2mqtt_1/config"], INFO) == 0
    announcer.controls = (DiscoveryMessage("homeassistant/switch/1/c/config", {"name": "c"}),)
    announcer.announce(INFO)
    assert [s.topic for s in link.sent] == [
        "homeassistant/device/envoy2mqtt_1/config",
        "homeassistant/switch/1/c/config",
    ]
    assert link.sent[0].payload == b""
