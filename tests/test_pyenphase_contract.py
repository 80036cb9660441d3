"""pyenphase as the gateway adapter relies on it: these fail loudly, saying what changed.

`envoy2mqtt/gateway/adapter.py` mirrors `Envoy.update()` over pyenphase's private names and
parses single endpoints into pyenphase's models itself; this is why pyproject pins pyenphase
to a minor version. Every assumption the adapter makes is checked here against the installed
pyenphase, so an upgrade that moves one fails here, naming it, instead of misreading gateways.
The last test keeps those private names inside the adapter.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import aiohttp
import pyenphase
import pytest
from pyenphase import Envoy
from pyenphase.auth import EnvoyAuth, EnvoyLegacyAuth, EnvoyTokenAuth
from pyenphase.const import ENDPOINT_URL_METERS
from pyenphase.envoy import get_updaters
from pyenphase.models.collar import EnvoyCollar
from pyenphase.models.enpower import EnvoyEnpower
from pyenphase.models.envoy import EnvoyData
from pyenphase.updaters.base import EnvoyUpdater

import envoy2mqtt
from envoy2mqtt.auth.tokens import FixedToken
from envoy2mqtt.gateway import adapter
from envoy2mqtt.gateway.client import GatewayClient
from envoy2mqtt.gateway.legacy import GatedLegacyAuth
from envoy2mqtt.sim import SimulatedGateway, list_captures, load_capture
from tests.harness import oracle

UNREADABLE = "3.7.0"  # only the HTML /production page: pyenphase cannot read it at all
CAPTURES = [name for name in list_captures() if name != UNREADABLE]
# the slow endpoints only the inverter lane may read
INVERTER_ENDPOINTS = {"/api/v1/production/inverters", "/ivp/pdm/device_data", "/inventory.json"}
# what `adapter.run_updaters` and `hand_over` do in place of `Envoy.update()`
UPDATE_TOUCHES = {
    "_endpoint_cache",
    "_supported_features",
    "probe",
    "_updaters",
    "_validate_update",
    "data",
}
# EnvoyData fields the adapter and the lane overlay read or replace
DATA_FIELDS = {
    "raw",
    "inverters",
    "acb_inventory",
    "ctmeters",
    "ctmeters_phases",
    "encharge_aggregate",
    "encharge_power",
    "battery_aggregate",
    "enpower",
    "collar",
    "tariff",
    "dry_contact_settings",
    "dry_contact_status",
}
# what gateway/client.py and the adapter use of pyenphase's public Envoy
ENVOY_PUBLIC = (
    "setup",
    "authenticate",
    "probe",
    "request",
    "set_retry_policy",
    "current_client",
    "firmware",
    "serial_number",
    "part_number",
    "envoy_model",
    "is_metered",
    "phase_count",
    "phase_mode",
    "ct_meter_list",
)
PACKAGE = Path(envoy2mqtt.__file__).parent
ADAPTER = PACKAGE / "gateway" / "adapter.py"


def self_attributes(function: Any) -> set[str]:
    """Attribute names `function` uses on `self` (its source, parsed)."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(function)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# -- the private names and what update() does with them ------------------------------------


def test_update_still_does_only_what_the_adapter_mirrors() -> None:
    touched = self_attributes(Envoy.update)
    assert touched == UPDATE_TOUCHES, (
        f"pyenphase's Envoy.update() changed: it now uses self.{sorted(touched - UPDATE_TOUCHES)}"
        f" and no longer self.{sorted(UPDATE_TOUCHES - touched)}; mirror that in "
        "adapter.run_updaters/hand_over"
    )
    source = inspect.getsource(Envoy.update)
    for step in (
        "self._endpoint_cache.clear()",
        "for updater in self._updaters",
        "await updater.update(data)",
        "self._validate_update(data)",
        "self.data = data",
    ):
        assert step in source, f"Envoy.update() no longer does `{step}`: see adapter.run_updaters"


async def test_the_private_names_have_the_shapes_the_adapter_uses() -> None:
    async with aiohttp.ClientSession() as session:
        envoy = Envoy("127.0.0.1", client=session)
        assert isinstance(envoy._updaters, list), "Envoy._updaters is no longer a list"
        assert isinstance(envoy._endpoint_cache, dict), "Envoy._endpoint_cache is not a dict"
        assert envoy.data is None, "Envoy.data no longer starts as None"
    assert parameters(Envoy._validate_update) == ["self", "data"], (
        f"Envoy._validate_update{inspect.signature(Envoy._validate_update)} changed"
    )
    assert parameters(EnvoyUpdater.update) == ["self", "envoy_data"], "EnvoyUpdater.update changed"
    assert inspect.iscoroutinefunction(EnvoyUpdater.update), "EnvoyUpdater.update is not async"


