"""The hash-join kernel builds on the smaller input and keeps join semantics either way."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mpp.logical.nodes import Field, JoinKind, JoinStrategy
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.operators.join import HashJoinExec
from tests.compare import assert_same_rows


@dataclass(frozen=True)
class _Rows(PhysicalOp):
    """A leaf that yields a fixed table (test stand-in for a scan)."""

    table: pa.Table

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(Field(f.name, f.type) for f in self.table.schema)

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self.table


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
