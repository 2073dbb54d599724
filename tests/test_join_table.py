"""A broadcast join's build side is built once per worker (JoinTable) and probed by every task:
results equal DuckDB for every key type, NULL / NaN / -0.0 keys, duplicate build keys, several
keys and each join kind; a worker's tasks share one build, a query's tables go when it ends;
a partial aggregate grouped by build-side columns runs per build row and equals DuckDB."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import mpp.execution.tasks  # noqa: F401  (what workers import: registers the eviction)
from mpp.logical.expr import AggFunc, AggregateCall, Call, Column
from mpp.logical.nodes import JoinKind, JoinStrategy
from mpp.metrics.collector import drain
from mpp.physical import join_table
from mpp.physical.aggregates import AggregateKernel
from mpp.physical.operators.aggregate import AggregateMode, HashAggregateExec
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.operators.exchange import ExchangeExec, ExchangeKind
from mpp.physical.operators.join import HashJoinExec
from mpp.physical.planner import _by_build_row
from tests.compare import assert_same_rows
from tests.rows_op import Rows as _Rows


def _broadcast(table: pa.Table) -> ExchangeExec:
    return ExchangeExec(_Rows(table), ExchangeKind.BROADCAST, id=1)


def _join(left: pa.Table, right: pa.Table, kind: JoinKind, lkeys: tuple[str, ...],
          rkeys: tuple[str, ...], **kw: object) -> HashJoinExec:
    return HashJoinExec(_Rows(left), _broadcast(right), kind, lkeys, rkeys,
                        JoinStrategy.BROADCAST, **kw)  # type: ignore[arg-type]


def _run(op: PhysicalOp, right: pa.Table, query_id: str = "q-test", partition: int = 0
         ) -> tuple[pa.Table, TaskContext]:
    tctx = TaskContext(partition, inputs={1: right}, query_id=query_id)
    return op.execute(tctx), tctx


def _duckdb(sql: str, left: pa.Table, right: pa.Table) -> pa.Table:
    con = duckdb.connect()
    con.register("l", left)
    con.register("r", right)
    return con.sql(sql).to_arrow_table()


_RNG = np.random.default_rng(11)


def _with_nulls(values: list[object], every: int) -> list[object]:
    return [None if i % every == 0 else v for i, v in enumerate(values)]


def _key_cases() -> dict[str, tuple[pa.Array, pa.Array]]:
    """Left and right key columns per case (NULLs on both sides, keys on one side only)."""
    lints = [int(x) for x in _RNG.integers(0, 60, 300)]
    rints = [int(x) for x in _RNG.integers(0, 50, 80)]
    base = dt.datetime(2017, 1, 1)
    return {
        "int64 dense, duplicates": (pa.array(_with_nulls(lints, 7), pa.int64()),
                                    pa.array(_with_nulls(rints, 11), pa.int64())),
        "int64 vs int32": (pa.array(_with_nulls(lints, 7), pa.int64()),
                           pa.array(_with_nulls(rints, 11), pa.int32())),
        "sparse int64": (pa.array([v * 10**12 - 3 for v in lints], pa.int64()),
                         pa.array([v * 10**12 - 3 for v in rints], pa.int64())),
        "text": (pa.array(_with_nulls([f"k{v}" for v in lints], 5)),
                 pa.array(_with_nulls([f"k{v}" for v in rints], 9))),
        "float, -0.0 and NaN": (
            pa.array([[-0.0, 0.0, float("nan"), 1.5, None][v % 5] for v in lints]),
            pa.array([[0.0, float("nan"), 1.5, 2.5][v % 4] for v in rints])),
        "timestamp": (pa.array([base + dt.timedelta(hours=v) for v in lints]),
                      pa.array([base + dt.timedelta(hours=v) for v in rints])),
        "date": (pa.array([(base + dt.timedelta(days=v)).date() for v in lints]),
                 pa.array([(base + dt.timedelta(days=v)).date() for v in rints])),
    }


CASES = _key_cases()


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _unique_key_cases() -> dict[str, tuple[pa.Array, pa.Array]]:
    """Probe and build key columns where every build key is unique (the one-lookup path of
    ``probe_groups``): probe keys beyond the build range, NULLs on both sides."""
    ints = [int(x) for x in _RNG.integers(-5, 70, 400)]
    build = list(range(0, 60))
    return {
        "dense int64": (pa.array(_with_nulls(ints, 7), pa.int64()),
                        pa.array(_with_nulls(build, 13), pa.int64())),
        "int32 probe, int64 build": (pa.array(_with_nulls(ints, 7), pa.int32()),
                                     pa.array(_with_nulls(build, 13), pa.int64())),
        "int64 probe, int32 build": (pa.array(_with_nulls(ints, 7), pa.int64()),
                                     pa.array(build, pa.int32())),
        "uint32 probe, int16 build": (pa.array([abs(v) for v in ints], pa.uint32()),
                                      pa.array(build, pa.int16())),
        "negative keys": (pa.array([v - 40 for v in ints], pa.int64()),
                          pa.array([v - 30 for v in build], pa.int64())),
        "unique sparse int64": (pa.array([v * 10**12 - 3 for v in ints], pa.int64()),
                         pa.array([v * 10**12 - 3 for v in build], pa.int64())),
        # Subtracting the build range's start wraps around int64 for these probe keys.
        "int64 extremes, high range": (
            pa.array([_I64_MIN, _I64_MIN + 3, _I64_MAX, 0, -1] + [10**18 + v for v in ints]),
            pa.array([10**18 + v for v in build], pa.int64())),
        "int64 extremes, range at the minimum": (
            pa.array([_I64_MIN, _I64_MIN + 3, _I64_MAX, _I64_MAX - 1, 0] + ints),
            pa.array([_I64_MIN + v for v in build], pa.int64())),
        "unique date": (pa.array([dt.date(2017, 1, 1) + dt.timedelta(days=v) for v in ints]),
                 pa.array([dt.date(2017, 1, 1) + dt.timedelta(days=v) for v in build])),
        "unique text": (pa.array(_with_nulls([f"k{v}" for v in ints], 5)),
                 pa.array([f"k{v}" for v in build])),
    }


UNIQUE_CASES = _unique_key_cases()
ALL_CASES = {**CASES, **UNIQUE_CASES}
_KINDS = {JoinKind.INNER: "JOIN", JoinKind.LEFT: "LEFT JOIN"}


@pytest.mark.parametrize("case", list(ALL_CASES))
@pytest.mark.parametrize("kind", [JoinKind.INNER, JoinKind.LEFT, JoinKind.SEMI,
                                  JoinKind.ANTI])
def test_shared_table_joins_equal_duckdb(case: str, kind: JoinKind) -> None:
    lk, rk = ALL_CASES[case]
    left = pa.table({"a.k": lk, "a.v": np.arange(len(lk))})
    right = pa.table({"b.k": rk, "b.w": np.arange(len(rk)) * 10})
    op = _join(left, right, kind, ("a.k",), ("b.k",))
    assert op.tabled
    out, tctx = _run(op, right, f"q-{case}-{kind.value}")
    assert tctx.join_builds == 1
    on = 'l."a.k" = r."b.k" AND NOT isnan(l."a.k")' if "float" in case else 'l."a.k" = r."b.k"'
    if kind.filters_left:
        exists = "EXISTS" if kind is JoinKind.SEMI else "NOT EXISTS"
        sql = f'SELECT * FROM l WHERE {exists} (SELECT 1 FROM r WHERE {on})'
    else:
        sql = f'SELECT l.*, r.* FROM l {_KINDS[kind]} r ON {on}'
    assert_same_rows(out, _duckdb(sql, left, right))


def test_several_keys_and_a_residual_equal_duckdb() -> None:
    lk, rk = CASES["int64 dense, duplicates"]
    ls, rs = CASES["text"]
    left = pa.table({"a.k": lk, "a.s": ls, "a.v": np.arange(len(lk))})
    right = pa.table({"b.k": rk, "b.s": rs, "b.w": np.arange(len(rk))})
    for kind in (JoinKind.INNER, JoinKind.LEFT):
        op = _join(left, right, kind, ("a.k", "a.s"), ("b.k", "b.s"))
        out, _ = _run(op, right, f"q-multi-{kind.value}")
        sql = f'SELECT l.*, r.* FROM l {_KINDS[kind]} r ON l."a.k" = r."b.k" AND l."a.s" = r."b.s"'
        assert_same_rows(out, _duckdb(sql, left, right))
    residual = Call("<", (Column("b.w", pa.int64()), Column("a.v", pa.int64())), pa.bool_())
    op = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",), residual=residual)
    out, _ = _run(op, right, "q-residual")
    sql = 'SELECT l.*, r.* FROM l JOIN r ON l."a.k" = r."b.k" AND r."b.w" < l."a.v"'
    assert_same_rows(out, _duckdb(sql, left, right))


def test_a_left_join_with_a_residual_runs_through_acero_per_task() -> None:
    left = pa.table({"a.k": [1, 2], "a.v": [1, 2]})
    right = pa.table({"b.k": [1, 2], "b.w": [5, 0]})
    residual = Call("<", (Column("b.w", pa.int64()), Column("a.v", pa.int64())), pa.bool_())
    op = _join(left, right, JoinKind.LEFT, ("a.k",), ("b.k",), residual=residual)
    assert not op.tabled  # an outer join's residual needs the unmatched rows per left row
    out, _ = _run(op, right, "q-left-residual")
    sql = 'SELECT l.*, r.* FROM l LEFT JOIN r ON l."a.k" = r."b.k" AND r."b.w" < l."a.v"'
    assert_same_rows(out, _duckdb(sql, left, right))


def test_a_workers_tasks_share_one_build_until_the_query_is_drained() -> None:
    lk, rk = CASES["int64 dense, duplicates"]
    left = pa.table({"a.k": lk, "a.v": np.arange(len(lk))})
    right = pa.table({"b.k": rk, "b.w": np.arange(len(rk))})
    op = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",))
    runs = [_run(op, right, "q-shared", partition=i)[1] for i in range(4)]
    assert [t.join_builds for t in runs] == [1, 0, 0, 0]
    assert [t.join_rows[1] for t in runs] == [right.num_rows, 0, 0, 0]  # counted once
    assert all(t.join_rows[0] == left.num_rows for t in runs)
    drain("q-shared")  # the session drains every worker's records when the query ends
    assert not [k for k in join_table._TABLES if k[0] == "q-shared"]
    assert _run(op, right, "q-shared")[1].join_builds == 1  # built again: a new query


def test_narrowed_join_takes_only_the_columns_read() -> None:
    lk, rk = CASES["int64 dense, duplicates"]
    left = pa.table({"a.k": lk, "a.v": np.arange(len(lk))})
    right = pa.table({"b.k": rk, "b.w": np.arange(len(rk))})
    op = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",)).narrowed({"b.w"})
    assert [f.name for f in op.schema] == ["b.w"]
    out, _ = _run(op, right, "q-narrow")
    assert out.column_names == ["b.w"]
    assert_same_rows(out, _duckdb('SELECT r."b.w" FROM l JOIN r ON l."a.k" = r."b.k"',
                                  left, right))


@pytest.mark.parametrize("case", ["int64 dense, duplicates", "sparse int64", "text",
                                  *UNIQUE_CASES])
def test_partial_aggregate_by_build_row_equals_duckdb(case: str) -> None:
    """Duplicate build keys pair a probe row with several build rows; unique ones (the
    UNIQUE_CASES) give each probe row its group in one lookup unless a build-side column is
    aggregated too."""
    lk, rk = ALL_CASES[case]
    left = pa.table({"a.k": lk, "a.v": _RNG.integers(0, 1000, len(lk))})
    right = pa.table({"b.k": rk, "b.g": pa.array(_with_nulls(
        [f"g{i % 4}" for i in range(len(rk))], 6)), "b.w": np.arange(len(rk))})
    join = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",))
    i64 = pa.int64()
    calls = (AggregateCall(AggFunc.COUNT_STAR, None, False, i64),
             AggregateCall(AggFunc.SUM, Column("a.v", i64), False, i64),
             AggregateCall(AggFunc.MAX, Column("b.w", i64), False, i64))
    for kernel in (AggregateKernel(("b.g",), calls[:1], ("n",)),
                   AggregateKernel(("b.g",), calls[:2], ("n", "s")),  # probe columns only
                   AggregateKernel(("b.g",), (calls[0], calls[2]), ("n", "m")),  # build only
                   AggregateKernel(("b.g",), calls, ("n", "s", "m"))):
        assert _by_build_row(join, kernel)
        partial = HashAggregateExec(join, AggregateMode.PARTIAL, kernel,
                                    kernel.partial_schema(join.schema), by_build_row=True)
        rows, tctx = _run(partial, right, f"q-agg-{case}-{kernel.names}")
        assert tctx.join_builds == 1
        out = kernel.final(rows)
        sql = ('SELECT r."b.g", count(*), sum(l."a.v"), max(r."b.w") FROM l JOIN r '
               'ON l."a.k" = r."b.k" GROUP BY 1')
        expected = _duckdb(sql, left, right)
        picked = [0] + [1 + calls.index(c) for c in kernel.calls]
        assert_same_rows(out, expected.select(picked))
    two = AggregateKernel(("b.g", "b.w"), calls[:2], ("n", "s"))  # several keys
    partial = HashAggregateExec(join, AggregateMode.PARTIAL, two,
                                two.partial_schema(join.schema), by_build_row=True)
    out = two.final(_run(partial, right, f"q-agg2-{case}")[0])
    sql = ('SELECT r."b.g", r."b.w", count(*), sum(l."a.v") FROM l JOIN r '
           'ON l."a.k" = r."b.k" GROUP BY 1, 2')
    assert_same_rows(out, _duckdb(sql, left, right))


def test_by_build_row_only_for_build_side_keys_of_an_inner_shared_join() -> None:
    lk, rk = CASES["int64 dense, duplicates"]
    left = pa.table({"a.k": lk, "a.v": np.arange(len(lk))})
    right = pa.table({"b.k": rk, "b.w": np.arange(len(rk))})
    count = (AggregateCall(AggFunc.COUNT_STAR, None, False, pa.int64()),)
    inner = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",))
    assert _by_build_row(inner, AggregateKernel(("b.w",), count, ("n",)))
    assert not _by_build_row(inner, AggregateKernel(("a.v",), count, ("n",)))  # probe side
    assert not _by_build_row(inner, AggregateKernel((), count, ("n",)))  # nothing to group
    left_join = _join(left, right, JoinKind.LEFT, ("a.k",), ("b.k",))
    assert not _by_build_row(left_join, AggregateKernel(("b.w",), count, ("n",)))
    partitioned = HashJoinExec(_Rows(left), _Rows(right), JoinKind.INNER, ("a.k",), ("b.k",),
                               JoinStrategy.PARTITIONED)
    assert not _by_build_row(partitioned, AggregateKernel(("b.w",), count, ("n",)))


def test_every_probe_row_matching_one_build_row_keeps_them_in_order() -> None:
    """A fact table over its dimension's primary key: the probe rows are taken as they are."""
    right = pa.table({"b.k": pa.array(np.arange(100, 0, -1)), "b.g": [f"g{i % 3}" for i in
                                                                      range(100)]})
    left = pa.table({"a.k": pa.array(_RNG.integers(1, 101, 500)), "a.v": np.arange(500)})
    for kind in (JoinKind.INNER, JoinKind.LEFT):
        out, _ = _run(_join(left, right, kind, ("a.k",), ("b.k",)), right, f"q-once-{kind.value}")
        assert out["a.v"].to_pylist() == list(range(500))
        sql = f'SELECT l.*, r.* FROM l {_KINDS[kind]} r ON l."a.k" = r."b.k"'
        assert_same_rows(out, _duckdb(sql, left, right))
    join = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",))
    kernel = AggregateKernel(("b.g",), (AggregateCall(AggFunc.SUM, Column("a.v", pa.int64()),
                                                      False, pa.int64()),), ("s",))
    partial = HashAggregateExec(join, AggregateMode.PARTIAL, kernel,
                                kernel.partial_schema(join.schema), by_build_row=True)
    out = kernel.final(_run(partial, right, "q-once-agg")[0])
    sql = 'SELECT r."b.g", sum(l."a.v") FROM l JOIN r ON l."a.k" = r."b.k" GROUP BY 1'
    assert_same_rows(out, _duckdb(sql, left, right))


