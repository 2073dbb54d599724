"""Adaptive partial aggregation (``aggregate.partial_skip_ratio``, docs/aggregates.md): a task
whose partial aggregate or partial top-N keeps most of its rows passes the rest through, and the
exchange's combine concatenates such outputs instead of merging them. Results equal DuckDB's
with the skip forced (ratio 0) and off (ratio 1); EXPLAIN ANALYZE and the task records say
which tasks skipped."""

from __future__ import annotations

import pyarrow as pa
import pytest

import mpp
from mpp.logical.expr import AggFunc, AggregateCall, Column
from mpp.physical.aggregates import AggregateKernel
from mpp.physical.operators.aggregate import AggregateMode, HashAggregateExec
from mpp.physical.operators.base import PhysicalOp, TaskContext, is_unreduced
from tests.compare import assert_each_matches_oracle
from tests.query_warehouses import warehouse

QUERIES = [
    # Nearly unique keys (what de-duplication meets): DISTINCT, GROUP BY without aggregates.
    "SELECT DISTINCT user_id, time FROM access_log",
    "SELECT user_id, time FROM access_log GROUP BY user_id, time",
    "SELECT count(*) c, sum(bytes) s FROM (SELECT DISTINCT time, bytes FROM access_log) t",
    # Aggregate states: aggregated, never passed through, but merged only in the final phase.
    "SELECT time, count(*) c, sum(bytes) s, avg(bytes) a, min(url_id) m FROM access_log "
    "GROUP BY time",
    "SELECT status, count(*) c, max(bytes) m FROM access_log GROUP BY status",
    "SELECT date, count(DISTINCT user_id) u, count(*) c FROM access_log GROUP BY date",
    "SELECT count(DISTINCT time) t FROM access_log",
    # Partial top-N per group (de-duplication keeping the first copy).
    "SELECT user_id, time, bytes FROM (SELECT user_id, time, bytes, row_number() OVER "
    "(PARTITION BY user_id, time ORDER BY bytes, url_id) rn FROM access_log) t WHERE rn = 1",
    "SELECT user_id, time FROM (SELECT user_id, time, row_number() OVER "
    "(PARTITION BY user_id ORDER BY time DESC) rn FROM access_log) t WHERE rn = 1",
]


@pytest.fixture(scope="module")
def session(cluster):
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as s:
        yield s


def test_results_match_duckdb_with_the_skip_forced_and_off(session) -> None:
    assert_each_matches_oracle(session, QUERIES, [
        {"aggregate.partial_skip_ratio": ratio, "execution.exchange_fan_in": fan_in}
        for ratio in (0.0, 0.8, 1.0) for fan_in in (2, 64)])


def _skipped(result: mpp.session.Result, suffix: str) -> int:
    return sum(1 for r in result.stats.tasks if r.name.endswith(suffix) and r.partial_skipped)


@pytest.mark.parametrize("sql", [QUERIES[0], QUERIES[7]])
def test_forced_skip_is_measured_and_shown_by_explain_analyze(session, sql) -> None:
    forced = session.sql(sql, settings={"aggregate.partial_skip_ratio": 0.0})
    scans = forced.stats.plan.stage(1)
    assert _skipped(forced, scans.name) == scans.tasks  # every scan task passed rows through
    assert _skipped(forced, "-combine") >= 1  # and its combines concatenated only
    text = forced.explain_analyze
    assert f"partial reduction skipped in {scans.tasks} of {scans.tasks} tasks" in text
    assert "merge skipped in" in text
    # Passed through: more rows cross the exchange than when every task reduces.
    never = session.sql(sql, settings={"aggregate.partial_skip_ratio": 1.0})
    assert not any(r.partial_skipped for r in never.stats.tasks)
    assert "skipped in" not in never.explain_analyze

    def sent(result: mpp.session.Result) -> int:
        return sum(r.rows_out for r in result.stats.tasks if r.name == scans.name)

    assert sent(forced) >= sent(never)


def test_default_ratio_keeps_reducing_where_groups_are_few(session) -> None:
    result = session.sql("SELECT status, count(*) c FROM access_log GROUP BY status")
    assert not any(r.partial_skipped for r in result.stats.tasks)


class _Rows(PhysicalOp):
    """A leaf that returns a fixed table (the partial aggregate's input)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.schema = ()

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self.table


def test_partial_distinct_passes_rows_after_its_probe() -> None:
    """A quarter of the rows are reduced; the others pass through unaggregated, tagged."""
    table = pa.table({"k": pa.array(list(range(100)) + list(range(100)), pa.int64())})
    kernel = AggregateKernel(("k",), (), ())
    op = HashAggregateExec(_Rows(table), AggregateMode.PARTIAL, kernel,
                           (), skip_ratio=0.5)
    tctx = TaskContext(0)
    out = op.execute(tctx)
    assert tctx.partial_skipped == 1 and is_unreduced(out)
    assert out.num_rows == 50 + 150  # the first 50 rows' 50 keys, then 150 rows as they came
    # A combine of tagged outputs concatenates them; the final merge removes the copies.
    assert op.merge_outputs([out, out]).num_rows == 400
    assert sorted(kernel.final(op.merge_outputs([out]))["k"].to_pylist()) == list(range(100))


def test_partial_with_states_still_aggregates_when_it_skips() -> None:
    table = pa.table({"k": pa.array(range(200), pa.int64()), "x": pa.array([1] * 200)})
    kernel = AggregateKernel(("k",), (AggregateCall(AggFunc.SUM, Column("x", pa.int64()), False,
                                            pa.int64()),),
                             ("s",))
    op = HashAggregateExec(_Rows(table), AggregateMode.PARTIAL, kernel, (), skip_ratio=0.5)
    tctx = TaskContext(0)
    out = op.execute(tctx)
    assert tctx.partial_skipped == 1 and is_unreduced(out)
    assert out.column_names == kernel.grain + ["__p0_0"] and out.num_rows == 200
    # Reducing keys (2 per key in the probe): not skipped, one partial row per key.
    dup = pa.table({"k": pa.array([i // 2 for i in range(200)], pa.int64()),
                    "x": pa.array([1] * 200)})
    op = HashAggregateExec(_Rows(dup), AggregateMode.PARTIAL, kernel, (), skip_ratio=0.8)
    tctx = TaskContext(0)
    out = op.execute(tctx)
    assert tctx.partial_skipped == 0 and not is_unreduced(out) and out.num_rows == 100


def _fetched(dask_worker) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of the keys this worker fetched from others, and forget them."""
    names = [k[0] if isinstance(k, tuple) else str(k)
             for entry in dask_worker.transfer_incoming_log for k in entry["keys"]]
    dask_worker.transfer_incoming_log.clear()
    return names


def test_unreduced_rows_cross_once_each_bucket_to_its_consumer(session) -> None:
    """Passed-through rows go map -> combine -> split -> consumer, and only a bucket crosses
    to its consumer: a split runs where its combine's output is, the consumers on every
    worker. Dask used to spread the splits over the workers as it spreads root tasks (a large
    group reading one combine), so each worker fetched the whole combine output, holding
    every row twice (mpp.execution.run.placement)."""
    client = session.cluster.client
    client.run(_fetched)
    settings = {"aggregate.partial_skip_ratio": 0.0, "execution.hash_buckets": 16}
    result = session.sql(QUERIES[0], settings=settings)
    plan = result.stats.plan
    assert plan.exchange_tasks(plan.stage(1)) == (1, 16)  # one combine, 16 splits of it
    fetched = [name for names in client.run(_fetched).values() for name in names]
    assert not [name for name in fetched if "-combine-" in name]
    # The consumers ran on both workers: the buckets of the other one crossed to them.
    assert any("-split-" in name for name in fetched)
    assert_each_matches_oracle(session, [QUERIES[0]], [settings])
