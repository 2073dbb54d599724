"""ExchangeExec: the only operator that moves rows between tasks; it ends a stage.

Three kinds: HASH repartitions rows into ``n`` buckets by a hash of the key columns (equal
keys meet in one consumer task), BROADCAST copies the complete input to every consumer task,
GATHER brings everything to one task. The planner inserts exchanges (``enforce_distribution``);
how an exchange becomes Dask tasks is in :mod:`mpp.execution.graph`.

pyarrow has no row-hash kernel, so keys are hashed with ``pandas.util.hash_array`` after
casting to a canonical type (so an int32 key and an int64 key with the same value land in the
same bucket), and a map task splits its output with one stable argsort + take.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mpp.physical.distribution import (
    Arbitrary,
    Broadcasted,
    Hash,
    Partitioning,
    Single,
)
from mpp.physical.operators.base import PassThroughOp, PhysicalOp, TaskContext, concat


class ExchangeKind(enum.Enum):
    """How an exchange moves rows."""

    HASH = "hash"
    BROADCAST = "broadcast"
    GATHER = "gather"


def _key_values(column: pa.ChunkedArray) -> np.ndarray:
    """A numpy array of ``column`` in a canonical type, nulls replaced, for hashing."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return np.asarray(pc.cast(column, pa.int64()).fill_null(0).to_numpy())
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return np.asarray(pc.cast(column, pa.float64()).fill_null(0.0).to_numpy())
    if pa.types.is_date(t):
        return np.asarray(pc.cast(pc.cast(column, pa.date32()), pa.int32()).fill_null(0).to_numpy())
    if pa.types.is_timestamp(t):
        us = pc.cast(column, pa.timestamp("us", tz=t.tz))
        return np.asarray(pc.cast(us, pa.int64()).fill_null(0).to_numpy())
    return np.asarray(pc.cast(column, pa.large_string()).fill_null("").to_numpy(zero_copy_only=False))


def bucket_of(table: pa.Table, keys: tuple[str, ...], n: int) -> np.ndarray:
    """The bucket (0..n-1) of every row of ``table`` by a hash of its ``keys``."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for key in keys:
        # 0x9E3779B97F4A7C15: golden-ratio multiplier, mixes multi-column keys.
        h = h * np.uint64(0x9E3779B97F4A7C15) ^ pd.util.hash_array(_key_values(table[key]))
    return (h % np.uint64(n)).astype(np.int64)


def split_by_bucket(table: pa.Table, keys: tuple[str, ...], n: int) -> list[pa.Table]:
    """``table``'s rows split into ``n`` tables by key hash (one argsort + take)."""
    if n == 1 or table.num_rows == 0:
        return [table] + [table.slice(0, 0)] * (n - 1)
    buckets = bucket_of(table, keys, n)
    # A stable sort of 8/16-bit integers is a radix sort in numpy: ~10x faster than on int64.
    small = buckets.astype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.int64)
    order = np.argsort(small, kind="stable")
    ordered = table.take(pa.array(order))
    bounds = np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=n))])
    return [ordered.slice(bounds[j], bounds[j + 1] - bounds[j]) for j in range(n)]


@dataclass(frozen=True, slots=True)
class ExchangeExec(PassThroughOp):
    """Moves ``input``'s rows to the consumer stage: by hash of ``keys`` into ``n`` buckets,
    to every consumer task (broadcast), or to one task (gather).

    ``id`` is the number of the producing stage, set when the planner cuts stages; a consumer
    task finds the rows it received under that id.
    """

    word: ClassVar[str] = "exchange"
    input: PhysicalOp
    kind: ExchangeKind
    keys: tuple[str, ...] = ()
    n: int = 1
    id: int = 0

    def output_partitioning(self) -> Partitioning:
        if self.kind is ExchangeKind.HASH:
            return Hash(self.keys, self.n)
        if self.kind is ExchangeKind.BROADCAST:
            return Broadcasted()
        return Single()

    def execute(self, tctx: TaskContext) -> pa.Table:
        # Consumer side: the rows this task received through the exchange.
        table = tctx.inputs[self.id]
        tctx.rows_in += table.num_rows
        return table

    def split(self, table: pa.Table) -> list[pa.Table]:
        """Map side: one producer task's output, cut into the exchange's buckets."""
        if self.kind is ExchangeKind.HASH:
            return split_by_bucket(table, self.keys, self.n)
        return [table]

    def combine(self, tables: list[pa.Table]) -> pa.Table:
        """Concatenate outputs of several producer tasks, letting the producer shrink them."""
        return self.input.merge(concat(tables, self.schema))

    def explain_line(self) -> str:
        if self.kind is ExchangeKind.HASH:
            return f"ExchangeExec(HASH): by {', '.join(self.keys)} into {self.n} buckets"
        if self.kind is ExchangeKind.BROADCAST:
            return "ExchangeExec(BROADCAST): copy to every task"
        return "ExchangeExec(GATHER): to one task"


def producer_partitions(op: PhysicalOp) -> int:
    """Tasks of the stage whose top operator is ``op``."""
    part = op.output_partitioning()
    return part.n if isinstance(part, Arbitrary | Hash) else 1