def test_partial_aggregate_by_build_row_applies_the_residual() -> None:
    """``ON a.k = b.k AND a.v > b.w`` grouped by a build-side column: a pair failing the rest
    of the ON condition is not counted (the fused path once counted every key match)."""
    lk, rk = CASES["int64 dense, duplicates"]
    left = pa.table({"a.k": lk, "a.v": _RNG.integers(0, 1000, len(lk))})
    right = pa.table({"b.k": rk, "b.g": [f"g{i % 4}" for i in range(len(rk))],
                      "b.w": _RNG.integers(0, 1000, len(rk))})
    residual = Call(">", (Column("a.v", pa.int64()), Column("b.w", pa.int64())), pa.bool_())
    join = _join(left, right, JoinKind.INNER, ("a.k",), ("b.k",), residual=residual)
    kernel = AggregateKernel(("b.g",), (AggregateCall(AggFunc.COUNT_STAR, None, False,
                                                      pa.int64()),), ("n",))
    assert _by_build_row(join, kernel)
    partial = HashAggregateExec(join, AggregateMode.PARTIAL, kernel,
                                kernel.partial_schema(join.schema), by_build_row=True)
    out = kernel.final(_run(partial, right, "q-agg-residual")[0])
    sql = ('SELECT r."b.g", count(*) FROM l JOIN r ON l."a.k" = r."b.k" AND l."a.v" > r."b.w" '
           'GROUP BY 1')
    assert_same_rows(out, _duckdb(sql, left, right))


