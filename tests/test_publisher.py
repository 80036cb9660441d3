"""The publisher and discovery, driven with hand-built pyenphase data and a recording link."""

import json
from datetime import UTC, datetime, timedelta

from pyenphase.models.envoy import EnvoyData
from pyenphase.models.inverter import EnvoyInverter
from pyenphase.models.system_consumption import EnvoySystemConsumption
from pyenphase.models.system_production import EnvoySystemProduction

from envoy2mqtt.core.clock import Clock
from envoy2mqtt.core.snapshot import GatewayInfo, Snapshot
from envoy2mqtt.mqtt.publisher import GatewayPublisher, PublishOptions, format_value
from envoy2mqtt.mqtt.summary import packet_size
from envoy2mqtt.mqtt.topics import Topics, sanitize
from envoy2mqtt.settings import Settings
from tests.links import RecordingLink

INFO = GatewayInfo(serial="122238082763", firmware="7.6.175", part_number="800-00654-r08")
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def data(watts: int = 1000, net: int | None = -200, inverters: int = 2) -> EnvoyData:
    d = EnvoyData()
    d.system_production = EnvoySystemProduction(
        watt_hours_lifetime=5_000_000,
        watt_hours_last_7_days=70_000,
        watt_hours_today=12_000,
        watts_now=watts,
    )
    if net is not None:
        d.system_net_consumption = EnvoySystemConsumption(
            watt_hours_lifetime=10, watt_hours_last_7_days=1, watt_hours_today=1, watts_now=net
        )
    d.inverters = {
        f"4821{i}": EnvoyInverter(
            serial_number=f"4821{i}",
            last_report_date=1,
            last_report_watts=100 + i,
            max_report_watts=300,
        )
        for i in range(inverters)
    }
    return d


def publisher(link: RecordingLink, **options: object) -> GatewayPublisher:
    clock = iter(range(0, 100000, 10))
    return GatewayPublisher(
        link,
        Topics(),
        INFO,
        PublishOptions(**options),  # type: ignore[arg-type]
        clock=Clock(monotonic=lambda: float(next(clock))),
    )


def test_states_are_plain_retained_values_and_absent_data_is_absent() -> None:
    link = RecordingLink()
    publisher(link).publish_snapshot(Snapshot(INFO, data(net=-200), T0))
    state = link.retained()
    base = "envoy2mqtt/122238082763"
    assert state[f"{base}/production_power"] == b"1000"
    assert state[f"{base}/net_power"] == b"-200"
    assert state[f"{base}/grid_import_power"] == b"0"
    assert state[f"{base}/grid_export_power"] == b"200"
    assert state[f"{base}/inverter/48210/power"] == b"100"
    assert f"{base}/consumption_power" not in state  # no consumption CT: absent, not 0
    assert f"{base}/grid_status" not in state


def test_discovery_is_energy_dashboard_ready() -> None:
    link = RecordingLink()
    publisher(link).publish_snapshot(Snapshot(INFO, data(), T0))
    configs = {t: json.loads(p) for t, p, _ in link.messages if t.startswith("homeassistant/")}
    energy = configs["homeassistant/sensor/122238082763/production_energy_lifetime/config"]
    assert energy["device_class"] == "energy"
    assert energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "Wh"
    assert energy["unique_id"] == "envoy2mqtt_122238082763_production_energy_lifetime"
    # only device keys every supported Home Assistant knows (serial_number is 2024.2+)
    assert "serial_number" not in energy["device"]
    assert energy["device"]["hw_version"] == "800-00654-r08"
    assert energy["device"]["sw_version"] == "7.6.175"
    assert energy["origin"]["name"] == "envoy2mqtt"
    assert [a["topic"] for a in energy["availability"]] == [
        "envoy2mqtt/bridge/state",
        "envoy2mqtt/122238082763/availability",
    ]
    power = configs["homeassistant/sensor/122238082763/production_power/config"]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    inverter = configs["homeassistant/sensor/122238082763/inverter_48210_power/config"]
    assert inverter["enabled_by_default"] is False
    assert inverter["device"]["via_device"] == "envoy2mqtt_122238082763"
    # the entity id for Home Assistant before (object_id) and after 2025.10 (default_entity_id)
    assert inverter["object_id"] == "envoy_122238082763_inverter_48210_power"
    assert inverter["default_entity_id"] == "sensor.envoy_122238082763_inverter_48210_power"


def test_change_detection_and_vanished_inverter_discovery_removed() -> None:
    link = RecordingLink()
    pub = publisher(link)
    pub.publish_snapshot(Snapshot(INFO, data(inverters=2), T0))
    link.clear()
    pub.publish_snapshot(Snapshot(INFO, data(inverters=1), T0))
    topics = [t for t, _, _ in link.messages]
    removed = [t for t, p, _ in link.messages if p == b""]
    assert "homeassistant/sensor/122238082763/inverter_48211_power/config" in removed
    assert not any(t.endswith("/production_power") for t in topics)  # unchanged: not re-sent


