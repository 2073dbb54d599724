"""Straggler attribution: a task names the key values it really held most of."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pyarrow.compute as pc

from mpp.metrics.records import TaskRecord, format_key
from mpp.physical.operators.base import HOT_KEY_SAMPLE, TaskContext


def test_hot_key_found_when_input_is_ordered() -> None:
    # Ordered input (as logs land): the first HOT_KEY_SAMPLE rows hold only cold keys.
    cold = [k for k in range(1, 5) for _ in range(HOT_KEY_SAMPLE // 2)]
    hot = [13] * (HOT_KEY_SAMPLE * 4)
    table = pa.table({"k": pa.array(cold + hot, pa.int64())})
    tctx = TaskContext(partition=0)
    tctx.note_keys(table, ("k",))
    truth = pc.value_counts(table["k"]).to_pylist()
    top = max(truth, key=lambda r: r["counts"])
    assert tctx.hot_keys[0][0] == top["values"]
    # The scaled estimate is within 5% of the true count.
    assert abs(tctx.hot_keys[0][1] - top["counts"]) <= 0.05 * top["counts"]


def test_hot_keys_of_several_columns_read_as_sql_values() -> None:
    # Keys of two columns are tuples; EXPLAIN ANALYZE, reports and JSON show their values as
    # SQL prints them, not Python reprs (datetime.date(2017, 1, 13)).
    table = pa.table({"date": pa.array([datetime.date(2017, 1, 13)] * 10, pa.date32()),
                      "user_id": pa.array([7] * 6 + [None] * 4, pa.int64())})
    tctx = TaskContext(partition=0)
    tctx.note_keys(table, ("date", "user_id"))
    shown = [format_key(k) for k, _ in tctx.hot_keys]
    assert shown == ["(2017-01-13, 7)", "(2017-01-13, NULL)"]
    record = TaskRecord("q", 1, "stage1-x", "k", 0, "w", 0.0, 1.0, hot_keys=tctx.hot_keys)
    assert record.to_dict()["hot_keys"] == [["(2017-01-13, 7)", 6], ["(2017-01-13, NULL)", 4]]


def test_integer_hot_keys_equal_the_arrow_count_of_the_same_sample() -> None:
    """One integer key is counted in numpy, a nullable one by Arrow: both name the sample's
    most frequent values with their scaled counts."""
    values = [7] * 3000 + [2] * 2000 + [-5] * 1000 + list(range(100, 1100))
    step = len(values) // HOT_KEY_SAMPLE
    sampled = pc.value_counts(pa.array(values[::step])).to_pylist()
    expected = sorted(((r["values"], round(r["counts"] * len(values) / len(values[::step])))
                       for r in sampled), key=lambda kv: -kv[1])[:3]
    for column in (pa.array(values, pa.int32()), pa.array(values + [None], pa.int64())):
        tctx = TaskContext(partition=0)
        tctx.note_keys(pa.table({"k": column}), ("k",))
        if column.null_count:  # (one more row: the sample and scale shift a little)
            assert [k for k, _ in tctx.hot_keys] == [k for k, _ in expected]
        else:
            assert list(tctx.hot_keys) == expected
