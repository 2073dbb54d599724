"""A physical leaf that yields a fixed table: the test stand-in for a scan, so an operator's
kernel can be run on hand-built rows without a warehouse or a cluster."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from mpp.logical.nodes import Field
from mpp.physical.operators.base import PhysicalOp, TaskContext


@dataclass(frozen=True)
class Rows(PhysicalOp):
    """A leaf that yields ``table`` in every task."""

    table: pa.Table

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        return tuple(Field(f.name, f.type) for f in self.table.schema)

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self.table
