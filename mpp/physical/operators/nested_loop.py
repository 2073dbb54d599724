"""NestedLoopJoinExec: a join without equality keys (CROSS JOIN, ON with only non-equalities).

With no key to hash on, every pair of rows is a candidate: the task forms the pairs (in chunks
of at most :data:`PAIRS_PER_CHUNK`) and keeps those the residual accepts. BROADCAST (inner and
left joins): the right side is copied to every task of the left side, as Trino replicates the
build side of a cross join. SINGLE (right and full joins, which must emit the unmatched right
rows exactly once): both sides in one task, gathered there (a side that is one partition
already, such as a single-fragment scan, is read in that task directly).

:func:`with_unmatched` is shared with ``HashJoinExec``: an outer join is its matched pairs plus
the rows of the preserved side(s) that no pair uses, padded with NULLs. A pair failing the
residual is not a match, so its outer row reappears NULL-extended (ON semantics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import Expr, Literal
from mpp.logical.nodes import Field, JoinKind, JoinStrategy
from mpp.physical.distribution import (
    BroadcastDistribution,
    Distribution,
    Partitioning,
    Single,
    SinglePartition,
    UnspecifiedDistribution,
)
from mpp.physical.operators.base import JoinOp, PhysicalOp, TaskContext, concat, empty_table
from mpp.physical.operators.rowwise import evaluate_column

LEFT_ID, RIGHT_ID = "__mpp_left_row", "__mpp_right_row"
PAIRS_PER_CHUNK = 1 << 20  # pairs formed at once: bounds a task's memory, not its work


def with_row_ids(left: pa.Table, right: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Both inputs with a row-number column (``LEFT_ID`` / ``RIGHT_ID``)."""
    return (left.append_column(LEFT_ID, pa.array(np.arange(left.num_rows, dtype=np.int64))),
            right.append_column(RIGHT_ID, pa.array(np.arange(right.num_rows, dtype=np.int64))))


def _unmatched(side: pa.Table, ids: str, matched: pa.Table, others: tuple[Field, ...],
               ) -> pa.Table:
    """Rows of ``side`` whose id no matched pair uses, with NULL ``others`` columns."""
    rows = side.filter(pc.invert(pc.is_in(side[ids], matched[ids])))
    nulls = {f.name: pa.nulls(rows.num_rows, f.dtype) for f in others}
    return pa.table({**{n: rows[n] for n in rows.column_names}, **nulls})


def with_unmatched(kind: JoinKind, left: pa.Table, right: pa.Table, matched: pa.Table,
                   left_fields: tuple[Field, ...], right_fields: tuple[Field, ...]) -> pa.Table:
    """The join's output: ``matched`` pairs plus the unmatched rows ``kind`` preserves.

    ``left``/``right`` carry the row ids of :func:`with_row_ids`; ``matched`` has every output
    column plus both ids (the pairs that passed keys and residual).
    """
    parts = [matched]
    if kind in (JoinKind.LEFT, JoinKind.FULL):
        parts.append(_unmatched(left, LEFT_ID, matched, right_fields + (Field(RIGHT_ID,
                                                                              pa.int64()),)))
    if kind in (JoinKind.RIGHT, JoinKind.FULL):
        parts.append(_unmatched(right, RIGHT_ID, matched, left_fields + (Field(LEFT_ID,
                                                                              pa.int64()),)))
    names = [f.name for f in left_fields + right_fields]
    out = pa.concat_tables([p.select(names) for p in parts], promote_options="permissive")
    return out


def _pairs(left: pa.Table, right: pa.Table, residual: Expr | None,
           schema: tuple[Field, ...]) -> pa.Table:
    """Every (left, right) pair the residual accepts, with both row ids."""
    names = [f.name for f in schema] + [LEFT_ID, RIGHT_ID]
    never = isinstance(residual, Literal) and residual.value is not True  # ON FALSE / NULL
    if left.num_rows == 0 or right.num_rows == 0 or never:
        return empty_table(schema + (Field(LEFT_ID, pa.int64()), Field(RIGHT_ID, pa.int64())))
    step = max(1, PAIRS_PER_CHUNK // right.num_rows)
    chunks = []
    for start in range(0, left.num_rows, step):
        n = min(step, left.num_rows - start)
        li = pa.array(np.repeat(np.arange(start, start + n), right.num_rows))
        ri = pa.array(np.tile(np.arange(right.num_rows), n))
        lpart, rpart = left.take(li), right.take(ri)
        pairs = pa.table({**{c: lpart[c] for c in lpart.column_names},
                          **{c: rpart[c] for c in rpart.column_names}})
        if residual is not None:
            pairs = pairs.filter(evaluate_column(residual, pairs))
        chunks.append(pairs.select(names))
    return pa.concat_tables(chunks)


@dataclass(frozen=True, slots=True)
class NestedLoopJoinExec(JoinOp):
    """Joins ``left`` and ``right`` on ``residual`` alone (no keys; None: every pair)."""

    word: ClassVar[str] = "loopjoin"
    left: PhysicalOp
    right: PhysicalOp
    kind: JoinKind
    strategy: JoinStrategy
    residual: Expr | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.strategy is JoinStrategy.BROADCAST:
            assert self.kind in (JoinKind.INNER, JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI), \
                "broadcast keeps the left side"
        else:
            assert self.strategy is JoinStrategy.SINGLE, "a keyless join has nothing to hash"

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        if self.strategy is JoinStrategy.BROADCAST:
            return (UnspecifiedDistribution(), BroadcastDistribution())
        return (SinglePartition(), SinglePartition())

    def output_partitioning(self) -> Partitioning:
        if self.strategy is JoinStrategy.BROADCAST:
            return self.left.output_partitioning()
        return Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        left = self.left.execute(tctx)
        right = self.right.execute(tctx)
        tctx.join_rows = (tctx.join_rows[0] + left.num_rows, tctx.join_rows[1] + right.num_rows)
        if self.kind.filters_left:
            return self._filter_left(left, right)
        left, right = with_row_ids(left, right)
        matched = _pairs(left, right, self.residual, self.schema)
        if self.kind is JoinKind.INNER:
            return concat([matched.select([f.name for f in self.schema])], self.schema)
        return with_unmatched(self.kind, left, right, matched, self.left.schema,
                              self.right.schema)

    def _filter_left(self, left: pa.Table, right: pa.Table) -> pa.Table:
        """Semi (anti) join: the left rows some (no) right row pairs with under the residual
        (no residual: all left rows if the right side has rows, for semi; none, for anti)."""
        if self.residual is None:
            hit = right.num_rows > 0
            return left if hit == (self.kind is JoinKind.SEMI) else left.slice(0, 0)
        left, right = with_row_ids(left, right)
        matched = _pairs(left, right, self.residual, self.left.schema + self.right.schema)
        hit = pc.is_in(left[LEFT_ID], matched[LEFT_ID])
        keep = hit if self.kind is JoinKind.SEMI else pc.invert(hit)
        return left.filter(keep).select([f.name for f in self.schema])

    def explain_line(self) -> str:
        what = ("cross" if self.kind is JoinKind.INNER and self.residual is None
                else f"{self.kind.value} on {self.residual if self.residual else 'TRUE'}")
        line = f"NestedLoopJoinExec({self.strategy.name}): {what}"
        return line + (f" [{self.reason}]" if self.reason else "")
