"""Names made from gateway-supplied text: safe for topic levels and unique ids."""

from __future__ import annotations

import re
from typing import Final

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize(text: str) -> str:
    """Make gateway-supplied text safe for a topic level or unique id: only [A-Za-z0-9_-]."""
    cleaned = _UNSAFE.sub("_", text.strip()).strip("_")
    return cleaned or "unknown"
