"""LOADS_FILE: the issue's own example is valid, and every mistake gets a clear line of its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envoy2mqtt.settings import ConfigError, GatewaySettings, Settings
from envoy2mqtt.shedding.loads import Plan, read_plan
from envoy2mqtt.shedding.plan import Feedback, Load

EXAMPLE = """\
loads:
  - name: dryer
    tier: 1                        # 1 = shed the moment the grid fails
    off: {topic: cmnd/dryer/POWER, payload: "OFF"}   # any MQTT topic + payload
    on:  {topic: cmnd/dryer/POWER, payload: "ON"}
    watts: 3000                    # estimate, for the runway
  - name: heat-pump
    tier: 2
    shed_below_soc: 50             # off-grid and the battery below 50 %
    restore_above_soc: 60
    off: {topic: zigbee2mqtt/heat_pump_plug/set, payload: '{"state":"OFF"}'}
    on:  {topic: zigbee2mqtt/heat_pump_plug/set, payload: '{"state":"ON"}'}
  - name: fridge
    tier: 3
    shed_below_runway_min: 30      # off-grid and less than 30 min of battery left
    off: {topic: shellies/fridge/relay/0/command, payload: "off"}
    on:  {topic: shellies/fridge/relay/0/command, payload: "on"}
gateway: 122238082763               # optional where there is one gateway
"""

MISTAKES = """\
loads:
  - name: dryer
    tier: 1
    shed_below_soc: 30
    off: {topic: cmnd/dryer/POWER, payload: OFF}
    on:  {topic: cmnd/dryer/+, payload: "ON"}
  - name: heat pump
    tier: 2
    off: {topic: a}
    colour: red
  - name: fridge
    tier: 3
    shed_below_soc: 40
    restore_above_soc: 30
    off: {topic: x, payload: "off"}
    on:  {topic: x, payload: "on"}
  - name: fridge
    tier: 12
    off: {topic: x, payload: {state: "OFF"}}
    on:  {topic: x, payload: "on"}
  - name: armed
    tier: 2
    off: {topic: x, payload: "off"}
    on:  {topic: x, payload: "on"}
"""


def plan_of(tmp_path: Path, text: str, gateways: int = 1, **settings: object) -> Plan | None:
    path = tmp_path / "loads.yaml"
    path.write_text(text, encoding="utf-8")
    values: dict[str, object] = {"envoy_host": "127.0.0.1", "loads_file": path, **settings}
    chosen = Settings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]
    hosts = [GatewaySettings(host=f"127.0.0.{n + 1}") for n in range(gateways)]
    return read_plan(chosen, hosts)


def test_the_issue_example_is_a_valid_plan(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, EXAMPLE, restore_after=90, restore_stagger=5)
    assert plan is not None
    assert [load.name for load in plan.loads] == ["dryer", "heat-pump", "fridge"]
    dryer, heat_pump, fridge = plan.loads
    assert (dryer.off.topic, dryer.off.payload, dryer.on.payload) == (
        "cmnd/dryer/POWER",
        "OFF",
        "ON",
    )
    assert dryer.rule.watts == 3000
    assert heat_pump.off.payload == '{"state":"OFF"}'
    assert (heat_pump.rule.shed_below_soc, heat_pump.rule.restore_above_soc) == (50, 60)
    assert fridge.rule.shed_below_runway == 30
    assert fridge.rule.restore_above_runway == 45  # 1.5 x when not given
    assert plan.gateway == "122238082763"  # YAML reads it as a number
    assert (plan.restore_after, plan.stagger, plan.dry_run) == (90, 5, False)


def test_without_loads_there_is_no_plan() -> None:
    settings = Settings(_env_file=None, envoy_host="h")  # type: ignore[call-arg]
    assert read_plan(settings, settings.gateway_list()) is None


def test_every_mistake_is_one_line_naming_the_load_and_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        plan_of(tmp_path, MISTAKES)
    lines = str(raised.value).splitlines()
    assert lines == [
        "LOADS_FILE: load #1 (dryer): off.payload: YAML reads ON, OFF, yes and no as true/false: "
        'quote it, e.g. "OFF"',
        "LOADS_FILE: load #1 (dryer): on.topic: an MQTT topic to publish to: no '+', '#', "
        "spaces around it",
        "LOADS_FILE: load #2 (heat pump): name: letters, digits, '-' and '_' only "
        "(it is a topic level)",
        "LOADS_FILE: load #2 (heat pump): off.payload: missing",
        "LOADS_FILE: load #2 (heat pump): on: missing",
        "LOADS_FILE: load #2 (heat pump): colour: unknown setting (a load has: name, tier, off, "
        "on, watts, shed_below_soc, restore_above_soc, shed_below_runway_min, "
        "restore_above_runway_min, min_off, state)",
        "LOADS_FILE: load #3 (fridge): restore_above_soc must be above shed_below_soc (40)",
        "LOADS_FILE: load #4 (fridge): name: another load is called 'fridge'",
        "LOADS_FILE: load #4 (fridge): tier: Input should be less than or equal to 9",
        "LOADS_FILE: load #5 (armed): name: 'armed' is taken by the shedding topics; "
        "choose another",
        "LOADS_FILE: load #5 (armed): tier 2: give shed_below_soc or shed_below_runway_min "
        "(tier 1 is the tier shed with the grid)",
    ]


def test_tier_rules_are_checked(tmp_path: Path) -> None:
    text = """\