async def test_the_firmware_probe_can_be_made_to_try_once() -> None:
    from pyenphase.firmware import EnvoyFirmware

    envoy = Envoy("127.0.0.1")
    assert isinstance(getattr(envoy, "_firmware", None), EnvoyFirmware), (
        "pyenphase's Envoy no longer keeps its firmware probe in `_firmware`"
    )
    assert hasattr(EnvoyFirmware._get_info, "retry_with"), (
        "pyenphase's EnvoyFirmware._get_info is no longer a tenacity-retried method"
    )
    adapter.probe_once(envoy, envoy._client, "127.0.0.1")
    stop = getattr(envoy._firmware._get_info, "retry").stop  # noqa: B009 - tenacity's attribute
    assert getattr(stop, "max_attempt_number", None) == 1
    await envoy.close()


def test_the_public_names_the_client_uses_exist() -> None:
    missing = sorted(name for name in ENVOY_PUBLIC if not hasattr(Envoy, name))
    assert not missing, f"pyenphase's Envoy no longer has {missing}: see gateway/client.py"
    retry = set(parameters(Envoy.set_retry_policy))
    assert {"max_attempts", "max_delay"} <= retry, f"Envoy.set_retry_policy{retry} changed"
    login = set(parameters(Envoy.authenticate))
    assert {"username", "password"} <= login, f"Envoy.authenticate{login} changed"


def test_the_write_methods_still_start_from_envoy_data() -> None:
    for write in (
        Envoy.update_dry_contact,
        Envoy._verify_tariff_storage_or_raise,  # set_storage_mode, set_reserve_soc, ...
        Envoy._known_acb_serials,  # set_acb_sleep
    ):
        assert "data" in self_attributes(write), f"{write.__name__} no longer reads self.data"


def test_the_inverter_updaters_exist_and_are_registered() -> None:
    registered = get_updaters()
    for updater in adapter.INVERTER_UPDATERS:
        assert issubclass(updater, EnvoyUpdater), f"{updater.__name__} is no EnvoyUpdater"
        assert updater in registered, f"pyenphase no longer registers {updater.__name__}"


def test_envoy_data_has_the_fields_we_read_and_replace() -> None:
    fields = {field.name for field in dataclasses.fields(EnvoyData)}
    assert fields >= DATA_FIELDS, f"EnvoyData lost {sorted(DATA_FIELDS - fields)}"
    assert not EnvoyData.__dataclass_params__.frozen, "EnvoyData is frozen: updaters fill it"  # type: ignore[attr-defined]
    assert EnvoyData().raw == {}, "EnvoyData() no longer starts empty"
    assert "mains_oper_state" in {f.name for f in dataclasses.fields(EnvoyEnpower)}
    assert "grid_state" in {f.name for f in dataclasses.fields(EnvoyCollar)}


def test_the_auth_wrapper_implements_every_member_pyenphase_asks_for() -> None:
    missing = sorted(getattr(GatedLegacyAuth, "__abstractmethods__", ()))
    assert not inspect.isabstract(GatedLegacyAuth), f"EnvoyAuth now also asks for {missing}"
    ours = {name for name in vars(GatedLegacyAuth) if not name.startswith("_")}
    theirs = {name for name in vars(EnvoyAuth) if not name.startswith("_")}
    assert theirs <= ours, f"EnvoyAuth has members the wrapper does not pass on: {theirs - ours}"
    assert {"auth", "cookies", "headers"} <= set(vars(EnvoyLegacyAuth))
    assert {"envoy_serial", "token"} <= set(parameters(EnvoyTokenAuth.__init__))


# -- the captures, through the adapter and through pyenphase's own updaters ----------------


def test_the_models_accept_every_capture() -> None:
    """The adapter's parsers, fed each capture's JSON, give pyenphase's models."""
    parsed = 0
    for name in CAPTURES:
        documents = {
            key: r.document
            for key, r in load_capture(name).recordings.items()
            if r.is_json and r.status == 200
        }
        status = adapter.meter_status(
            EnvoyData(raw={ENDPOINT_URL_METERS: documents.get("ivp_meters")})
        )
        if "ivp_meters_readings" in documents and status:
            meters, _ = adapter.meter_readings(documents["ivp_meters_readings"], status, 3)
            enabled = {
                str(ct["measurementType"]) for ct in status.values() if ct["state"] == "enabled"
            }
            assert set(meters) <= enabled, name
            parsed += len(meters)
        if "ivp_ensemble_secctrl" in documents and "ivp_ensemble_power" in documents:
            power = documents["ivp_ensemble_power"]
            battery = adapter.battery(documents["ivp_ensemble_secctrl"], power, combined=True)
            serials = {str(unit["serial_num"]) for unit in power.get("devices:", [])}
            assert set(battery.units) == serials, name
            parsed += len(serials)
        for device in (adapter.ENPOWER, adapter.COLLAR):
            state = adapter.ensemble_state(documents.get("ivp_ensemble_inventory"), device)
            parsed += state is not None
    assert parsed >= 40, f"only {parsed} CTs, batteries and relays parsed: captures missing?"


