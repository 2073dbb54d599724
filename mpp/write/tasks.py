"""The functions a write stage runs on workers: prepare, measure and write.

``prepare`` renames one result partition of the SELECT to the table's columns and sorts it by
the partition columns (so each partition value is one contiguous row range); ``measure``
reports those ranges with an estimate of their encoded size; ``write`` concatenates the row
ranges one planned file needs and writes them with the catalog's
:func:`~mpp.catalog.write.write_fragment` (bounds, statistics partials, checksum).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mpp.catalog.write import WriteTarget, WrittenFragment, transform_key, write_fragment
from mpp.errors import MppError, StorageError
from mpp.metrics.collector import record, worker_address
from mpp.metrics.records import TaskRecord
from mpp.storage.base import StorageFormat
from mpp.write.sizing import Piece

SAMPLE_ROWS = 65_536  # rows encoded to estimate a partition's bytes per row


@dataclass(frozen=True, slots=True)
class WritePayload:
    """What every write task needs: where to write, and whom to report to."""

    query_id: str  # the records' query id: the SELECT's id + "-write"
    stage: int
    name: str  # task group, e.g. "stage3-write"
    target: WriteTarget
    fail_task: int = -1  # fault injection (tests): this write task fails after its file


def prepare(table: pa.Table, names: Sequence[str], schema: pa.Schema,
            partition_by: Sequence[str],
            transforms: Sequence[tuple[str, str]] = ()) -> pa.Table:
    """One SELECT partition as the table's columns, sorted by the partition columns.

    ``names`` names the SELECT's columns as table columns; table columns it leaves out (an
    INSERT with a column list) are NULL. Partition ``transforms`` add their key columns
    (sorted by too), which the file writer drops."""
    table = pa.table(table.columns, names=list(names))
    missing = [f for f in schema if f.name not in names]
    if missing:
        table = pa.table({f.name: table.column(f.name) if f.name in names
                          else pa.nulls(table.num_rows, f.type) for f in schema})
    try:
        table = table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise MppError(f"cannot store the SELECT's rows as {schema}: {exc}") from None
    keys = list(partition_by)
    for transform, column in transforms:  # one key column per partition transform
        keys.append(f"__{transform}_{column}")
        table = table.append_column(keys[-1], transform_key(transform, table.column(column)))
    if keys and table.num_rows:
        table = table.take(pc.sort_indices(table, [(c, "ascending") for c in keys]))
    return table


def encoded_bytes_per_row(table: pa.Table, fmt: StorageFormat) -> float:
    """Bytes per row of a sample of ``table`` encoded as ``fmt`` (zstd, as the writers do)."""
    sample = table.slice(0, SAMPLE_ROWS)
    if sample.num_rows == 0:
        return 0.0
    sink = pa.BufferOutputStream()
    if fmt is StorageFormat.ORC:
        import pyarrow.orc as porc

        porc.write_table(sample, sink, compression="zstd")
    else:
        import pyarrow.parquet as pq

        pq.write_table(sample, sink, compression="zstd")
    return float(sink.tell() / sample.num_rows)


def measure(table: pa.Table, source: int, partition_by: Sequence[str],
            fmt: StorageFormat) -> list[Piece]:
    """The partition-value row ranges of one prepared partition, with estimated sizes."""
    per_row = encoded_bytes_per_row(table, fmt)
    if not partition_by:
        return [Piece(source, 0, table.num_rows, table.num_rows * per_row)]
    if table.num_rows == 0:
        return []
    # ``group_by`` keeps first-occurrence order, which is sorted order after ``prepare``.
    counts = table.select(list(partition_by)).group_by(
        list(partition_by), use_threads=False).aggregate([([], "count_all")])
    pieces, offset = [], 0
    for row in counts.to_pylist():
        n = row.pop("count_all")
        pieces.append(Piece(source, offset, n, n * per_row,
                            tuple(row[c] for c in partition_by)))
        offset += n
    return pieces


def write(payload: WritePayload, index: int,
          ranges: Sequence[tuple[pa.Table, int, int]]) -> WrittenFragment:
    """Write output file ``index`` from ``(partition, offset, rows)`` ranges; record the task."""
    start, cpu = time.time(), time.thread_time()
    tables = [t.slice(offset, rows) for t, offset, rows in ranges]
    table = pa.concat_tables(tables) if tables else payload.target.schema.empty_table()
    written = write_fragment(payload.target, index, table)
    if index == payload.fail_task:
        raise StorageError(f"injected failure of write task {index} (write.fail_task)",
                           written.fragment.uri)
    record(TaskRecord(
        payload.query_id, payload.stage, payload.name, str((payload.name, index)), index,
        worker_address(), start, time.time(), rows_in=table.num_rows, rows_out=table.num_rows,
        bytes_sent=written.fragment.size_bytes, cpu_s=time.thread_time() - cpu))
    return written


def range_args(prepared: Sequence[Any], task_ranges: Sequence[Any]) -> list[tuple[Any, int, int]]:
    """``(prepared partition, offset, rows)`` per range (futures resolved on the worker)."""
    return [(prepared[r.source], r.offset, r.rows) for r in task_ranges]
