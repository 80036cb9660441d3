"""Why there is no usable token, each with a message that tells the user what to do."""

from __future__ import annotations

from typing import ClassVar, Final

TOKEN_PAGE: Final = "https://entrez.enphaseenergy.com"  # noqa: S105 - a URL


class TokenError(Exception):
    """No usable token; the message tells the user what to do."""

    permanent: ClassVar[bool] = False  # retrying without a configuration change cannot help


class CloudUnreachable(TokenError):
    """Enphase's cloud did not answer, or answered that it is unavailable."""


class LoginRejected(TokenError):
    """Enlighten refused the username or password."""

    permanent = True


class MfaRequired(TokenError):
    """The account uses multi-factor login, which a bridge cannot answer."""

    permanent = True


class UnknownSerial(TokenError):
    """The token service does not know the gateway's serial for this account."""

    permanent = True


class SessionRefused(TokenError):
    """The token service refused a fresh Enlighten session ("You need to sign in first")."""


class TokenExpired(TokenError):
    """The fixed ENVOY_TOKEN has expired."""

    permanent = True