@pytest.fixture
def _never_contact_enphase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EnvoyTokenAuth, "JSON_LOGIN_URL", "http://127.0.0.1:9/login.json?")
    monkeypatch.setattr(EnvoyTokenAuth, "TOKEN_URL", "http://127.0.0.1:9/tokens")


@pytest.mark.usefixtures("_never_contact_enphase")
@pytest.mark.parametrize("capture", CAPTURES)
async def test_lanes_read_what_pyenphase_reads_and_split_the_endpoints(capture: str) -> None:
    """Per capture: the probed updaters, each lane's endpoints, what the lanes parse."""
    async with SimulatedGateway(capture=capture) as gateway:
        expected = await oracle(gateway)  # pyenphase's own update()
        tokens = FixedToken(gateway.make_token()) if gateway.uses_tls else None
        username = None if gateway.uses_tls else "envoy"
        async with GatewayClient(gateway.host, tokens=tokens, username=username) as client:
            await client.connect()
            probed = {type(updater) for updater in client.envoy._updaters}
            gateway.stats.reset()
            data = await client.read_normal()
            normal = {r.path for r in gateway.stats.log}
            gateway.stats.reset()
            inverters = await client.read_inverters()
            slow = {r.path for r in gateway.stats.log}
            fast = await fast_lanes(client, data)
    assert probed <= set(get_updaters()), f"{capture}: unregistered updaters {probed}"
    assert not normal & INVERTER_ENDPOINTS, (
        f"{capture}: normal lane read {normal & INVERTER_ENDPOINTS}"
    )
    assert slow <= INVERTER_ENDPOINTS, f"{capture}: inverter lane read {slow - INVERTER_ENDPOINTS}"
    assert set(inverters.inverters) == set(expected.inverters), (
        f"{capture}: pyenphase reads inverters the inverter lane does not (a new updater?)"
    )
    assert fast == pyenphase_view(data), f"{capture}: the fast lanes parse unlike pyenphase"


async def fast_lanes(client: GatewayClient, data: EnvoyData) -> dict[str, object]:
    """What the fast and battery lanes read, where the normal lane found their devices."""
    out: dict[str, object] = {}
    if any(meter is not None for meter in data.ctmeters.values()):
        out["ctmeters"], out["ctmeters_phases"] = await client.read_meters()
    if data.enpower is not None:
        out["grid"] = await client.read_grid()
    if data.collar is not None:
        out["collar"] = await client.read_collar()
    if data.encharge_aggregate is not None:
        battery = await client.read_battery(combined=data.battery_aggregate is not None)
        out["battery"] = (battery.aggregate, battery.units, battery.combined)
    return out


def pyenphase_view(data: EnvoyData) -> dict[str, object]:
    """The same parts as `fast_lanes`, as pyenphase's updaters parsed them."""
    out: dict[str, object] = {}
    if any(meter is not None for meter in data.ctmeters.values()):
        out["ctmeters"], out["ctmeters_phases"] = data.ctmeters, data.ctmeters_phases
    if data.enpower is not None:
        out["grid"] = data.enpower.mains_oper_state
    if data.collar is not None:
        out["collar"] = data.collar.grid_state
    if data.encharge_aggregate is not None:
        out["battery"] = (data.encharge_aggregate, data.encharge_power, data.battery_aggregate)
    return out


# -- nothing outside the adapter touches pyenphase's insides ------------------------------------


def pyenphase_private_names() -> set[str]:
    """Every `_name` pyenphase defines or uses (attributes, functions, module globals)."""
    names = {"_updaters", "_endpoint_cache", "_validate_update"}
    for path in Path(pyenphase.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(tree: ast.Module, private: set[str]) -> list[str]:
    """Uses of pyenphase's private names: `x._name` (not on our own `self`), imports of them,
    and `self._name` in our subclasses of pyenphase's classes."""
    found: list[str] = []
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyenphase")
        for alias in node.names
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyenphase"):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr in private:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not on_self:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ClassDef) and any(
            isinstance(base, ast.Name) and base.id in imported for base in node.bases
        ):
            found += [
                f"line {n.lineno}: {ast.unparse(n)} in {node.name}"
                for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and n.attr in private
            ]
    return found


def test_nothing_outside_the_adapter_touches_pyenphase_private_names() -> None:
    private = pyenphase_private_names()
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ADAPTER
        and (uses := private_uses(ast.parse(path.read_text(encoding="utf-8")), private))
    }
    assert offenders == {}, f"pyenphase's private names belong in gateway/adapter.py: {offenders}"
    assert private_uses(ast.parse(ADAPTER.read_text(encoding="utf-8")), private), (
        "the check no longer sees the adapter's own private accesses"
    )
