"""A simulated Envoy / IQ Gateway and Enlighten cloud, replaying real captures on 127.0.0.1."""

from .capture import Capture, list_captures, load_capture
from .credentials import SIM_TOKEN_KEY, make_token
from .enlighten import SimulatedEnlighten
from .faults import Fault, FaultPlan
from .gateway import SimulatedGateway
from .stats import GatewayStats, RequestRecord

__all__ = [
    "SIM_TOKEN_KEY",
    "Capture",
    "Fault",
    "FaultPlan",
    "GatewayStats",
    "RequestRecord",
    "SimulatedEnlighten",
    "SimulatedGateway",
    "list_captures",
    "load_capture",
    "make_token",
]
