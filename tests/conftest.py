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


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A LocalCluster of 2 single-threaded worker processes, shared by the whole session."""
    with Cluster(ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None)) as c:
        yield c
