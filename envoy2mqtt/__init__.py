"""envoy2mqtt: a local bridge from Enphase Envoy / IQ Gateways to MQTT and Home Assistant."""

__version__ = "0.1.0"
