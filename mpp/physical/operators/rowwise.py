"""Row-wise operators: FilterExec and ProjectExec (pipelined; they never move data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from mpp.logical.expr import Column, Expr
from mpp.logical.nodes import Field
from mpp.physical.distribution import Arbitrary, Hash, Partitioning
from mpp.physical.operators.base import PassThroughOp, PhysicalOp, TaskContext, UnaryOp


def evaluate_column(expr: Expr, table: pa.Table, cache: dict[Expr, Any] | None = None
                    ) -> pa.Array | pa.ChunkedArray:
    """Evaluate ``expr`` over ``table`` as a column of ``table.num_rows`` values (``cache``:
    values of calls shared with other expressions over the same table, see ``evaluate``)."""
    from mpp.logical.evaluate import evaluate  # the SQL front end's vectorised evaluator

    value = evaluate(expr, table, cache)
    if isinstance(value, pa.Scalar):  # a constant: repeat it
        nulls = pa.nulls(table.num_rows, value.type)
        return nulls if not value.is_valid else nulls.fill_null(value)
    return value


@dataclass(frozen=True, slots=True)
class FilterExec(PassThroughOp):
    """Discards rows for which ``predicate`` is not true (false or NULL)."""

    word: ClassVar[str] = "filter"
    input: PhysicalOp
    predicate: Expr

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self._filter(self.input.execute(tctx))

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        for batch in self.input.execute_batches(tctx):
            yield self._filter(batch)

    def _filter(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        return table.filter(evaluate_column(self.predicate, table))

    def explain_line(self) -> str:
        return f"FilterExec: {self.predicate}"


@dataclass(frozen=True, slots=True)
class ProjectExec(UnaryOp):
    """Computes ``exprs`` per row, naming the results ``names``."""

    word: ClassVar[str] = "project"
    input: PhysicalOp
    exprs: tuple[Expr, ...]
    names: tuple[str, ...]

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(Field(n, e.dtype) for n, e in zip(self.names, self.exprs, strict=True))

    def output_partitioning(self) -> Partitioning:
        # Hash partitioning survives when every key is passed through (possibly renamed).
        part = self.input.output_partitioning()
        if not isinstance(part, Hash):
            return part
        renamed = {e.name: n for e, n in zip(self.exprs, self.names, strict=True)
                   if isinstance(e, Column)}
        if all(k in renamed for k in part.keys):
            return Hash(tuple(renamed[k] for k in part.keys), part.n)
        return Arbitrary(part.n)

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self._project(self.input.execute(tctx))

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        for batch in self.input.execute_batches(tctx):
            yield self._project(batch)

    def _project(self, table: pa.Table) -> pa.Table:
        shared: dict[Expr, Any] = {}  # a subexpression written twice is computed once
        cols = [table[e.name] if isinstance(e, Column) else evaluate_column(e, table, shared)
                for e in self.exprs]
        if not cols:
            return table.select([])
        return pa.table(cols, names=list(self.names))

    def explain_line(self) -> str:
        items = [str(e) if isinstance(e, Column) and e.name == n else f"{e} AS {n}"
                 for e, n in zip(self.exprs, self.names, strict=True)]
        return "ProjectExec: " + ", ".join(items)
