"""The hash-join kernel builds on the smaller input and keeps join semantics either way."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mpp.logical.expr import Call, Column
from mpp.logical.nodes import JoinKind, JoinStrategy
from mpp.physical.operators.base import TaskContext
from mpp.physical.operators.join import HashJoinExec
from mpp.physical.operators.nested_loop import NestedLoopJoinExec
from tests.compare import assert_same_rows
from tests.rows_op import Rows as _Rows


def _tables(n_left: int, n_right: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(7)
    lk = rng.integers(0, 50, n_left).astype(object)
    lk[::7] = None  # NULL keys never match
    rk = rng.integers(0, 60, n_right).astype(object)
    rk[::11] = None
    left = pa.table({"a.k": pa.array(list(lk), pa.int64()), "a.v": np.arange(n_left)})
    right = pa.table({"b.k": pa.array(list(rk), pa.int64()), "b.w": np.arange(n_right) * 10})
    return left, right


@pytest.mark.parametrize("kind", [JoinKind.INNER, JoinKind.LEFT])
@pytest.mark.parametrize("sizes", [(40, 400), (400, 40)])  # build on the right, then swapped
def test_join_equals_duckdb_whichever_side_is_smaller(kind: JoinKind,
                                                      sizes: tuple[int, int]) -> None:
    left, right = _tables(*sizes)
    op = HashJoinExec(_Rows(left), _Rows(right), kind, ("a.k",), ("b.k",),
                      JoinStrategy.BROADCAST)
    out = op.execute(TaskContext(partition=0))
    assert out.column_names == ["a.k", "a.v", "b.k", "b.w"]
    how = "JOIN" if kind is JoinKind.INNER else "LEFT JOIN"
    con = duckdb.connect()
    con.register("left_t", left)
    con.register("right_t", right)
    expected = con.sql(
        f'SELECT l."a.k", l."a.v", r."b.k", r."b.w" FROM left_t l {how} right_t r '
        'ON l."a.k" = r."b.k"').to_arrow_table()
    assert_same_rows(out, expected)


_SQL_KIND = {JoinKind.INNER: "JOIN", JoinKind.LEFT: "LEFT JOIN", JoinKind.RIGHT: "RIGHT JOIN",
             JoinKind.FULL: "FULL JOIN", JoinKind.SEMI: "SEMI JOIN", JoinKind.ANTI: "ANTI JOIN"}


def _columns(kind: JoinKind) -> list[str]:
    """The join's output: a semi or anti join has the left columns only."""
    return ["a.k", "a.v"] + ([] if kind.filters_left else ["b.k", "b.w"])


def _duckdb(left: pa.Table, right: pa.Table, kind: JoinKind, on: str) -> pa.Table:
    con = duckdb.connect()
    con.register("left_t", left)
    con.register("right_t", right)
    cols = ", ".join(("l." if c.startswith("a.") else "r.") + f'"{c}"' for c in _columns(kind))
    return con.sql(f"SELECT {cols} FROM left_t l {_SQL_KIND[kind]} "
                   f"right_t r ON {on}").to_arrow_table()


_RESIDUAL = Call(">", (Column("a.v", pa.int64()), Column("b.w", pa.int64())), pa.bool_())


@pytest.mark.parametrize("kind", list(JoinKind))
@pytest.mark.parametrize("sizes", [(40, 400), (400, 40)])
@pytest.mark.parametrize("residual", [None, _RESIDUAL])
def test_outer_joins_with_and_without_residual_equal_duckdb(kind: JoinKind, sizes: tuple[int, int],
                                                            residual: Call | None) -> None:
    left, right = _tables(*sizes)
    op = HashJoinExec(_Rows(left), _Rows(right), kind, ("a.k",), ("b.k",),
                      JoinStrategy.PARTITIONED, residual)
    out = op.execute(TaskContext(partition=0))
    assert out.column_names == _columns(kind)
    on = 'l."a.k" = r."b.k"' + (' AND l."a.v" > r."b.w"' if residual is not None else "")
    assert_same_rows(out, _duckdb(left, right, kind, on))


