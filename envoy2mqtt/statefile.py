"""Files the bridge keeps in STATE_DIR (tokens, pins, battery counters, health), written atomically.

A reader sees the old file or the new one, never half of either: the text goes to a temporary
file beside the target, which then replaces it. Standard library only; any stage with I/O may
import this (see tests/test_layout.py).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int | None = None, sync: bool = True) -> None:
    """Replace `path` with `text` (UTF-8) atomically; raises OSError if that fails.

    `mode`: the file's permissions from the first byte on, whatever the umask (0o600 for a
    secret); None leaves them to the umask. `sync`: flush to disk before the rename, so a power
    cut leaves the old file or the new one (the health file, rewritten every few seconds and
    worthless after a restart, skips it).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # O_EXCL: a fresh file, so a secret's mode holds from its first byte on
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if mode is not None:
                os.fchmod(file.fileno(), mode)
            file.write(text)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
