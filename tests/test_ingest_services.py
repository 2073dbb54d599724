"""Private brokers from Debian's packages: what conftest.py starts where none is running."""

from __future__ import annotations

import pytest

from mpp.ingest import services


@pytest.mark.parametrize("name", ["mosquitto", "nats-server"])
def test_a_private_broker_starts_on_a_free_loopback_port(name, tmp_path):
    if services.program(name) is None:
        pytest.skip(f"{name} is not installed (Debian package {services.PACKAGES[name]})")
    proc, addr = services.start_private(name, tmp_path)
    try:
        assert addr[0] == "127.0.0.1" and services.reachable(addr)
        missing = services.mqtt_missing if name == "mosquitto" else services.nats_missing
        assert missing(addr) is None
    finally:
        proc.terminate()
        proc.wait(10)
    assert not services.reachable(addr)
    why = missing(addr)
    assert why is not None and f"Debian package {name}: installed but not running" in why


def test_a_missing_program_is_named_by_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(services, "program", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"nats-server is not installed \(Debian "
                                                r"package nats-server\)"):
        services.start_private("nats-server", tmp_path)


def test_the_address_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MPP_MQTT_ADDR", "127.0.0.1:18830")
    assert services._addr("MPP_MQTT_ADDR", services.DEFAULT_MQTT_ADDR) == ("127.0.0.1", 18830)
    monkeypatch.setenv("MPP_MQTT_ADDR", "nonsense")
    assert services._addr("MPP_MQTT_ADDR", services.DEFAULT_MQTT_ADDR) == ("127.0.0.1", 1883)
