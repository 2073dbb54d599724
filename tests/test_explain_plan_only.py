"""`mpp explain` without --analyze plans from the catalog and settings alone: no cluster."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mpp.cli import main
from mpp.errors import MppError
from mpp.execution import cluster as cluster_module
from mpp.execution.cluster import PlanOnly
from mpp.session import connect
from tests.query_warehouses import warehouse

QUERY = "SELECT date, count(*) AS n FROM access_log GROUP BY date"


@pytest.fixture
def wh(cluster) -> str:
    """The shared test warehouse (made with the suite's cluster, before the tests refuse any)."""
    return str(warehouse(cluster.client, "parquet", 3))


@pytest.fixture
def no_cluster(wh: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start or reach a Dask cluster fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster was started or contacted")

    monkeypatch.setattr(cluster_module, "_RestartingLocalCluster", refuse)
    monkeypatch.setattr(cluster_module, "_connect", refuse)


def test_explain_starts_no_cluster_and_says_what_it_planned_for(no_cluster: None, wh: str) -> None:
    out = CliRunner().invoke(main, ["explain", "-w", wh, QUERY])
    assert out.exit_code == 0, out.output
    assert "hash exchanges into 4 buckets" in out.output  # 2 x 2 workers x 1 thread
    assert out.output.rstrip().endswith(
        "Planned for 2 workers x 1 thread (--workers / --threads or the planning.* settings; "
        "no cluster started)")
    assert "dashboard:" not in out.output


def test_the_planned_size_sets_the_bucket_count(no_cluster: None, wh: str) -> None:
    out = CliRunner().invoke(main, ["explain", "-w", wh, "--workers", "16", "--threads", "4",
                                    QUERY])
    assert out.exit_code == 0, out.output
    assert "hash exchanges into 128 buckets" in out.output
    assert "Planned for 16 workers x 4 threads" in out.output
    # The setting wins over --workers: a 128-node warehouse planned on a laptop.
    out = CliRunner().invoke(main, ["explain", "-w", wh, "--set", "planning.workers=128",
                                    "--set", "planning.threads_per_worker=8", QUERY])
    assert out.exit_code == 0, out.output
    assert "hash exchanges into 2048 buckets" in out.output
    assert "Planned for 128 workers x 8 threads" in out.output


def test_a_plan_only_session_refuses_to_run_clearly(no_cluster: None, wh: str) -> None:
    with connect(wh, cluster=PlanOnly(3, 2)) as s:
        assert s.planned_size() == (3, 2)
        assert "hash exchanges into 12 buckets" in s.explain(QUERY)
        with pytest.raises(MppError, match="only plans .*mpp explain --analyze"):
            s.sql(QUERY)
