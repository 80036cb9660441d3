"""Misbehaviours the simulated gateway can be switched into at runtime."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

HTML_ERROR_PAGE: Final = (
    b"<html><head><title>Envoy</title></head><body>"
    b"<h1>Service temporarily unavailable</h1><p>Please try again later.</p>"
    b"</body></html>"
)
UNAUTHORIZED_PAGE: Final = (
    b"<html>\n<head><title>401 Authorization Required</title></head>\n"
    b"<body>\n<center><h1>401 Authorization Required</h1></center>\n</body>\n</html>\n"
)


class Fault(StrEnum):
    """How the gateway misbehaves; `NONE` is normal service."""

    NONE = "none"
    TIMEOUT = "timeout"  # accept the request, never answer until the fault is cleared
    HTTP_500 = "http_500"
    HTML = "html"  # 200 with an HTML error page where JSON was expected
    TRUNCATED_JSON = "truncated_json"
    EMPTY = "empty"  # 200 with an empty body
    UNAUTHORIZED = "unauthorized"  # 401 whatever the credentials (never on /info)
    SLOW = "slow"  # answer normally after `delay` seconds
    DOWN = "down"  # stop listening: connections are refused


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultPlan:
    """A fault, the endpoint paths it hits (None = all) and, for SLOW, the delay."""

    fault: Fault = Fault.NONE
    paths: frozenset[str] | None = None
    delay: float = 5.0

    def applies_to(self, path: str) -> bool:
        """Whether a request for `path` (no query string) is affected."""
        if self.fault is Fault.NONE:
            return False
        if self.fault is Fault.UNAUTHORIZED and path == "/info":
            return False
        return self.paths is None or path in self.paths
