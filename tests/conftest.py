"""Shared fixtures: one small LocalCluster per test session (2 workers x 1 thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mpp.execution.cluster import Cluster, ClusterSpec


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A LocalCluster of 2 single-threaded worker processes, shared by the whole session."""
    with Cluster(ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None)) as c:
        yield c
