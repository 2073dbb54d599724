"""A worker killed mid-query: the scheduler recomputes its lost keys; the result still matches
DuckDB over the same files."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpp.catalog.model import TableInfo, TableStats
from mpp.config import PlannerContext, Settings
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.execution.run import execute
from mpp.logical import nodes as ln
from mpp.logical.expr import AggFunc, AggregateCall, Column
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.planner import cut_stages, plan_physical
from mpp.storage.base import Fragment, StorageFormat
from tests.compare import assert_same_rows

FRAGMENTS = 24


@dataclass(frozen=True, slots=True)
class SlowExec(PhysicalOp):
    """Test-only: passes rows through after a pause, so the query is still running when a
    worker dies."""

    word: ClassVar[str] = "slow"
    input: PhysicalOp

    @property
    def schema(self):  # type: ignore[override]
        return self.input.schema

    @property
    def children(self) -> tuple[PhysicalOp, ...]:
        return (self.input,)

    def execute(self, tctx: TaskContext) -> pa.Table:
        time.sleep(0.15)
        return self.input.execute(tctx)

    def explain_line(self) -> str:
        return "SlowExec"


def _write(tmp: Path) -> tuple[ln.LogicalPlan, list[Fragment]]:
    rng = np.random.default_rng(7)
    frags = []
    for i in range(FRAGMENTS):
        t = pa.table({"g": rng.integers(0, 9, 500), "u": rng.integers(0, 60, 500)})
        path = tmp / f"part-{i}.parquet"
        pq.write_table(t, path)
        frags.append(Fragment(path.as_uri(), StorageFormat.PARQUET, i, 500))
    info = TableInfo("t", StorageFormat.PARQUET, t.schema, TableStats(500 * FRAGMENTS, 0,
                                                                        FRAGMENTS), tmp.as_uri())
    g, u = Column("t.g", pa.int64()), Column("t.u", pa.int64())
    agg = ln.Aggregate(ln.Scan(info, "t", ("g", "u")), (g,),
                       (AggregateCall(AggFunc.COUNT, u, True, pa.int64()),
                        AggregateCall(AggFunc.COUNT_STAR, None, False, pa.int64())), ("d", "n"))
    return ln.LogicalPlan(agg, ("g", "d", "n")), frags


def test_worker_killed_mid_query_still_gives_the_oracle_result(tmp_path: Path) -> None:
    plan, frags = _write(tmp_path)
    ctx = PlannerContext(Settings({"execution.exchange_fan_in": 4}), workers=2, threads=2)
    physical = plan_physical(plan, ctx, lambda scan: frags)
    leaf = physical.stages[0]
    slow_root = leaf.root.with_children((SlowExec(leaf.root.children[0]),))
    root, stages = cut_stages(physical.root.transform_up(
        lambda op: slow_root if op is leaf.root else op))
    physical = dataclasses.replace(physical, root=root, stages=stages)  # fan-in 4 kept
    assert "slow" in physical.stages[0].name

    spec = ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None)
    with Cluster(spec) as cluster:
        client = cluster.client
        client.wait_for_workers(2)
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        box: dict = {}
        runner = threading.Thread(target=lambda: box.update(
            run=execute(physical, client, "kill-test")))
        runner.start()
        time.sleep(1.2)  # about a third of the 24 x 0.15 s of slow tasks is done
        assert runner.is_alive(), "the query finished before the worker could be killed"
        os.kill(pids[victim], signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive()

    expected = duckdb.sql(
        f"SELECT g, count(DISTINCT u), count(*) FROM read_parquet('{tmp_path}/*.parquet') "
        "GROUP BY g").arrow().read_all()
    assert_same_rows(box["run"].table, expected)
