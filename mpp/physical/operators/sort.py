"""SortExec and LimitExec: ORDER BY and LIMIT, after a gather (with per-task top-N first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import SortKey
from mpp.physical.distribution import (
    Distribution,
    Partitioning,
    Single,
    SinglePartition,
    UnspecifiedDistribution,
)
from mpp.physical.operators.base import PassThroughOp, PhysicalOp, TaskContext


def sort_table(table: pa.Table, keys: tuple[SortKey, ...]) -> pa.Table:
    """``table`` ordered by ``keys``, with NULLs placed per key (Trino: last unless asked)."""
    if table.num_rows <= 1:
        return table
    return table.take(sort_indices(table, keys))


def sort_indices(table: pa.Table, keys: tuple[SortKey, ...]) -> pa.Array:
    """The row order of :func:`sort_table`, without moving the rows (a window evaluated in
    batches takes them a batch at a time). Only the key columns are read, in one chunk each:
    pyarrow sorts one chunk about twice as fast as many (a hash bucket arrives in a chunk per
    producer task)."""
    names = list(dict.fromkeys(k.column.name for k in keys))
    work = table.select(names)
    if any(c.num_chunks > 1 for c in work.columns):
        work = work.combine_chunks()
    table, order = work, []
    for i, key in enumerate(keys):
        name = key.column.name
        if table[name].null_count:
            # One null-flag column per key lets each key place its NULLs independently.
            flag = f"__null{i}"
            work = work.append_column(flag, pc.is_null(table[name]))
            order.append((flag, "descending" if key.nulls_first else "ascending"))
        order.append((name, "ascending" if key.ascending else "descending"))
    return pc.sort_indices(work, sort_keys=order)


@dataclass(frozen=True, slots=True)
class SortExec(PassThroughOp):
    """Orders rows by ``keys``; keeps the first ``fetch`` rows when set (top-N).

    A ``partial`` sort is the per-task top-N before a gather: it needs no particular
    distribution. The final sort needs all rows in one task.
    """

    input: PhysicalOp
    keys: tuple[SortKey, ...]
    fetch: int | None = None
    partial: bool = False

    @property
    def word(self) -> str:  # type: ignore[override]
        return "topn" if self.fetch is not None else "sort"

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        return (UnspecifiedDistribution(),) if self.partial else (SinglePartition(),)

    def output_partitioning(self) -> Partitioning:
        # Final: one partition even before enforce_distribution adds the gather below it.
        return self.input.output_partitioning() if self.partial else Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self.merge(self.input.execute(tctx))

    def merge(self, table: pa.Table) -> pa.Table:
        out = sort_table(table, self.keys)
        return out if self.fetch is None else out.slice(0, self.fetch)

    def explain_line(self) -> str:
        keys = ", ".join(str(k) for k in self.keys)
        head = "SortExec(partial): " if self.partial else "SortExec: "
        return head + keys + (f" fetch={self.fetch}" if self.fetch is not None else "")


@dataclass(frozen=True, slots=True)
class LimitExec(PassThroughOp):
    """Keeps ``count`` rows after skipping ``offset``; a ``partial`` limit keeps the first
    ``offset + count`` rows of each task before the gather."""

    word: ClassVar[str] = "limit"
    input: PhysicalOp
    count: int
    offset: int = 0
    partial: bool = False

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        return (UnspecifiedDistribution(),) if self.partial else (SinglePartition(),)

    def output_partitioning(self) -> Partitioning:
        # Final: one partition even before enforce_distribution adds the gather below it.
        return self.input.output_partitioning() if self.partial else Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self.merge(self.input.execute(tctx))

    def merge(self, table: pa.Table) -> pa.Table:
        if self.partial:
            return table.slice(0, self.offset + self.count)
        return table.slice(self.offset, self.count)

    def explain_line(self) -> str:
        head = "LimitExec(partial)" if self.partial else "LimitExec"
        return f"{head}: {self.count}" + (f" offset {self.offset}" if self.offset else "")