@pytest.mark.parametrize("kind", list(JoinKind))
@pytest.mark.parametrize("residual", [None, _RESIDUAL])
def test_nested_loop_join_equals_duckdb(kind: JoinKind, residual: Call | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mpp.physical.operators import nested_loop

    monkeypatch.setattr(nested_loop, "PAIRS_PER_CHUNK", 1000)  # several chunks of pairs
    left, right = _tables(60, 70)
    strategy = (JoinStrategy.BROADCAST if kind in (JoinKind.INNER, JoinKind.LEFT,
                                                   JoinKind.SEMI, JoinKind.ANTI)
                else JoinStrategy.SINGLE)
    op = NestedLoopJoinExec(_Rows(left), _Rows(right), kind, strategy, residual)
    out = op.execute(TaskContext(partition=0))
    assert out.column_names == _columns(kind)
    on = 'l."a.v" > r."b.w"' if residual is not None else "TRUE"
    assert_same_rows(out, _duckdb(left, right, kind, on))
    empty = NestedLoopJoinExec(_Rows(left.slice(0, 0)), _Rows(right), kind, strategy, residual)
    assert_same_rows(empty.execute(TaskContext(partition=0)),
                     _duckdb(left.slice(0, 0), right, kind, on))


@pytest.mark.parametrize("sizes", [(40, 400), (400, 40)])  # build on the right, then swapped
@pytest.mark.parametrize("right_rows", ["with NULL", "without NULL", "empty"])
def test_null_aware_anti_join_is_not_in(sizes: tuple[int, int], right_rows: str) -> None:
    """NOT IN: a NULL in the subquery keeps no row; a NULL probe key is kept only when the
    subquery is empty (DuckDB's NOT IN agrees)."""
    left, right = _tables(*sizes)
    if right_rows != "with NULL":
        right = right.filter(pc.is_valid(right["b.k"]))
    if right_rows == "empty":
        right = right.slice(0, 0)
    op = HashJoinExec(_Rows(left), _Rows(right), JoinKind.ANTI, ("a.k",), ("b.k",),
                      JoinStrategy.BROADCAST, null_aware=True)
    out = op.execute(TaskContext(partition=0))
    con = duckdb.connect()
    con.register("left_t", left)
    con.register("right_t", right)
    expected = con.sql('SELECT "a.k", "a.v" FROM left_t WHERE "a.k" NOT IN '
                       '(SELECT "b.k" FROM right_t)').to_arrow_table()
    assert_same_rows(out, expected)
    if right_rows != "without NULL":  # no row at all; every row, NULL keys too
        assert out.num_rows == (0 if right_rows == "with NULL" else left.num_rows)
@pytest.mark.parametrize("kind", [JoinKind.INNER, JoinKind.LEFT, JoinKind.RIGHT, JoinKind.FULL])
@pytest.mark.parametrize("sizes", [(40, 400), (400, 40)])
def test_join_carries_null_typed_columns(kind: JoinKind, sizes: tuple[int, int]) -> None:
    """A column of type null (SELECT NULL AS c in a subquery) on either side comes through the
    join as NULLs (Acero refuses it: 'Data type null is not supported in join non-key
    field')."""
    left, right = _tables(*sizes)
    left = left.append_column("a.n", pa.nulls(left.num_rows))
    right = right.append_column("b.n", pa.nulls(right.num_rows))
    plain = HashJoinExec(_Rows(left.drop_columns(["a.n"])), _Rows(right.drop_columns(["b.n"])),
                         kind, ("a.k",), ("b.k",), JoinStrategy.PARTITIONED)
    op = HashJoinExec(_Rows(left), _Rows(right), kind, ("a.k",), ("b.k",),
                      JoinStrategy.PARTITIONED)
    out = op.execute(TaskContext(partition=0))
    assert out.column_names == ["a.k", "a.v", "a.n", "b.k", "b.w", "b.n"]
    assert out.column("a.n").null_count == out.column("b.n").null_count == out.num_rows
    assert_same_rows(out.drop_columns(["a.n", "b.n"]), plain.execute(TaskContext(partition=0)))
