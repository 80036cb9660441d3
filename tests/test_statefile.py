"""The one atomic writer of STATE_DIR's files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from envoy2mqtt.statefile import write_atomically


def test_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old", encoding="utf-8")
    write_atomically(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_secret_has_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    write_atomically(path, "secret", mode=0o600, sync=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "\udcff")  # not encodable: fails after the temporary exists
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
