"""The bridge with one TLS context for every gateway: the what-if behind the memory profile.

Started like the bridge (`python benchmarks/_shared_tls.py`, settings in the environment).
The shipped bridge builds `envoy.no_verify_ssl()` for each gateway's HTTP session, and each
default context loads the system CA store (about 0.8 MB, though nothing is verified); here
that one function is cached. Nothing else differs.
"""

from __future__ import annotations

import functools
import sys

from envoy2mqtt import envoy
from envoy2mqtt.cli import main


def run() -> int:
    """Share one context, then run the bridge."""
    envoy.no_verify_ssl = functools.cache(envoy.no_verify_ssl)
    return main(["run"])


if __name__ == "__main__":
    sys.exit(run())
