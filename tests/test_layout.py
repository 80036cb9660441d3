"""The package is laid out as the data path, and imports flow one way through it.

gateway -> snapshot -> catalog -> changes -> MQTT: the pure core and the catalog import
neither aiohttp nor aiomqtt, only `mqtt.link` imports aiomqtt, only `gateway/` imports
pyenphase's client, and no module grows past what one person holds in their head.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "envoy2mqtt"
MAX_LINES = 300

# stage -> the envoy2mqtt stages it may import (besides itself); None: any
MAY_IMPORT: dict[str, set[str] | None] = {
    "core": set(),
    "catalog": {"core"},
    "auth": {"core", "settings"},
    "gateway": {"core", "auth", "settings"},
    "mqtt": {"core", "catalog", "settings"},
    "shedding": {"core", "catalog", "mqtt", "settings", "clock"},
    # control/wiring.py attaches controllers to the bridge and its lanes
    "control": {"core", "catalog", "gateway", "mqtt", "settings", "clock", "bridge", "lanes"},
    "sim": set(),
    "settings": set(),
}
# entry points inside a stage that drive another stage (imported lazily, at run time)
ENTRY_POINTS: dict[str, set[str]] = {"auth/command.py": {"gateway"}}  # `envoy2mqtt token`
# foreign packages a stage must not import
MUST_NOT_IMPORT: dict[str, set[str]] = {
    "core": {"aiohttp", "aiomqtt", "paho"},
    "catalog": {"aiohttp", "aiomqtt", "paho"},
    "auth": {"aiomqtt", "paho", "pyenphase"},
    "gateway": {"aiomqtt", "paho"},
    "mqtt": {"aiohttp", "pyenphase"},
    "control": {"aiohttp", "aiomqtt", "paho"},  # writes go through gateway/, commands the link
    "shedding": {"aiohttp", "aiomqtt", "paho"},  # commands go through the link
}


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


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_300_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_every_stage_says_what_it_is_and_may_import() -> None:
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc, f"{folder.name}/__init__.py has no docstring"
        assert "import" in doc.lower(), f"{folder.name}/__init__.py does not say what it imports"


def test_no_grab_bag_modules() -> None:
    names = {p.stem for p in modules()}
    assert not names & {"utils", "helpers", "common", "misc"}
