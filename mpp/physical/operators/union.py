"""UnionExec: several inputs as one, their partitions concatenated; no row moves.

As DataFusion's ``UnionExec``: inputs with N and M partitions give N + M output partitions,
and task i of the stage runs input b's partition j for the one (b, j) that i stands for. Each
input keeps its own pipeline (scans, filters, even a broadcast join) inside the same stage; the
union only renames each input's columns to its own (branches match by position, not name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from mpp.logical.nodes import Field
from mpp.physical.distribution import Arbitrary, Partitioning
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.operators.exchange import producer_partitions


@dataclass(frozen=True, slots=True)
class UnionExec(PhysicalOp):
    """UNION ALL of ``inputs`` (same column count and types, matched by position)."""

    word: ClassVar[str] = "union"
    inputs: tuple[PhysicalOp, ...]
    schema: tuple[Field, ...]
    operation: str = "UNION ALL"  # the SQL it implements (INTERSECT's tagged inputs, ...)
    # Each input's partition count, fixed by the planner once the exchanges are in place: the
    # payload a task receives has its scans' fragment lists dropped, so counting them there
    # would see one partition per scan.
    counts: tuple[int, ...] = ()

    @property
    def children(self) -> tuple[PhysicalOp, ...]:
        return self.inputs

    def with_children(self, children: tuple[PhysicalOp, ...]) -> PhysicalOp:
        return dataclasses.replace(self, inputs=tuple(children))

    def partitions(self) -> tuple[int, ...]:
        """Each input's partition count, in input order."""
        return self.counts or tuple(producer_partitions(c) for c in self.inputs)

    def with_fixed_partitioning(self) -> PhysicalOp:
        return dataclasses.replace(self, counts=tuple(producer_partitions(c)
                                                      for c in self.inputs))

    def output_partitioning(self) -> Partitioning:
        return Arbitrary(sum(self.partitions()))

    def child_task_ranges(self, first: int, tasks: int) -> tuple[tuple[int, int], ...]:
        ranges = []
        for n in self.partitions():
            ranges.append((first, n))
            first += n
        return tuple(ranges)

    def execute(self, tctx: TaskContext) -> pa.Table:
        index, local = self._locate(tctx.partition)
        outer = tctx.partition
        tctx.partition = local  # the input sees its own partition number
        try:
            table = self.inputs[index].execute(tctx)
        finally:
            tctx.partition = outer
        target = pa.schema([(f.name, f.dtype) for f in self.schema])
        table = table.rename_columns(target.names)
        return table if table.schema.equals(target) else table.cast(target)

    def _locate(self, partition: int) -> tuple[int, int]:
        for index, n in enumerate(self.partitions()):
            if partition < n:
                return index, partition
            partition -= n
        raise IndexError(f"partition {partition} beyond the union's inputs")

    def explain_line(self) -> str:
        parts = " + ".join(str(n) for n in self.partitions())
        return (f"UnionExec({self.operation}): {len(self.inputs)} inputs "
                f"[{', '.join(f.name for f in self.schema)}], partitions {parts} concatenated "
                "(no data moves)")
