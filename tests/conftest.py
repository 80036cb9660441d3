"""Shared fixtures: a real Mosquitto broker and a unique topic prefix per test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from uuid import uuid4

import pytest

from tests.broker import Mosquitto, MosquittoFactory


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker of this test's own: free to kill, restart or reconfigure."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker shared by the whole run; use `unique_prefix` topics and never restart it."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-session")) as broker:
        yield broker


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Start brokers with options (users=, tls=, persistence=, ...); all stop after the test."""
    brokers: list[Mosquitto] = []

    def make(
        *,
        users: Mapping[str, str] | None = None,
        tls: bool = False,
        require_client_cert: bool = False,
        persistence: bool = False,
        extra_config: str = "",
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path / f"mosquitto-{len(brokers)}",
            users=users,
            tls=tls,
            require_client_cert=require_client_cert,
            persistence=persistence,
            extra_config=extra_config,
        )
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def unique_prefix() -> str:
    """A base topic no other test uses, so tests can share a broker."""
    return f"e2m-test-{uuid4().hex[:8]}"
