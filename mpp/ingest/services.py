"""Where the real brokers are, why one cannot be used (for skips and error messages), and
a private broker started from Debian's packages where none is running.

The project's machines run mosquitto on 127.0.0.1:1883 and nats-server with JetStream on
127.0.0.1:4222. ``MPP_MQTT_ADDR`` / ``MPP_NATS_ADDR`` (``host:port``) point mpp elsewhere: the
tests' ``conftest.py`` starts its own brokers with :func:`start_private` on free loopback
ports when nothing listens on those and the packages are installed, and sets them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def _addr(env: str, default: tuple[str, int]) -> tuple[str, int]:
    value = os.environ.get(env, "")
    host, _, port = value.rpartition(":")
    return (host or default[0], int(port)) if port.isdigit() else default


DEFAULT_MQTT_ADDR = ("127.0.0.1", 1883)
DEFAULT_NATS_ADDR = ("127.0.0.1", 4222)
MQTT_ADDR = _addr("MPP_MQTT_ADDR", DEFAULT_MQTT_ADDR)
"""mosquitto: on the project's machines 127.0.0.1:1883; ``MPP_MQTT_ADDR`` overrides it."""
NATS_ADDR = _addr("MPP_NATS_ADDR", DEFAULT_NATS_ADDR)
"""nats-server with JetStream: 127.0.0.1:4222; ``MPP_NATS_ADDR`` overrides it."""

PACKAGES = {"mosquitto": "mosquitto", "nats-server": "nats-server"}
"""The Debian package of each broker program."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def program(name: str) -> str | None:
    """The path of broker program ``name`` (``mosquitto`` is in /usr/sbin on Debian)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def start_private(name: str, folder: str | Path, timeout: float = 10.0
                  ) -> tuple[subprocess.Popen[bytes], tuple[str, int]]:
    """Start broker ``name`` (``mosquitto`` or ``nats-server`` with JetStream) on a free
    loopback port, its state in ``folder``; the process and its address, once it accepts
    connections. FileNotFoundError naming the Debian package when it is not installed."""
    exe = program(name)
    if exe is None:
        raise FileNotFoundError(f"{name} is not installed (Debian package {PACKAGES[name]})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if name == "mosquitto":
        conf = folder / "mosquitto.conf"
        # user root: started as root, mosquitto would drop to its own user, which may not
        # write the folder; the state is saved at exit (no autosave)
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                        f"persistence true\npersistence_location {folder}/\nuser root\n")
        args = [exe, "-c", str(conf)]
    else:
        args = [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(folder)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not reachable(("127.0.0.1", port), 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name} did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    return proc, ("127.0.0.1", port)


def use(name: str, addr: tuple[str, int]) -> None:
    """Point mpp (this process and its children) at broker ``name`` on ``addr``."""
    env, attr = (("MPP_MQTT_ADDR", "MQTT_ADDR") if name == "mosquitto"
                 else ("MPP_NATS_ADDR", "NATS_ADDR"))
    os.environ[env] = f"{addr[0]}:{addr[1]}"
    globals()[attr] = addr


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
        installed = "installed but not running" if program(debian) else "not installed"
        return f"no {service} on {addr[0]}:{addr[1]} (Debian package {debian}: {installed})"
    return None


def mqtt_missing(addr: tuple[str, int] | None = None) -> str | None:
    """Why the MQTT backend cannot run here (None when paho-mqtt and mosquitto are there)."""
    return _missing("paho-mqtt>=2", "paho.mqtt", "MQTT broker", "mosquitto",
                    addr or MQTT_ADDR)


def nats_missing(addr: tuple[str, int] | None = None) -> str | None:
    """Why the JetStream backend cannot run here (None when nats-py and nats-server are)."""
    return _missing("nats-py", "nats", "NATS server", "nats-server", addr or NATS_ADDR)
