"""Skew diagnostics in EXPLAIN ANALYZE and in QueryStats, on a constructed run with a known
straggler: the plan of Q1 (single_step), task records written by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from mpp.config import PlannerContext, Settings
from mpp.metrics.records import TaskRecord
from mpp.metrics.summary import QueryStats, summarize
from mpp.optimizer import optimize
from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan, plan_physical
from mpp.sql import bind
from mpp.storage.base import Fragment, StorageFormat
from tests.fake_catalog import FakeCatalog

HOT_DAY = dt.date(2017, 1, 13)


def _plan(**settings: object) -> PhysicalPlan:
    ctx = PlannerContext(Settings({"aggregate.distinct_strategy": "single_step",
                                   "execution.hash_buckets": 8, **settings}))
    sql = "SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date"
    frags = [Fragment(f"file:///f{i}.parquet", StorageFormat.PARQUET, i) for i in range(8)]
    return plan_physical(optimize(bind(sql, FakeCatalog()), ctx), ctx, lambda scan: frags)


def _record(stage: str, n: int, part: int, start: float, secs: float, rows: int, *,
            sent: int = 0, hot: tuple = ()) -> TaskRecord:
    return TaskRecord(query_id="q", stage=n, name=stage, key=f"('{stage}', {part})",
                      partition=part, worker=f"w{part % 2}", start=start, stop=start + secs,
                      rows_in=rows, rows_out=rows, bytes_read=rows * 12 if n == 1 else 0,
                      bytes_sent=sent, hot_keys=hot)


def _stats(**settings: object) -> QueryStats:
    """8 scan tasks of 1 s (1M rows, 1 GB sent each), then 8 final tasks: 7 of 1 s and 1M rows,
    one of 10 s and 10M rows holding the hot day. Two workers, one task at a time each."""
    plan = _plan(**settings)
    scan, final = plan.stage(1).name, plan.stage(2).name
    recs = [_record(scan, 1, p, p // 2, 1.0, 1_000_000, sent=10**9) for p in range(8)]
    recs += [_record(final, 2, p, 4 + p // 2 * 1.0, 1.0, 1_000_000,
                     hot=((dt.date(2017, 1, p + 1), 1_000_000),)) for p in range(7)]
    recs.append(_record(final, 2, 7, 4.0 + 3.5, 10.0, 10_000_000,
                        hot=((HOT_DAY, 10_000_000),)))
    return QueryStats("q", 17.5, plan, recs, summarize(recs))


def test_explain_analyze_shows_distributions_straggler_and_verdicts() -> None:
    stats = _stats()
    text = explain_physical(stats.plan, stats)
    final_block = text.split("Stage 1 [")[0]
    assert ("skew: SKEWED (trino_input_skewed (input bytes), spark_skewed_partition (input "
            "bytes), redshift_skew_rows (rows), time_straggler (time))") in final_block
    assert "rows in      min 1,000,000  p50 1,000,000  p99 10,000,000  max 10,000,000  " \
           "max/median 10.00" in final_block
    assert "slowest:  partition 7 on w1: 10.000s, 10,000,000 rows in; " \
           "hot keys: 2017-01-13 (10,000,000)" in final_block
    assert "[SKEWED] redshift_skew_rows (rows): skew_rows 10,000,000 / 1,000,000 = 10.00 >= 4" \
        in final_block
    scan_block = text.split("Stage 1 [")[1]
    assert "skew: balanced" in scan_block and "[ok] trino_input_skewed (input bytes)" in scan_block
    assert "What-if makespan (replayed tasks, measured overheads): W=2 " in text


def test_the_query_settings_move_the_spark_verdict() -> None:
    # EXPLAIN ANALYZE judges the tasks against the threshold the query was planned with.
    default = explain_physical(_stats().plan, _stats())
    assert "268,435,456" in default
    stats = _stats(**{"metrics.spark_skew_threshold_bytes": 1000})
    text = explain_physical(stats.plan, stats)
    assert "max(5 x median" in text and ", 1,000)" in text and "268,435,456" not in text


def test_stats_skew_and_predict_have_known_answers() -> None:
    stats = _stats()
    skew = stats.skew()
    assert skew[2].skewed and not skew[1].skewed
    assert skew[2].rows.max_over_median == pytest.approx(10.0)
    assert stats.stage_deps == {1: (), 2: (1,)}
    assert stats.threads_per_worker == 1
    exact = {"task_overhead_s": 0.0, "fixed_overhead_s": 0.0, "bandwidth_bytes_per_s": 1e30}
    # One worker: everything in sequence. 64 workers: each stage takes its longest task.
    assert stats.predict(1, **exact).makespan == pytest.approx(8 + 17)
    assert stats.predict(64, **exact).makespan == pytest.approx(1 + 10)
    # Two workers, LPT: scan 4 s; final: the 10 s task on one worker, seven 1 s on the other.
    assert stats.predict(2, **exact).makespan == pytest.approx(4 + 10)
    assert set(stats.predict_many()) == {2, 8, 32, 128}