def test_probe_groups_is_for_unique_build_keys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build key with several rows gives a probe row several pairs: no one-lookup path.
    A large dimension's lookup (int32) finds the same groups as a small one's (intp)."""
    for lk, rk in UNIQUE_CASES.values():
        build, probe = pa.table({"b.k": rk, "b.g": rk}), pa.table({"a.k": lk})
        table = join_table.build_table(build, ("b.k",))
        assert table is not None
        small = table.probe_groups(probe, ("a.k",), ("b.g",))
        assert small is not None and small.dtype == np.intp
        with monkeypatch.context() as m:
            m.setattr(join_table, "_SMALL_LOOKUP", 0)
            large = join_table.build_table(build, ("b.k",))
            assert large is not None
            found = large.probe_groups(probe, ("a.k",), ("b.g",))
        assert found is not None and found.dtype == np.int32
        assert found.tolist() == small.tolist()
    right = pa.table({"b.k": [1, 1, 2], "b.g": ["x", "y", "x"]})
    table = join_table.build_table(right, ("b.k",))
    assert table is not None
    assert table.probe_groups(pa.table({"a.k": [1, 2]}), ("a.k",), ("b.g",)) is None
    empty = join_table.build_table(right.slice(0, 0), ("b.k",))
    assert empty is not None  # an empty build side matches nothing
    found = empty.probe_groups(pa.table({"a.k": [0, 1, None]}), ("a.k",), ("b.g",))
    assert found is not None and found.tolist() == [-1, -1, -1]
