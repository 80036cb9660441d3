"""Server side of HTTP Digest authentication (RFC 2617, MD5, qop=auth)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

REALM: Final = "enphaseenergy.com"
_MAX_NONCES: Final = 1024
_PAIRS: Final = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class DigestAuthority:
    """Issues nonces and checks Digest `Authorization` headers for a set of users."""

    def __init__(self, users: Mapping[str, str], realm: str = REALM) -> None:
        """Accept the given user -> password pairs."""
        self._users = dict(users)
        self._realm = realm
        self._nonces: OrderedDict[str, None] = OrderedDict()

    def challenge(self) -> str:
        """A fresh `WWW-Authenticate` value, shaped like the real gateway's."""
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = None
        while len(self._nonces) > _MAX_NONCES:
            self._nonces.popitem(last=False)
        return f'Digest qop="auth", realm="{self._realm}", nonce="{nonce}"'

    def verify(self, header: str | None, method: str, uri: str) -> str | None:
        """The authenticated user name, or None if the header does not check out."""
        if not header or not header[:7].lower().startswith("digest"):
            return None
        fields: dict[str, str] = {
            match[1].lower(): match[2] if match[2] is not None else match[3]
            for match in _PAIRS.finditer(header[7:])
        }
        user = fields.get("username", "")
        password = self._users.get(user)
        nonce = fields.get("nonce", "")
        if password is None or nonce not in self._nonces:
            return None
        if fields.get("realm") != self._realm or fields.get("uri") != uri:
            return None
        if fields.get("algorithm", "MD5").upper() != "MD5":
            return None
        ha1 = _md5(f"{user}:{self._realm}:{password}")
        ha2 = _md5(f"{method.upper()}:{uri}")
        qop = fields.get("qop")
        if qop == "auth":
            nc, cnonce = fields.get("nc", ""), fields.get("cnonce", "")
            expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        elif qop is None:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        else:
            return None
        if not hmac.compare_digest(expected, fields.get("response", "")):
            return None
        return user
