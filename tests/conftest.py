"""Shared fixtures: one small LocalCluster per test session (2 workers x 1 thread)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from mpp.execution.cluster import Cluster, ClusterSpec

# A developer's running `mpp cluster` must not serve the tests' sessions: its record is looked
# for here instead (tests of `mpp cluster` itself point this at their own file).
os.environ["MPP_CLUSTER_FILE"] = os.path.join(tempfile.mkdtemp(prefix="mpp-tests-"),
                                              "cluster.json")


_BROKERS: list = []  # private brokers this test session started (processes)


def pytest_configure(config: pytest.Config) -> None:
    """Where nothing listens on the project's broker addresses (127.0.0.1:1883 / 4222), start a
    private mosquitto / nats-server from the Debian packages on free loopback ports, before
    the test modules are collected (their skip conditions ask the same addresses). A broker
    that is not installed is left missing: its tests skip naming the package."""
    from mpp.ingest import services

    for name, addr in (("mosquitto", services.MQTT_ADDR), ("nats-server", services.NATS_ADDR)):
        if services.reachable(addr) or services.program(name) is None:
            continue
        try:
            proc, where = services.start_private(name, tempfile.mkdtemp(prefix=f"mpp-{name}-"))
        except (OSError, RuntimeError) as exc:  # its tests skip with the reason
            print(f"could not start a private {name}: {exc}")
            continue
        _BROKERS.append(proc)
        services.use(name, where)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the private brokers (mosquitto saves its state at exit)."""
    for proc in _BROKERS:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A LocalCluster of 2 single-threaded worker processes, shared by the whole session."""
    with Cluster(ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None)) as c:
        yield c
