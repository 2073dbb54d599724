"""ReplicateExec: every row repeated as many times as its count column says (pipelined)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.physical.operators.base import PassThroughOp, PhysicalOp, TaskContext


@dataclass(frozen=True, slots=True)
class ReplicateExec(PassThroughOp):
    """Repeats each row ``count`` times; a count of 0, below 0 or NULL drops the row.

    INTERSECT ALL / EXCEPT ALL: after the per-branch counts, a row value comes out min(m, n)
    or m - n times. Rows keep their values, so the partitioning is the input's.
    """

    word: ClassVar[str] = "replicate"
    input: PhysicalOp
    count: str

    def execute(self, tctx: TaskContext) -> pa.Table:
        table = self.input.execute(tctx)
        counts = pc.max_element_wise(pc.fill_null(table[self.count], 0), 0)
        times = np.asarray(counts.to_numpy(), dtype=np.int64)
        return table.take(pa.array(np.repeat(np.arange(table.num_rows), times)))

    def explain_line(self) -> str:
        return f"ReplicateExec: each row {self.count} times"
