"""ValuesExec: rows written in the query (VALUES, SELECT without FROM), one task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from mpp.logical.expr import Expr
from mpp.logical.nodes import Field
from mpp.physical.distribution import Partitioning, Single
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.operators.rowwise import evaluate_column
from mpp.storage.base import rows_only


def _array(expr: Expr, one: pa.Table) -> pa.Array:
    value = evaluate_column(expr, one)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


@dataclass(frozen=True, slots=True)
class ValuesExec(PhysicalOp):
    """Produces ``rows`` (constant expressions, already of the schema's types) in one task.

    A source like a scan, but of one partition: its stage has one task unless a union puts it
    beside other inputs. Zero columns and one row is ``SELECT 1``'s source (the Project above
    computes the select list).
    """

    word: ClassVar[str] = "values"
    rows: tuple[tuple[Expr, ...], ...]
    schema: tuple[Field, ...]

    def output_partitioning(self) -> Partitioning:
        return Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        if not self.schema:
            return rows_only(len(self.rows))
        one = rows_only(1)  # what each row's constant expressions are evaluated over
        columns = [pa.concat_arrays([_array(row[i], one).cast(f.dtype) for row in self.rows])
                   for i, f in enumerate(self.schema)]
        out = pa.table(columns, names=[f.name for f in self.schema])
        tctx.rows_in += out.num_rows
        return out

    def explain_line(self) -> str:
        cols = ", ".join(f.name for f in self.schema) or "no columns"
        return f"ValuesExec: {len(self.rows)} row{'s' if len(self.rows) != 1 else ''} [{cols}]"
