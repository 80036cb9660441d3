"""What can go wrong at the gateway, in our words: the rest of the bridge sees only these."""

from __future__ import annotations


class GatewayError(Exception):
    """The gateway could not be read; the message says why in plain words."""


class GatewayUnavailable(GatewayError):
    """The gateway did not answer, or answered garbage."""


class GatewayAuthError(GatewayError):
    """The gateway refused our credentials."""


class CertificateChanged(GatewayError):
    """The gateway's certificate is not the pinned one (PIN_GATEWAY_CERTIFICATE)."""


class EndpointMissing(GatewayUnavailable):
    """The gateway answered 404: this firmware does not have the endpoint."""
