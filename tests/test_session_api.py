"""The Python API: connect() with each kind of cluster argument, settings, explain stages."""

from __future__ import annotations

import subprocess
import sys

import pytest
from distributed import Client

import mpp
from mpp.errors import MppError, SettingError
from mpp.oracle import run_oracle
from tests.compare import assert_same_rows
from tests.query_warehouses import warehouse

QUERY = "SELECT status, count(*) c FROM access_log WHERE status >= 400 GROUP BY status"


def test_settings_shape_the_plan_per_session_and_per_query(cluster) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    with mpp.connect(wh, cluster=cluster, settings={"execution.hash_buckets": 3}) as s:
        r = s.sql(QUERY)
        assert r.stats.plan.final_stage.tasks == 3
        r5 = s.sql(QUERY, settings={"execution.hash_buckets": 5})
        assert r5.stats.plan.final_stage.tasks == 5
        off = s.sql(QUERY, settings={"optimizer.pushdown_predicates": False})
        expected = run_oracle(QUERY, s.catalog)
        for result in (r, r5, off):
            assert_same_rows(result.to_arrow(), expected)
        assert r.to_pandas().shape == (expected.num_rows, 2)
        assert r.to_arrow().column_names == ["status", "c"]
    assert cluster.client.status == "running"  # a Cluster passed in is not closed


def test_connect_by_scheduler_address_and_client(cluster) -> None:
    wh = warehouse(cluster.client, "parquet", 3)
    address = cluster.client.scheduler.address
    with mpp.connect(wh, cluster=address) as s:
        assert s.cluster.total_threads() == 2
        assert s.sql("SELECT count(*) FROM access_log").to_arrow().column(0)[0].as_py() == 4000
    with Client(address) as client:
        with mpp.connect(wh, cluster=client) as s:
            assert s.sql("SELECT count(*) FROM access_log").to_arrow().num_rows == 1
        assert client.status == "running"  # the caller's client stays open


def test_explain_stages(cluster) -> None:
    with mpp.connect(warehouse(cluster.client, "parquet", 3), cluster=cluster) as s:
        physical = s.explain(QUERY)
        assert physical.startswith("PhysicalPlan: 2 stages")
        assert "ScanExec: access_log [status] filter=(status >= 400)" in physical
        assert s.explain(QUERY, "logical") != s.explain(QUERY, "optimized")
        analyze = s.explain(QUERY, "analyze")
        assert "measured stage1-scan-partial-agg: 3 tasks" in analyze
        with pytest.raises(MppError, match="unknown explain stage"):
            s.explain(QUERY, "graph")  # type: ignore[arg-type]


def test_bad_settings_fail_before_a_cluster_starts(tmp_path) -> None:
    with pytest.raises(SettingError, match="execution.hash_buckets"):
        mpp.connect(tmp_path, settings={"execution.hash_bucket": 2})


def test_public_names_import_from_the_package() -> None:
    # A fresh interpreter: here mpp.session is already imported, which would hide the bug.
    code = ("import mpp, sys; assert 'dask' not in sys.modules; "
            "from mpp.execution.cluster import ClusterSpec; from mpp.session import Result, "
            "Session; assert mpp.ClusterSpec is ClusterSpec and mpp.Session is Session "
            "and mpp.Result is Result; print(mpp.session.__name__)")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == "mpp.session"
    for name in mpp.__all__:
        assert getattr(mpp, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mpp.nope  # noqa: B018
