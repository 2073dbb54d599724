"""Where the real brokers are, and why one cannot be used (for skips and error messages)."""

from __future__ import annotations

import importlib.util
import socket

MQTT_ADDR = ("127.0.0.1", 1883)
"""mosquitto on the project's machines."""
NATS_ADDR = ("127.0.0.1", 4222)
"""nats-server with JetStream on the project's machines."""


def reachable(addr: tuple[str, int], timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``addr``."""
    try:
        with socket.create_connection(addr, timeout=timeout):
            return True
    except OSError:
        return False


def _missing(package: str, module: str, service: str, debian: str,
             addr: tuple[str, int]) -> str | None:
    if importlib.util.find_spec(module.split(".")[0]) is None or (
            "." in module and importlib.util.find_spec(module) is None):
        return f"{package} is not installed (pip install '{package}')"
    if not reachable(addr):
        return f"no {service} on {addr[0]}:{addr[1]} (Debian package {debian})"
    return None


def mqtt_missing(addr: tuple[str, int] = MQTT_ADDR) -> str | None:
    """Why the MQTT backend cannot run here (None when paho-mqtt and mosquitto are there)."""
    return _missing("paho-mqtt>=2", "paho.mqtt", "MQTT broker", "mosquitto", addr)


def nats_missing(addr: tuple[str, int] = NATS_ADDR) -> str | None:
    """Why the JetStream backend cannot run here (None when nats-py and nats-server are)."""
    return _missing("nats-py", "nats", "NATS server", "nats-server", addr)
