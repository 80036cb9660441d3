"""The package is laid out as the data path, and imports flow one way through it.

gateway -> polling -> snapshot -> catalog -> changes -> MQTT, and the features beside it:
the pure core and the catalog import neither aiohttp nor aiomqtt, only `mqtt.link` imports
aiomqtt, only `gateway/` imports pyenphase's client, and no object has callbacks or
collaborators set on it after it was built (features subscribe to events instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "envoy2mqtt"

# stage -> the envoy2mqtt stages it may import (besides itself); None: any
MAY_IMPORT: dict[str, set[str] | None] = {
    "core": set(),
    "catalog": {"core"},
    "auth": {"core", "settings", "statefile"},
    "gateway": {"core", "auth", "settings", "statefile"},
    "mqtt": {"core", "catalog", "settings"},
    "polling": {"core", "catalog", "auth", "gateway", "mqtt", "settings", "statefile"},
    "features": {"core", "mqtt", "polling", "settings", "healthcheck", "__version__"},
    "shedding": {"core", "catalog", "mqtt", "settings", "polling", "features"},
    "control": {"core", "catalog", "auth", "gateway", "mqtt", "settings", "polling", "features"},
    "sim": set(),
    "settings": set(),
    # the one atomic writer of STATE_DIR's files: standard library only, so every stage that
    # keeps a file (tokens, pins, battery counters, health) can import it; the pure core and
    # catalog keep no files
    "statefile": set(),
}
# entry points inside a stage that drive another stage (imported lazily, at run time)
ENTRY_POINTS: dict[str, set[str]] = {}
# foreign packages a stage must not import
MUST_NOT_IMPORT: dict[str, set[str]] = {
    "core": {"aiohttp", "aiomqtt", "paho"},
    "catalog": {"aiohttp", "aiomqtt", "paho"},
    "auth": {"aiomqtt", "paho", "pyenphase"},
    "gateway": {"aiomqtt", "paho"},
    "mqtt": {"aiohttp", "pyenphase"},
    "control": {"aiohttp", "aiomqtt", "paho"},  # writes go through gateway/, commands the link
    "shedding": {"aiohttp", "aiomqtt", "paho"},  # commands go through the link
    "features": {"aiohttp", "aiomqtt", "paho", "pyenphase"},
    "polling": {"aiomqtt", "paho"},  # the gateway edge is gateway/'s, the broker the link's
}
# attributes that hold a collaborator or a callback: never set on another object after it
# was built (`bridge.controller = ...`, `publisher.on_events = ...`): subscribe to events
COLLABORATORS = {"controller", "publisher", "link", "client", "session", "lanes", "gate"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "captures" not in p.parts)


def stage_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported(path: Path) -> set[str]:
    """Every absolute module name this file imports (at any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    stage = stage_of(path)
    allowed = MAY_IMPORT.get(stage)
    names = imported(path)
    if allowed is not None:
        ours = {n.split(".")[1] for n in names if n.startswith("envoy2mqtt.")}
        extra = ENTRY_POINTS.get(str(path.relative_to(PACKAGE)), set())
        wrong = ours - allowed - extra - {stage, "__version__"}
        assert not wrong, f"{path.name} ({stage}) imports {sorted(wrong)}"
    banned = {n for n in names if n.split(".")[0] in MUST_NOT_IMPORT.get(stage, set())}
    assert not banned, f"{path.name} ({stage}) imports {sorted(banned)}"


def test_only_the_link_and_its_client_import_aiomqtt() -> None:
    users = {
        str(p.relative_to(PACKAGE))
        for p in modules()
        if any(n.split(".")[0] in {"aiomqtt", "paho"} for n in imported(p))
    }
    # the demo waits for its embedded broker with a plain client: not part of the service
    assert users == {"mqtt/link.py", "mqtt/client.py", "demo.py"}


def test_only_the_gateway_stage_imports_pyenphase_client() -> None:
    client_names = {"pyenphase", "pyenphase.Envoy", "pyenphase.envoy", "pyenphase.auth"}
    users = {
        stage_of(p) for p in modules() if imported(p) & client_names or _imports_envoy_class(p)
    }
    assert users <= {"gateway"}, users


def _imports_envoy_class(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in {"pyenphase", "pyenphase.envoy"}:
            return True
    return False


def product() -> list[Path]:
    """The service's modules (the simulator models a gateway: its `controller` is data)."""
    return [p for p in modules() if stage_of(p) != "sim"]


@pytest.mark.parametrize("path", product(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_sets_callbacks_or_collaborators_on_another_object(path: Path) -> None:
    wrong = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for one in target.elts if isinstance(target, ast.Tuple) else [target]:
                if not isinstance(one, ast.Attribute):
                    continue
                own = isinstance(one.value, ast.Name) and one.value.id in {"self", "cls"}
                if not own and (one.attr.startswith("on_") or one.attr in COLLABORATORS):
                    wrong.append(f"line {one.lineno}: {ast.unparse(one)} = ...")
    assert not wrong, f"{path.name} sets another object's callbacks/collaborators: {wrong}"


def test_every_stage_says_what_it_is_and_may_import() -> None:
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc, f"{folder.name}/__init__.py has no docstring"
        assert "import" in doc.lower(), f"{folder.name}/__init__.py does not say what it imports"


def test_no_grab_bag_modules() -> None:
    names = {p.stem for p in modules()}
    assert not names & {"utils", "helpers", "common", "misc"}
