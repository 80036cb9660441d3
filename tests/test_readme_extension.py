"""The README's Development section, as a newcomer would use it.

Its example extension is taken from the README as printed, added to the app's features the way
its one line in `app.py` adds it, and run against the simulated gateway and a real Mosquitto:
it must publish on every gateway. Every relative link of the README and the docs pages leads
to a file, and every `#anchor` of the README to one of its headings.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Final

from envoy2mqtt.app import App
from envoy2mqtt.features.extension import Extension, Hub
from envoy2mqtt.sim import SimulatedGateway
from tests.broker import Mosquitto, collect
from tests.harness import bridge_settings, running

ROOT: Final = Path(__file__).resolve().parents[1]
README: Final = ROOT / "README.md"
PYTHON_BLOCK: Final = re.compile(r"```python\n(.*?)```", re.DOTALL)
ANY_BLOCK: Final = re.compile(r"```\w*\n(.*?)```", re.DOTALL)
LINK: Final = re.compile(r"\]\(([^)\s]+)\)")
# being written on another branch (the controls' documentation); linked from the README already
ELSEWHERE: Final = frozenset({ROOT / "docs" / "controls.md"})


def development() -> str:
    """The README's Development section."""
    return README.read_text(encoding="utf-8").split("\n## Development\n", 1)[1]


def example() -> type[Extension]:
    """The example extension, as the README prints it."""
    blocks = PYTHON_BLOCK.findall(development())
    (code,) = [block for block in blocks if "class " in block]
    module = types.ModuleType("readme_example")
    exec(compile(code, "README.md", "exec"), module.__dict__)  # our own README
    (found,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Extension) and v is not Extension
    ]
    return found


def test_the_readme_says_the_one_line_for_app_py() -> None:
    (block,) = [b for b in ANY_BLOCK.findall(development()) if "self.features" in b]
    new = f"{example().__name__}(hub),"
    assert new in [line.strip() for line in block.splitlines()]
    app = (ROOT / "envoy2mqtt" / "app.py").read_text()
    around = [line for line in block.splitlines() if line.strip() not in (new, "...")]
    assert all(line in app for line in around), around  # where it goes, as app.py has it


async def test_the_example_extension_publishes_on_every_gateway(
    mosquitto_session: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    feature = example()
    async with SimulatedGateway(capture="7.6.175_with_cts") as gateway:
        app = App(bridge_settings(gateway, mosquitto_session.port, unique_prefix, tmp_path))
        hub = Hub(
            settings=app.settings,
            link=app.link,
            topics=app.topics,
            events=app.events,
            bridges=app.bridges,
            tasks=app.tasks,
        )
        app.features.append(feature(hub))  # what its line in app.py's list does
        topic = f"{unique_prefix}/{gateway.serial}/self_sufficiency"
        async with running(app):
            seen = await collect(
                "127.0.0.1", mosquitto_session.port, topic, until=lambda s: topic in s, timeout=20
            )
    assert topic in seen
    assert 0 <= int(seen[topic]) <= 100


def test_every_relative_link_leads_somewhere() -> None:
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() and file not in ELSEWHERE:
                broken.append(f"{page.name}: {target}")
            elif anchor and file == README and anchor not in headings:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []
