"""DISTINCT aggregation strategies and plain GROUP BY on a skewed key (the small warehouse's hot
day 2 carries 40% of the rows): every strategy returns DuckDB's rows, automatic follows the
statistics, and the final stage's task inputs are bounded as each strategy promises."""

from __future__ import annotations

import dataclasses

import pytest

import mpp
from mpp.config import PlannerContext, Settings
from mpp.logical import nodes as ln
from mpp.optimizer.rewrite_count_distinct import choose_strategy, rewrite_count_distinct
from mpp.oracle import run_oracle
from mpp.sql import bind
from tests.compare import assert_each_matches_oracle
from tests.fake_catalog import FakeCatalog
from tests.query_warehouses import warehouse

STRATEGIES = ("automatic", "single_step", "pre_aggregate", "rewrite")
QUERIES = [
    "SELECT date, count(DISTINCT user_id) users FROM access_log GROUP BY date",
    "SELECT date, count(DISTINCT user_id) u, count(*) c, count(url_id) n, sum(bytes) s, "
    "min(status) lo, max(bytes) hi FROM access_log GROUP BY date",
    "SELECT date, status, count(DISTINCT user_id) u FROM access_log WHERE status <> 200 "
    "AND bytes > 1000 GROUP BY date, status",
    "SELECT count(DISTINCT user_id) u, sum(bytes) s FROM access_log WHERE status = 404",
    "SELECT date, count(DISTINCT user_id) u, avg(bytes) a FROM access_log GROUP BY date",
    "SELECT DISTINCT date, status FROM access_log",
    # No row survives: a global count is 0 (not NULL) beside a DISTINCT aggregate too.
    "SELECT count(*) c, count(bytes) n, count(DISTINCT user_id) u, sum(bytes) s "
    "FROM access_log WHERE bytes < 0",
    "SELECT date, count(*) c, count(DISTINCT user_id) u FROM access_log WHERE 1 = 0 "
    "GROUP BY date",
    # DISTINCT over several arguments (url_id has NULLs), beside plain aggregates, a group key
    # counted DISTINCT, no group key, and no row at all.
    "SELECT date, count(DISTINCT user_id) u, count(DISTINCT url_id) v, count(*) c, "
    "count(url_id) n, sum(bytes) s, avg(bytes) a, min(status) lo FROM access_log GROUP BY date",
    "SELECT status, count(DISTINCT status) k, count(DISTINCT user_id) u, count(DISTINCT url_id) v "
    "FROM access_log GROUP BY status",
    "SELECT count(DISTINCT user_id) u, count(DISTINCT url_id) v, count(DISTINCT date) d "
    "FROM access_log",
    "SELECT count(DISTINCT user_id) u, count(DISTINCT url_id) v, count(*) c, max(bytes) m "
    "FROM access_log WHERE bytes < 0",
    # A NULL of unknown type is no value: 0 per group (not 1), and no missing Arrow kernel.
    "SELECT date, count(DISTINCT NULL) n, count(NULL) m FROM access_log GROUP BY date",
    "SELECT count(DISTINCT NULL) n, count(DISTINCT user_id) u FROM access_log",
]


@pytest.fixture(scope="module")
def session(cluster):
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as s:
        yield s


def test_every_strategy_matches_duckdb(session) -> None:
    # fan-in 2: several combine tasks per exchange, so partial rows of one group arrive from
    # several upstream outputs (as at 1,000 fragments) and must be merged.
    assert_each_matches_oracle(session, QUERIES, [
        {"aggregate.distinct_strategy": s, "execution.exchange_fan_in": f}
        for s in STRATEGIES for f in (32, 2)])


def _final_rows(result: mpp.session.Result) -> list[int]:
    """rows_in of each task of the result stage."""
    final = result.stats.plan.final_stage.name
    return sorted(r.rows_in for r in result.stats.tasks if r.name == final)


def _hot_day_rows(session) -> int:
    sql = "SELECT count(*) n FROM access_log GROUP BY date ORDER BY n DESC LIMIT 1"
    return int(run_oracle(sql, session.catalog).column(0)[0].as_py())


def test_strategies_shape_the_final_stage(session) -> None:
    sql = QUERIES[0]
    hot = _hot_day_rows(session)
    single = session.sql(sql, settings={"aggregate.distinct_strategy": "single_step"})
    assert len(single.stats.plan.stages) == 2
    # single_step: the task holding the hot day receives every one of its raw rows.
    assert max(_final_rows(single)) >= hot
    rewrite = session.sql(sql, settings={"aggregate.distinct_strategy": "rewrite"})
    assert len(rewrite.stats.plan.stages) == 3
    # rewrite: the DISTINCT stage is exchanged by (date, user_id), so no task gets the hot day
    # whole; the last stage gets one pre-aggregated row per (task, day).
    distinct_stage = rewrite.stats.plan.stage(2).name
    rows = [r.rows_in for r in rewrite.stats.tasks if r.name == distinct_stage]
    assert max(rows) < hot
    days = session.sql("SELECT count(DISTINCT date) FROM access_log").to_arrow().column(0)[0]
    assert sum(_final_rows(rewrite)) <= rewrite.stats.plan.stage(2).tasks * days.as_py()
    # Hot keys are noted where the keys chose the rows: the DISTINCT stage's tasks (after the
    # exchange by (date, user_id)), not the scan tasks, whose partial DISTINCT over a varying
    # user_id is left unsampled.
    leaf = rewrite.stats.plan.stage(1).name
    assert all(r.hot_keys == () for r in rewrite.stats.tasks if r.name == leaf)
    assert all(r.hot_keys for r in rewrite.stats.tasks if r.name == distinct_stage and r.rows_in)


def test_group_by_hot_key_never_collects_raw_rows(session) -> None:
    # Plain GROUP BY pre-aggregates per fragment: the final tasks get at most one row per
    # (fragment, group), however hot a group is.
    result = session.sql("SELECT date, count(*) c, sum(bytes) s FROM access_log GROUP BY date")
    fragments = result.stats.plan.stages[0].tasks
    days = result.to_arrow().num_rows
    final = _final_rows(result)
    assert sum(final) <= fragments * days
    assert max(final) < _hot_day_rows(session)


def _aggregate(sql: str) -> ln.Aggregate:
    node = bind(sql, FakeCatalog()).root
    while not isinstance(node, ln.Aggregate):
        node = node.inputs[0]
    return node


def _with_stats(agg: ln.Aggregate, **changes: dict) -> ln.Aggregate:
    """``agg`` over a copy of its scan whose column statistics get ``changes`` per column."""
    scan = agg.input
    assert isinstance(scan, ln.Scan)
    stats = scan.table.stats
    columns = {**stats.columns, **{c: dataclasses.replace(stats.column(c), **v)
                                   for c, v in changes.items()}}
    table = dataclasses.replace(scan.table, stats=dataclasses.replace(stats, columns=columns))
    return dataclasses.replace(agg, input=dataclasses.replace(scan, table=table))


def test_automatic_choice_flips_with_the_statistics() -> None:
    agg = _aggregate("SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date")
    ctx = PlannerContext(Settings({"execution.hash_buckets": 16}))
    even = _with_stats(agg, date={"top_values": ((1, 3_400_000),)})
    strategy, reason = choose_strategy(even, ctx)
    assert strategy is ln.DistinctStrategy.SINGLE_STEP, reason
    hot = _with_stats(agg, date={"top_values": ((13, 40_000_000),)})
    strategy, reason = choose_strategy(hot, ctx)
    assert strategy is ln.DistinctStrategy.REWRITE
    assert "date=13 holds ~40% of rows > 1.5/16 buckets" in reason
    # Few (date, user_id) pairs per fragment: pre-aggregating shrinks the exchange.
    few = _with_stats(agg, date={"top_values": ((1, 3_400_000),)},
                      user_id={"distinct_count": 100})
    assert choose_strategy(few, ctx)[0] is ln.DistinctStrategy.PRE_AGGREGATE
    # A hot user: its duplicates are removed before the exchange.
    hot_user = _with_stats(agg, date={"top_values": ((1, 3_400_000),)},
                           user_id={"top_values": ((7, 10_000_000),)})
    strategy, reason = choose_strategy(hot_user, ctx)
    assert strategy is ln.DistinctStrategy.PRE_AGGREGATE
    assert "user_id=7 holds ~10% of rows" in reason
    # Fewer groups than buckets: some final tasks would idle while others work.
    assert choose_strategy(even, PlannerContext(Settings({"execution.hash_buckets": 64})))[0] \
        is ln.DistinctStrategy.REWRITE


def test_rewrite_pre_aggregates_its_inner_distinct_for_a_hot_x() -> None:
    agg = _aggregate("SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date")
    ctx = PlannerContext(Settings({"aggregate.distinct_strategy": "rewrite",
                                   "execution.hash_buckets": 16}))
    for user_stats, step in [({}, ln.DistinctStrategy.SINGLE_STEP),
                             ({"top_values": ((7, 10_000_000),)},
                              ln.DistinctStrategy.PRE_AGGREGATE)]:
        node = rewrite_count_distinct(_with_stats(agg, user_id=user_stats), ctx)
        assert isinstance(node, ln.Aggregate) and isinstance(node.input, ln.Aggregate)
        assert node.input.distinct_strategy is step, node.input.reason
        # Pairs nearly unique per fragment: exchange combiners need not re-merge them.
        assert node.input.merge_partials is (step is ln.DistinctStrategy.SINGLE_STEP)


def test_explain_names_the_strategy_and_why(session) -> None:
    text = session.explain(QUERIES[0])
    assert "[distinct: rewrite (group key skewed: access_log.date=" in text
    assert "holds ~40% of rows" in text
    text = session.explain(QUERIES[0], settings={"aggregate.distinct_strategy": "single_step"})
    assert "HashAggregateExec(SINGLE)" in text
    assert "[distinct: single_step (aggregate.distinct_strategy=single_step)]" in text
