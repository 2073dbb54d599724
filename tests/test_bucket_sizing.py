"""Hash exchanges sized from the data: a bucket count from the estimated bytes flowing into the
exchange (``execution.hash_bucket_bytes``), the cluster's count as the minimum, a fixed
``execution.hash_buckets`` still winning. Windows, aggregations and both sides of a partitioned
join alike; EXPLAIN names the estimate; results still equal DuckDB."""

from __future__ import annotations

import pytest

import mpp
from mpp.config import MAX_DATA_BUCKETS, PlannerContext, Settings
from mpp.oracle import run_oracle
from mpp.physical.operators.exchange import ExchangeExec, ExchangeKind
from mpp.physical.planner import PhysicalPlan
from tests.compare import assert_same_result
from tests.query_warehouses import warehouse

MiB = 1024 * 1024


def test_the_count_grows_with_the_estimate_from_the_threads_minimum() -> None:
    ctx = PlannerContext(Settings(), workers=2, threads=2)
    assert ctx.buckets_for(0) == (4, "")
    assert ctx.buckets_for(4 * 64 * MiB) == (4, "")  # 4 buckets of 64 MiB hold it
    n, why = ctx.buckets_for(4 * 64 * MiB + 1)
    assert n == 8 and why == "sized from the data: est. 256.0 MiB, 64.0 MiB per bucket"
    assert ctx.buckets_for(2000 * MiB)[0] == 32  # 31.25 -> the next power of two
    assert ctx.buckets_for(1e15)[0] == MAX_DATA_BUCKETS


def test_a_fixed_count_or_a_zero_target_keeps_the_count() -> None:
    fixed = PlannerContext(Settings({"execution.hash_buckets": 3}), threads=2)
    assert fixed.buckets_for(1e12) == (3, "")
    off = PlannerContext(Settings({"execution.hash_bucket_bytes": 0}), threads=8)
    assert off.buckets_for(1e12) == (16, "")


def _hash_exchanges(plan: PhysicalPlan) -> list[ExchangeExec]:
    return [s.sink for s in plan.stages if s.sink is not None and s.sink.kind is ExchangeKind.HASH]


# The test warehouse's ~4,000 rows (~150 KiB in memory; 300 users) need several buckets.
SMALL = {"execution.hash_bucket_bytes": 16384}
TINY = {"execution.hash_bucket_bytes": 256}


def _run(session: mpp.Session, sql: str, settings: dict[str, object]) -> PhysicalPlan:
    result = session.sql(sql, settings=settings)
    assert_same_result(result.to_arrow(), run_oracle(sql, session.catalog), sql)
    return result.stats.plan


def test_window_and_aggregate_exchanges_take_data_sized_counts(cluster) -> None:
    window = ("SELECT user_id, time, sum(bytes) OVER (PARTITION BY user_id ORDER BY time, "
              "session_id, url_id, bytes, status) s FROM access_log")
    aggregate = "SELECT user_id, count(*) c, sum(bytes) b FROM access_log GROUP BY user_id"
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        for sql, small in ((window, SMALL), (aggregate, TINY)):
            plain = _run(session, sql, {})
            assert [e.n for e in _hash_exchanges(plain)] == [plain.hash_buckets]
            sized = _run(session, sql, small)
            (exchange,) = _hash_exchanges(sized)
            assert exchange.n > sized.hash_buckets and exchange.n & (exchange.n - 1) == 0
            assert sized.stages[-1].tasks == exchange.n
            text = session.explain(sql, settings=small)
            assert f"into {exchange.n} buckets (sized from the data: est. " in text
            assert "per bucket)" in text
            # A fixed count still wins over the data.
            fixed = _run(session, sql, {**small, "execution.hash_buckets": 3})
            assert [e.n for e in _hash_exchanges(fixed)] == [3]


@pytest.mark.parametrize("pre_aggregated", [False, True], ids=["both-exchanged", "one-kept"])
def test_both_sides_of_a_partitioned_join_share_one_count(pre_aggregated: bool, cluster) -> None:
    right = ("(SELECT user_id, count(*) n FROM access_log GROUP BY user_id)" if pre_aggregated
             else "users")
    sql = (f"SELECT a.user_id, a.bytes, u.* FROM access_log a JOIN {right} u "
           "ON a.user_id = u.user_id")
    settings = {**SMALL, "join.strategy": "partitioned"}
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        plan = _run(session, sql, settings)
    counts = {e.n for e in _hash_exchanges(plan)}
    assert len(counts) == 1, counts
    (n,) = counts
    # Exchanged together, the sides take the join's data-sized count; a side already hashed by
    # its key (the small aggregate's own count) keeps it, and the other side follows.
    assert (n > plan.hash_buckets) is not pre_aggregated
    assert plan.stages[-1].tasks == n
