"""ExchangeExec: the only operator that moves rows between tasks; it ends a stage.

Three kinds: HASH repartitions rows into ``n`` buckets by a hash of the key columns (equal
keys meet in one consumer task), BROADCAST copies the complete input to every consumer task,
GATHER brings everything to one task. The planner inserts exchanges (``enforce_distribution``);
how an exchange becomes Dask tasks is in :mod:`mpp.execution.graph`.

pyarrow has no row-hash kernel, so keys are hashed with ``pandas.util.hash_array`` after
casting to a canonical type (so an int32 key and an int64 key with the same value land in the
same bucket); strings by :func:`hash_strings`, over their Arrow buffers. Rows are cut into
buckets with one stable argsort + take: the result is a :class:`BucketedTable`, one table
ordered by bucket plus the bucket offsets, so it serialises as one table whatever the bucket
count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

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
from mpp.physical.keys import is_numeric_key, key_numbers
from mpp.physical.operators.base import PassThroughOp, PhysicalOp, TaskContext, is_unreduced


class ExchangeKind(enum.Enum):
    """How an exchange moves rows."""

    HASH = "hash"
    BROADCAST = "broadcast"
    GATHER = "gather"


def _key_values(column: pa.ChunkedArray) -> np.ndarray:
    """A numpy array of ``column`` in a canonical type, nulls replaced, for hashing: numbers
    as :func:`key_numbers` reads them (-0.0 and 0.0, and every NaN, land in one bucket, as
    they form one group), anything else as text."""
    if is_numeric_key(column.type):
        return key_numbers(column)[0]
    values = pc.cast(column, pa.large_string())
    if values.null_count:
        values = values.fill_null("")
    return np.asarray(values.to_numpy(zero_copy_only=False))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: mixes multi-column keys
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def hash_strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of every string (NULL hashes as ""), vectorised over 8-byte words.

    ``pandas.util.hash_array`` hashes strings one Python object at a time (a 5M-row DISTINCT
    of message IDs spent most of its exchange there). Here the Arrow data buffer is read
    as unaligned little-endian words: pass ``k`` mixes word ``k`` of every string still that
    long into its hash (the last word masked to the string's bytes), so a key of up to 8 bytes
    costs one pass over the rows, and the length is mixed in first ("a" and "a\0" differ).
    """
    arr = pc.cast(column, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = arr.fill_null("")
    n = len(arr)
    _, obuf, dbuf = arr.buffers()
    offsets = np.frombuffer(obuf, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    first, last = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(last - first + 8, dtype=np.uint8)  # every word read stays in bounds
    if dbuf is not None and last > first:
        padded[:last - first] = np.frombuffer(dbuf, dtype=np.uint8)[first:last]
    words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    starts = offsets[:-1] - first
    lengths = np.diff(offsets)
    h = lengths.astype(np.uint64) * _GOLDEN
    for k in range(0, int(lengths.max()) if n else 0, 8):
        rem = lengths - k
        live = np.flatnonzero(rem > 0)
        w = words[starts[live] + k]
        r = rem[live]
        short = r < 8
        w[short] &= (np.uint64(1) << (r[short].astype(np.uint64) * np.uint64(8))) - np.uint64(1)
        x = h[live] ^ w
        x *= _MIX1
        x ^= x >> np.uint64(31)
        h[live] = x
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def bucket_of(table: pa.Table, keys: tuple[str, ...], n: int) -> np.ndarray:
    """The bucket (0..n-1) of every row of ``table`` by a hash of its ``keys``."""
    return _bucket_ids(table, keys, n).astype(np.int64)


def _bucket_ids(table: pa.Table, keys: tuple[str, ...], n: int) -> np.ndarray:
    """:func:`bucket_of` as unsigned 64-bit integers (no copy to a signed type)."""
    h: np.ndarray | None = None
    for key in keys:
        column = table[key]
        kh: np.ndarray = (hash_strings(column) if _is_text(column.type)
                          else pd.util.hash_array(_key_values(column)))
        if h is None:
            h = kh
        else:
            h *= _GOLDEN
            h ^= kh
    if h is None:  # no keys: every row in bucket 0
        return np.zeros(table.num_rows, dtype=np.uint64)
    # hash_array ends in a splitmix64 finaliser, so its low bits are as good as its high bits.
    if n & (n - 1) == 0:
        h &= np.uint64(n - 1)
        return h
    return h % np.uint64(n)


@dataclass(frozen=True, slots=True)
class BucketedTable:
    """Rows cut into hash buckets: one table ordered by bucket, and where each bucket starts.

    Bucket ``j`` is rows ``offsets[j]`` to ``offsets[j + 1]``. One table instead of a list of
    ``n`` tables: a combine task's output serialises as one Arrow stream at any bucket count
    (128 small tables per task cost more to ship than their rows).
    """

    table: pa.Table
    offsets: tuple[int, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to another worker or spilled to disk, it goes as one Arrow IPC stream, which
        # writes only the rows each chunk references (as Dask sends a plain table). Pickling
        # the table would write every chunk's whole buffers: a combine task's output is N x F
        # slices of its F map outputs, so it pickled to N times its size (at 128 buckets, a
        # 0.8 GB combine output became ~100 GB on the worker that fetched it, which died).
        return _bucketed_from_ipc, (_ipc_stream(self.table), self.offsets)

    @property
    def n(self) -> int:
        """The number of buckets."""
        return len(self.offsets) - 1

    def bucket(self, j: int) -> pa.Table:
        """The rows of bucket ``j`` (a zero-copy slice)."""
        return self.table.slice(self.offsets[j], self.offsets[j + 1] - self.offsets[j])

    @staticmethod
    def concat(parts: list[BucketedTable]) -> BucketedTable:
        """Several bucketed tables (same buckets) as one, bucket by bucket (zero-copy)."""
        n = parts[0].n
        slices = [p.bucket(j) for j in range(n) for p in parts]
        sizes = np.array([t.num_rows for t in slices]).reshape(n, len(parts)).sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return BucketedTable(pa.concat_tables([t for t in slices if t.num_rows]
                                              or [parts[0].table.slice(0, 0)]),
                             tuple(int(o) for o in offsets))


def _ipc_stream(table: pa.Table) -> pa.Buffer:
    """``table`` as an Arrow IPC stream: the rows its chunks reference, however they were
    sliced (a pickled slice carries its parent's whole buffers)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _bucketed_from_ipc(stream: pa.Buffer, offsets: tuple[int, ...]) -> BucketedTable:
    """The :class:`BucketedTable` that ``BucketedTable.__reduce__`` sent (zero-copy over
    ``stream``)."""
    return BucketedTable(pa.ipc.open_stream(stream).read_all(), offsets)


def take_bucket(buckets: BucketedTable, j: int) -> pa.Table:
    """Bucket ``j`` of ``buckets``: the task that moves one bucket to its consumer."""
    return buckets.bucket(j)


def partition_by_hash(table: pa.Table, keys: tuple[str, ...], n: int) -> BucketedTable:
    """``table``'s rows cut into ``n`` buckets by key hash (one stable argsort + take)."""
    if n == 1 or table.num_rows == 0:
        return BucketedTable(table, (0,) + (table.num_rows,) * n)
    # A stable sort of 8/16-bit integers is a radix sort in numpy: ~10x faster than on int64.
    small = _bucket_ids(table, keys, n).astype(
        np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.int64)
    order = np.argsort(small, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(small, minlength=n))])
    if any(c.num_chunks > 1 for c in table.columns):
        table = table.combine_chunks()  # take over one chunk is ~3x faster than over many
    return BucketedTable(table.take(pa.array(order)), tuple(int(b) for b in bounds))


def split_by_bucket(table: pa.Table, keys: tuple[str, ...], n: int) -> list[pa.Table]:
    """``table``'s rows split into ``n`` tables by key hash (slices of one reordered copy)."""
    parts = partition_by_hash(table, keys, n)
    return [parts.bucket(j) for j in range(n)]


@dataclass(frozen=True, slots=True)
class ExchangeExec(PassThroughOp):
    """Moves ``input``'s rows to the consumer stage: by hash of ``keys`` into ``n`` buckets,
    to every consumer task (broadcast), or to one task (gather).

    ``id`` is the number of the producing stage, set when the planner cuts stages; a consumer
    task finds the rows it received under that id. ``reason`` says why a HASH exchange has
    ``n`` buckets when the data sized it ("" for the cluster's count or a fixed setting).
    """

    word: ClassVar[str] = "exchange"
    input: PhysicalOp
    kind: ExchangeKind
    keys: tuple[str, ...] = ()
    n: int = 1
    id: int = 0
    reason: str = ""

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

    def partition(self, table: pa.Table) -> BucketedTable:
        """Rows cut into the exchange's buckets (HASH; one bucket otherwise)."""
        if self.kind is ExchangeKind.HASH:
            return partition_by_hash(table, self.keys, self.n)
        return BucketedTable(table, (0, table.num_rows))

    @property
    def buckets_at_map(self) -> bool:
        """Whether producer tasks cut their own output into buckets (HASH only).

        Outputs a combine merges (partial aggregates) are bucketed after the merge, once per
        combine task; rows no one merges (raw rows, join inputs) are bucketed by the producer
        tasks, spreading the hashing over all of them instead of a few combine tasks.
        """
        return self.kind is ExchangeKind.HASH and not self.input.merges

    def map_output(self, table: pa.Table) -> pa.Table | BucketedTable:
        """What one producer task hands to the exchange (see :attr:`buckets_at_map`). A
        partial step's output it did not reduce (``aggregate.partial_skip_ratio``) is bucketed
        here too: the combine passes it on without merging, so the hashing is spread over the
        producers as for raw rows."""
        if self.buckets_at_map:
            return self.partition(table)
        if self.kind is ExchangeKind.HASH and is_unreduced(table):
            return self.partition(table.replace_schema_metadata(None))
        return table

    def combine(self, tables: list[pa.Table]) -> pa.Table:
        """Concatenate outputs of several producer tasks, letting the producer shrink them."""
        return self.input.merge_outputs(tables)

    def combine_buckets(self, outputs: list[pa.Table] | list[BucketedTable]) -> BucketedTable:
        """A combine task of a HASH exchange: producer outputs -> one bucketed table."""
        if self.buckets_at_map:
            return BucketedTable.concat(outputs)  # type: ignore[arg-type]
        # Bucketed outputs are unreduced partial outputs (see map_output): concatenated
        # bucket by bucket; only the others are merged.
        bucketed = [o for o in outputs if isinstance(o, BucketedTable)]
        tables = [o for o in outputs if not isinstance(o, BucketedTable)]
        if not bucketed:
            return self.partition(self.combine(tables))
        if tables:
            bucketed.append(self.partition(self.combine(tables)))
        return BucketedTable.concat(bucketed)

    def explain_line(self) -> str:
        if self.kind is ExchangeKind.HASH:
            why = f" ({self.reason})" if self.reason else ""
            return f"ExchangeExec(HASH): by {', '.join(self.keys)} into {self.n} buckets{why}"
        if self.kind is ExchangeKind.BROADCAST:
            return "ExchangeExec(BROADCAST): copy to every task"
        return "ExchangeExec(GATHER): to one task"


def producer_partitions(op: PhysicalOp) -> int:
    """Tasks of the stage whose top operator is ``op``."""
    part = op.output_partitioning()
    return part.n if isinstance(part, Arbitrary | Hash) else 1
