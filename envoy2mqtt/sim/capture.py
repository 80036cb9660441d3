"""Recorded gateway responses: one capture folder loaded into memory."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from xml.etree import ElementTree

CAPTURES_DIR: Final = Path(__file__).parent / "captures"

_LOG_SUFFIX: Final = "_log.json"
_NOT_ENDPOINTS: Final = frozenset({"README.md", "LICENSE.pyenphase", "_readme"})
# Endpoints whose file name is not the path with "/" turned into "_".
_ALIASES: Final = {"/inventory.json": "inventory"}


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded reply: status, content type, raw body and its parsed JSON (if any)."""

    status: int
    content_type: str
    body: bytes
    document: Any = None

    @property
    def is_json(self) -> bool:
        """Whether the body parsed as JSON."""
        return self.document is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class Capture:
    """A whole installation: identity from /info plus every recorded endpoint."""

    name: str
    path: Path
    serial: str
    part_number: str
    firmware: str
    metered: bool
    recordings: Mapping[str, Recorded]

    @property
    def version(self) -> tuple[int, ...]:
        """Firmware as a comparable tuple, e.g. (7, 6, 175)."""
        return tuple(int(part) for part in re.findall(r"\d+", self.firmware))

    @property
    def uses_tls(self) -> bool:
        """Firmware 7 and later: HTTPS with JWT bearer tokens."""
        return self.version >= (7,)

    def recorded(self, path: str) -> Recorded | None:
        """The recording that answers an endpoint path (query string ignored)."""
        return self.recordings.get(file_name(path))


def file_name(path: str) -> str:
    """Map an endpoint path to its capture file name (`/ivp/meters` -> `ivp_meters`)."""
    path = path.split("?", 1)[0]
    if path in _ALIASES:
        return _ALIASES[path]
    return path.lstrip("/").replace("/", "_")


def list_captures() -> list[str]:
    """Names of the bundled capture folders, sorted."""
    return sorted(p.name for p in CAPTURES_DIR.iterdir() if (p / "info").is_file())


def load_capture(capture: str | Path) -> Capture:
    """Load a capture folder by bundled name or by path."""
    folder = Path(capture)
    if not folder.is_dir():
        folder = CAPTURES_DIR / str(capture)
    if not (folder / "info").is_file():
        raise FileNotFoundError(f"no capture with an info file at {folder}")
    recordings = {
        entry.name: _load_recording(entry)
        for entry in sorted(folder.iterdir())
        if entry.is_file()
        and not entry.name.endswith(_LOG_SUFFIX)
        and entry.name not in _NOT_ENDPOINTS
    }
    info = recordings["info"].body
    # The captures are bundled, trusted files, not network input.
    root = ElementTree.fromstring(info)  # noqa: S314
    device = root.find("device")
    if device is None:
        raise ValueError(f"{folder}/info has no <device>")
    software = device.findtext("software", default="")
    return Capture(
        name=folder.name,
        path=folder,
        serial=device.findtext("sn", default=""),
        part_number=device.findtext("pn", default=""),
        # The first letter is a build flavour (R, D, M, ...), as pyenphase also assumes.
        firmware=software[1:] if software[:1].isalpha() else software,
        metered=device.findtext("imeter", default="") == "true",
        recordings=recordings,
    )


def _load_recording(entry: Path) -> Recorded:
    body = entry.read_bytes()
    document = _parse_json(body)
    status, content_type = 200, ""
    log = entry.with_name(entry.name + _LOG_SUFFIX)
    if log.is_file():
        status, content_type = _read_log(log)
    if isinstance(document, dict) and document.get("status") == 401:
        status = 401
    elif entry.name == "ivp_meters" and document is None:
        # An HTML or plain-text meters reply was recorded from a gateway that said 401.
        status = 401
    return Recorded(
        status=status,
        content_type=content_type or _guess_content_type(body, document),
        body=body,
        document=document,
    )


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _read_log(log: Path) -> tuple[int, str]:
    try:
        record = json.loads(log.read_bytes())
    except ValueError:
        return 200, ""
    headers = {str(k).lower(): str(v) for k, v in record.get("headers", {}).items()}
    return int(record.get("code", 200)), headers.get("content-type", "")


def _guess_content_type(body: bytes, document: Any) -> str:
    if document is not None:
        return "application/json"
    head = body.lstrip()[:5].lower()
    if head.startswith(b"<?xml"):
        return "text/xml"
    if head.startswith(b"<"):
        return "text/html"
    return "text/plain"
