"""WindowExec: window functions over whole partitions, one task per hash bucket.

The operator only states its need (DataFusion's ``BoundedWindowAggExec`` does the same): its
input hash-distributed by the PARTITION BY keys, so every partition lies in one task; without
PARTITION BY the whole input is one partition and must be gathered into one task.
``enforce_distribution`` then adds the exchange. Each task sorts its rows by (partition keys,
order keys) and evaluates every call (:mod:`mpp.physical.window`). Several windows over the
same PARTITION BY are stacked WindowExecs in one stage: the first one's exchange already
satisfies the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from mpp.logical.expr import SortKey
from mpp.logical.nodes import Field
from mpp.logical.window import WindowCall
from mpp.physical.distribution import (
    Distribution,
    HashDistribution,
    Partitioning,
    Single,
    SinglePartition,
)
from mpp.physical.operators.base import PhysicalOp, TaskContext, UnaryOp, empty_table
from mpp.physical.window import evaluate_windows

GATHER_REASON = "no PARTITION BY: the whole input is one partition, gathered into one task"


@dataclass(frozen=True, slots=True)
class WindowExec(UnaryOp):
    """Adds one column per window call to the rows of each partition of ``partition_by``."""

    word: ClassVar[str] = "window"
    input: PhysicalOp
    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    calls: tuple[WindowCall, ...]
    names: tuple[str, ...]

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return self.input.schema + tuple(
            Field(n, c.dtype) for n, c in zip(self.names, self.calls, strict=True))

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        if not self.partition_by:
            return (SinglePartition(),)
        return (HashDistribution(self.partition_by),)

    def output_partitioning(self) -> Partitioning:
        # Without PARTITION BY: one partition even before the gather is added below it.
        return self.input.output_partitioning() if self.partition_by else Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        table = self.input.execute(tctx)
        tctx.note_keys(table, self.partition_by)
        if table.num_rows == 0:
            return empty_table(self.schema)
        return evaluate_windows(table, self.partition_by, self.order_by, self.calls, self.names)

    def explain_line(self) -> str:
        parts = []
        if self.partition_by:
            parts.append("partition by " + ", ".join(self.partition_by))
        if self.order_by:
            parts.append("order by " + ", ".join(str(k) for k in self.order_by))
        parts.append(", ".join(f"{c} AS {n}" for c, n in zip(self.calls, self.names,
                                                             strict=True)))
        line = "WindowExec: " + "; ".join(parts)
        return line if self.partition_by else f"{line} [{GATHER_REASON}]"
