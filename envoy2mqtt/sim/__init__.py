"""A simulated Envoy / IQ Gateway and Enlighten cloud, replaying real captures on 127.0.0.1.

Used by the demo, the tests and the benchmarks; it keeps the gateway's own arithmetic on
every drifted reading. May import: the standard library, aiohttp, pyjwt, cryptography;
nothing of the bridge, so the bridge is always tested against a peer it does not share code
with.
"""

from .capture import Capture, list_captures, load_capture
from .credentials import SIM_TOKEN_KEY, make_token
from .enlighten import SimulatedEnlighten
from .faults import Fault, FaultPlan
from .field import EndpointClass, Field, endpoint_class
from .gateway import SimulatedGateway
from .stats import GatewayStats, RequestRecord
from .writes import WriteFault, WriteRecord

__all__ = [
    "SIM_TOKEN_KEY",
    "Capture",
    "EndpointClass",
    "Fault",
    "FaultPlan",
    "Field",
    "GatewayStats",
    "RequestRecord",
    "SimulatedEnlighten",
    "SimulatedGateway",
    "WriteFault",
    "WriteRecord",
    "endpoint_class",
    "list_captures",
    "load_capture",
    "make_token",
]
