"""Graph-shape tests: task counts per stage and the hash exchange's edge count at M = 1,000."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from dask.utils import key_split

from mpp.catalog.model import TableInfo, TableStats
from mpp.config import PlannerContext, Settings
from mpp.execution.graph import build_graph
from mpp.logical import nodes as ln
from mpp.logical.expr import AggFunc, AggregateCall, Column, SortKey
from mpp.physical.planner import plan_physical
from mpp.storage.base import Fragment, StorageFormat
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT

SCHEMA = pa.schema([("date", pa.date32()), ("user_id", pa.int64())])


def _scan(fragments: int) -> tuple[ln.Scan, list[Fragment]]:
    info = TableInfo("access_log", StorageFormat.PARQUET, SCHEMA,
                     TableStats(fragments * 100_000, 0, fragments), "file:///nowhere")
    frags = [Fragment(f"file:///nowhere/f{i}.parquet", StorageFormat.PARQUET, i)
             for i in range(fragments)]
    return ln.Scan(info, "a", ("date", "user_id")), frags


def _count_distinct_plan(fragments: int) -> tuple[ln.LogicalPlan, list[Fragment]]:
    scan, frags = _scan(fragments)
    date, user = Column("a.date", pa.date32()), Column("a.user_id", pa.int64())
    agg = ln.Aggregate(scan, (date,), (AggregateCall(AggFunc.COUNT, user, True, pa.int64()),),
                       ("users",))
    return ln.LogicalPlan(agg, ("date", "users")), frags


def _prefixes(dsk: dict) -> Counter:
    """Task counts by name as the dashboard groups them (Dask's key_split)."""
    return Counter(key_split(key) for key in dsk)


@pytest.mark.parametrize("maps,buckets,fan_in,combines", [
    (1000, 4, 32, 32),  # ceil(1000 / 32)
    (1000, 4, 64, 16),
    (1000, 64, 32, 31),  # capped at 2 x 1000 // 64, so the splits (C x N) stay <= 2M
    (1000, 128, 64, 15),
    (1000, 1000, 64, 2),
    (8, 4, 32, 1),
])
def test_hash_exchange_graph_stays_small(maps: int, buckets: int, fan_in: int,
                                         combines: int) -> None:
    plan, frags = _count_distinct_plan(maps)
    ctx = PlannerContext(Settings({"execution.hash_buckets": buckets,
                                   "execution.exchange_fan_in": fan_in,
                                   **ONE_TASK_PER_FRAGMENT}), workers=2, threads=2)
    physical = plan_physical(plan, ctx, lambda scan: frags)
    graph = build_graph(physical, "q", "0123abcd")
    # EXPLAIN counts the exchange's tasks from the same plan the graph is built from.
    assert physical.exchange_tasks(physical.stages[0]) == (combines, combines * buckets)
    assert combines * buckets <= 2 * maps
    assert _prefixes(graph.dsk) == {
        "stage1-scan-partial-agg": maps,  # one task per fragment: scan+partial agg fused
        "stage1-combine": combines,
        "stage1-split": combines * buckets,
        "stage2-final-agg": buckets,  # one task per bucket
    }
    # map->combine, combine->split, split->final: M + 2CN, never M x N.
    assert graph.edges() == maps + 2 * combines * buckets
    assert len(graph.result_keys) == buckets


def test_global_aggregate_gathers_and_limit_sorts_per_task() -> None:
    scan, frags = _scan(10)
    user = Column("a.user_id", pa.int64())
    agg = ln.Aggregate(scan, (), (AggregateCall(AggFunc.MAX, user, False, pa.int64()),), ("m",))
    ctx = PlannerContext(Settings(ONE_TASK_PER_FRAGMENT), workers=2, threads=2)
    graph = build_graph(plan_physical(ln.LogicalPlan(agg, ("m",)), ctx, lambda s: frags),
                        "q", "0123abcd")
    assert _prefixes(graph.dsk) == {"stage1-scan-partial-agg": 10, "stage2-final-agg": 1}
    assert graph.edges() == 10  # gather: the one final task reads every map task

    # ORDER BY ... LIMIT 5 as push_down_limit leaves it: a top-N Sort.
    top = ln.Sort(scan, (SortKey(user, ascending=False),), fetch=5)
    graph = build_graph(plan_physical(ln.LogicalPlan(top, ("date", "user_id")), ctx,
                                      lambda s: frags), "q", "0123abcd")
    assert _prefixes(graph.dsk) == {"stage1-scan-topn": 10, "stage2-topn": 1}
    # Not optimized, Limit(Sort) is what it says: every row sorted in one task, then cut.
    plain = ln.Limit(ln.Sort(scan, (SortKey(user, ascending=False),)), 5)
    graph = build_graph(plan_physical(ln.LogicalPlan(plain, ("date", "user_id")), ctx,
                                      lambda s: frags), "q", "0123abcd")
    assert _prefixes(graph.dsk) == {"stage1-scan": 10, "stage2-sort-limit": 1}


def test_pruned_to_nothing_still_runs_one_task() -> None:
    plan, _ = _count_distinct_plan(3)
    ctx = PlannerContext(Settings(), workers=2, threads=2)
    physical = plan_physical(plan, ctx, lambda scan: [])
    assert physical.stages[0].tasks == 1


class _Scheduler:
    """A client stand-in: the workers' threads, as ``Client.nthreads`` says them."""

    def __init__(self, workers: dict[str, int]) -> None:
        self.workers = workers

    def nthreads(self) -> dict[str, int]:
        return dict(self.workers)


def test_splits_follow_their_combine_and_consumers_spread_over_the_threads() -> None:
    from mpp.execution.run import placement

    plan, frags = _count_distinct_plan(8)
    ctx = PlannerContext(Settings({"execution.hash_buckets": 16}), workers=2, threads=2)
    graph = build_graph(plan_physical(plan, ctx, lambda scan: frags), "q", "0123abcd")
    splits = graph.local_keys()
    assert len(splits) == 16 and {key_split(k[0]) for k in splits} == {"stage1-split"}
    assert sorted(graph.bucket_readers.values()) == list(range(16))  # stage2's 16 tasks
    where = placement(_Scheduler({"tcp://b:2": 2, "tcp://a:1": 1}), splits,
                      graph.bucket_readers)
    # A split may run on any worker: restricted, Dask places it where its input is.
    assert all(where["workers"][k] == ["tcp://a:1", "tcp://b:2"] for k in splits)
    # Consumer j on slot j of a:1, b:2, b:2 (a worker weighted by its threads).
    by_bucket = {j: where["workers"][k] for k, j in graph.bucket_readers.items()}
    assert [by_bucket[j] for j in range(3)] == [["tcp://a:1"], ["tcp://b:2"], ["tcp://b:2"]]
    assert Counter(w for ws in by_bucket.values() for w in ws) == {"tcp://a:1": 6,
                                                                   "tcp://b:2": 10}
    assert set(where["allow_other_workers"]) == set(where["workers"])  # loose: a worker
    assert all(where["allow_other_workers"].values())  # that died changes nothing else
    assert placement(_Scheduler({}), splits, graph.bucket_readers) == {}