loads:
  - {name: a, tier: 1, shed_below_soc: 30,
     off: {topic: x, payload: "0"}, on: {topic: x, payload: 1}}
  - {name: b, tier: 2, restore_above_runway_min: 9, shed_below_soc: 20,
     off: {topic: y, payload: "0"}, on: {topic: y, payload: "1"}}
"""
    with pytest.raises(ConfigError) as raised:
        plan_of(tmp_path, text)
    assert str(raised.value).splitlines() == [
        "LOADS_FILE: load #1 (a): tier 1 sheds the moment the grid fails: shed_below_* is for "
        "tiers 2 and up",
        "LOADS_FILE: load #2 (b): restore_above_runway_min without shed_below_runway_min",
    ]


def test_several_gateways_need_the_one_named(tmp_path: Path) -> None:
    text = EXAMPLE.replace("gateway: 122238082763", "")
    with pytest.raises(ConfigError, match=r"^LOADS_FILE: gateway: missing: 2 gateways"):
        plan_of(tmp_path, text, gateways=2)
    assert plan_of(tmp_path, EXAMPLE, gateways=2) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "LOADS_FILE: must hold `loads:`, a non-empty list of loads (see the README)"),
        ("loads: []\n", "LOADS_FILE: must hold `loads:`"),
        ("loads: [oops]\n", "LOADS_FILE: load #1: expected a mapping of settings"),
        ("loads: [\n", "LOADS_FILE: "),
        ("lods: []\n", "LOADS_FILE: must hold `loads:`"),
    ],
)
def test_a_file_that_is_no_list_of_loads_is_explained(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        plan_of(tmp_path, text)
    assert str(raised.value).startswith(message)


def test_unknown_top_level_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LOADS_FILE: gatway: unknown setting"):
        plan_of(tmp_path, EXAMPLE + "gatway: x\n")


def test_loads_inline_as_json_and_a_json_payload_object() -> None:
    loads = {
        "loads": [
            {
                "name": "pump",
                "tier": 1,
                "off": {"topic": "z2m/pump/set", "payload": {"state": "OFF"}, "qos": 0},
                "on": {"topic": "z2m/pump/set", "payload": {"state": "ON"}},
                "min_off": 300,
                "state": {"topic": "z2m/pump", "field": "state", "on": "ON", "off": "OFF"},
            }
        ]
    }
    settings = Settings(_env_file=None, envoy_host="h", loads=json.dumps(loads))  # type: ignore[call-arg]
    plan = read_plan(settings, settings.gateway_list())
    assert plan is not None
    (pump,) = plan.loads
    assert (pump.off.payload, pump.off.qos, pump.on.qos) == ('{"state":"OFF"}', 0, 1)
    assert pump.rule.min_off == 300
    assert pump.feedback == Feedback("z2m/pump", "ON", "OFF", "state")
    assert pump.feedback.reads(b'{"state":"ON","power":12}') is True
    assert pump.feedback.reads(b'{"state":"off"}') is False
    assert pump.feedback.reads(b"garbage") is None


def test_loads_and_loads_file_together_or_bad_json_are_refused(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, envoy_host="h", loads="{", loads_file=tmp_path / "x")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="LOADS and LOADS_FILE: set one of them"):
        read_plan(settings, settings.gateway_list())
    settings = Settings(_env_file=None, envoy_host="h", loads="{")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="LOADS: not valid JSON"):
        read_plan(settings, settings.gateway_list())
    settings = Settings(_env_file=None, envoy_host="h", loads_file=tmp_path / "x")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="LOADS_FILE: cannot read"):
        read_plan(settings, settings.gateway_list())


def test_cli_exits_2_with_one_line_per_mistake(tmp_path: Path) -> None:
    (tmp_path / "loads.yaml").write_text(MISTAKES, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "envoy2mqtt.cli", "run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "ENVOY_HOST": "127.0.0.1",
            "MQTT_HOST": "127.0.0.1",
            "LOADS_FILE": str(tmp_path / "loads.yaml"),
        },
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("envoy2mqtt: configuration error: LOADS_FILE: load #1 (dryer):")
    assert len(lines) == 11
    assert all(line.startswith("LOADS_FILE: load #") for line in lines[1:])


def test_the_plan_follows_the_gateway_it_names(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, EXAMPLE)
    assert plan is not None
    house = GatewaySettings(host="envoy.local", name="House")
    assert plan.watches(house, "122238082763")  # by the serial it reports
    assert not plan.watches(house, "999999999999")
    named = plan_of(tmp_path, EXAMPLE.replace("122238082763", "House"))
    assert named is not None
    assert named.watches(house, "999999999999")  # or by its name (or host) in the settings
    anyone = plan_of(tmp_path, EXAMPLE.replace("gateway: 122238082763", ""))
    assert anyone is not None
    assert anyone.watches(house, None)


def readme_examples() -> list[str]:
    """The YAML blocks of the README's "Load shedding" section, each as a whole LOADS_FILE."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Load shedding\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    return [block if block.startswith("loads:") else "loads:\n" + block for block in blocks]


def test_every_example_in_the_readme_is_a_valid_loads_file(tmp_path: Path) -> None:
    examples = readme_examples()
    assert len(examples) >= 5  # the first load, Tasmota, Shelly, Zigbee2MQTT, a dry contact
    for example in examples:
        plan = plan_of(tmp_path, example)
        assert plan is not None
        assert plan.loads
    assert any(
        load.feedback and load.feedback.field for e in examples for load in _loads(e, tmp_path)
    )


def _loads(example: str, tmp_path: Path) -> tuple[Load, ...]:
    plan = plan_of(tmp_path, example)
    return plan.loads if plan is not None else ()