def test_counters_never_go_backwards_on_the_wire() -> None:
    link = RecordingLink()
    pub = publisher(link)
    pub.publish_snapshot(Snapshot(INFO, data(), T0))
    glitch = data()
    assert glitch.system_production is not None
    glitch.system_production.watt_hours_lifetime = 0
    pub.publish_snapshot(Snapshot(INFO, glitch, T0 + timedelta(seconds=1)))
    lifetimes = [p for t, p, _ in link.messages if t.endswith("/production_energy_lifetime")]
    assert lifetimes == [b"5000000"]


def test_negative_night_production_is_clamped_by_default_only() -> None:
    link = RecordingLink()
    publisher(link).publish_snapshot(Snapshot(INFO, data(watts=-3), T0))
    assert link.retained()["envoy2mqtt/122238082763/production_power"] == b"0"
    link = RecordingLink()
    publisher(link, clamp_negative_production=False).publish_snapshot(
        Snapshot(INFO, data(watts=-3), T0)
    )
    assert link.retained()["envoy2mqtt/122238082763/production_power"] == b"-3"


def test_summary_fits_a_pubsubclient_packet() -> None:
    link = RecordingLink()
    publisher(link).publish_snapshot(
        Snapshot(INFO, data(watts=-1_000_000_000, net=-999_999_999), T0)
    )
    topic = "envoy2mqtt/122238082763/summary"
    payload = link.retained()[topic].decode()
    assert packet_size(topic, payload) < 256
    assert json.loads(payload)["net"] == -999_999_999


def test_device_mode_groups_entities_in_cmps() -> None:
    link = RecordingLink()
    publisher(link, ha_discovery_mode="device").publish_snapshot(Snapshot(INFO, data(), T0))
    configs = {t: json.loads(p) for t, p, _ in link.messages if t.startswith("homeassistant/")}
    gateway = configs["homeassistant/device/envoy2mqtt_122238082763/config"]
    assert "envoy2mqtt_122238082763_production_power" in gateway["cmps"]
    assert gateway["cmps"]["envoy2mqtt_122238082763_production_power"]["platform"] == "sensor"
    assert "homeassistant/device/envoy2mqtt_122238082763_inverter_48210/config" in configs


def test_republish_sends_discovery_then_states() -> None:
    link = RecordingLink()
    pub = publisher(link)
    pub.publish_snapshot(Snapshot(INFO, data(), T0))
    link.clear()
    pub.republish()
    topics = [t for t, _, _ in link.messages]
    first_state = next(i for i, t in enumerate(topics) if t.startswith("envoy2mqtt/"))
    assert all(t.startswith("homeassistant/") for t in topics[:first_state])
    assert "envoy2mqtt/122238082763/production_power" in topics


def test_values_format_plainly() -> None:
    assert format_value(12) == "12"
    assert format_value(12.0) == "12"
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value("on-grid") == "on-grid"


def test_sanitize_keeps_topics_safe() -> None:
    assert sanitize("12/3#+\x00ab") == "12_3_ab"
    assert sanitize("ünï") == "n"
    assert sanitize("///") == "unknown"


def test_ha_compat_adds_the_newer_device_keys_only_when_asked() -> None:
    from envoy2mqtt.mqtt.discovery import HaRelease

    def gateway_device(**options: object) -> dict[str, object]:
        link = RecordingLink()
        publisher(link, **options).publish_snapshot(Snapshot(INFO, data(), T0))
        topic = "homeassistant/sensor/122238082763/production_power/config"
        device = json.loads(link.retained()[topic])["device"]
        assert isinstance(device, dict)
        return device

    old = gateway_device()  # HA_COMPAT 2024.1: nothing 2024.1 would reject
    assert "serial_number" not in old
    assert "model_id" not in old
    assert old["hw_version"] == "800-00654-r08"
    new = gateway_device(ha_compat=HaRelease(2024, 9))
    assert new["serial_number"] == "122238082763"
    assert new["model_id"] == "800-00654-r08"


def test_publish_options_are_the_settings_of_those_names() -> None:
    settings = Settings.model_construct()  # the defaults, without reading the environment
    options = PublishOptions.of(settings)
    assert options.heartbeat_interval == settings.heartbeat_interval
    assert options.state_power_jump == settings.state_power_jump
    assert options.state_intervals == {
        "energy": settings.state_interval_energy,
        "power": settings.state_interval_power,
        "measurement": settings.state_interval_measurement,
    }
    assert PublishOptions().state_intervals == {}  # a plain publisher: every change at once
