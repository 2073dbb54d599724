"""Iceberg metadata tables, named as Trino's Iceberg connector names them.

``"t$snapshots"``, ``"t$history"``, ``"t$files"`` and ``"t$partitions"`` describe table ``t``
from its Iceberg metadata (pyiceberg's ``table.inspect``), without reading a data file. Each
is a small Arrow table planned as a one-fragment source (:mod:`mpp.storage.arrow_ipc`), so
WHERE, ORDER BY, joins and aggregates over it run like over any table.

Columns and types follow Trino's documentation. Where Trino's type is one mpp has no type for,
mpp gives a VARCHAR spelled as Trino displays the value: ``summary`` (a map) as
``{key=value, ...}`` and ``partition`` (a row) as ``{field=value, ...}``. Trino's
``timestamp(3) with time zone`` columns are TIMESTAMPs in UTC.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

SEPARATOR = "$"
TIMESTAMP = pa.timestamp("us")


def split(name: str) -> tuple[str, str] | None:
    """``(table, kind)`` of a metadata table name such as ``t$snapshots``; None otherwise."""
    base, sep, kind = name.rpartition(SEPARATOR)
    if not sep or not base:
        return None
    return base, kind


def _text(values: pa.Array, separator: str) -> pa.Array:
    """``{k=v, ...}`` of a struct array (by field) or a map array (by entry), as strings."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_struct(values.type):
        if values.type.num_fields == 0:
            return pa.array(["{}"] * len(values), pa.string())
        parts = [pc.binary_join_element_wise(
            pa.scalar(f"{values.type.field(i).name}="),
            pc.fill_null(pc.cast(values.field(i), pa.string()), "NULL"), "")
            for i in range(values.type.num_fields)]
        body = pc.binary_join_element_wise(*parts, separator)
    else:  # a map: one "k=v" per entry, joined per row
        entries = pc.binary_join_element_wise(
            pc.cast(values.keys, pa.string()), pc.fill_null(pc.cast(values.items, pa.string()),
                                                             "NULL"), "=")
        lists = pa.ListArray.from_arrays(values.offsets, entries)
        body = pc.binary_join(lists, separator)
    return pc.binary_join_element_wise("{", pc.fill_null(body, ""), "}", "")


def _utc(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timezone-aware timestamp column as mpp's TIMESTAMP (microseconds, UTC)."""
    if column.type.tz is not None:
        column = pc.cast(column, pa.timestamp(column.type.unit, "UTC"))
        column = pc.cast(column, pa.timestamp(column.type.unit))  # drops the zone: UTC wall time
    return pc.cast(column, TIMESTAMP)


def snapshots(table: Table) -> pa.Table:
    """``t$snapshots``: one row per snapshot."""
    t = table.inspect.snapshots()
    return pa.table({
        "committed_at": _utc(t["committed_at"]),
        "snapshot_id": pc.cast(t["snapshot_id"], pa.int64()),
        "parent_id": pc.cast(t["parent_id"], pa.int64()),
        "operation": pc.cast(t["operation"], pa.string()),
        "manifest_list": pc.cast(t["manifest_list"], pa.string()),
        "summary": _text(t["summary"], ", "),
    })


def history(table: Table) -> pa.Table:
    """``t$history``: one row per entry of the snapshot log."""
    t = table.inspect.history()
    return pa.table({
        "made_current_at": _utc(t["made_current_at"]),
        "snapshot_id": pc.cast(t["snapshot_id"], pa.int64()),
        "parent_id": pc.cast(t["parent_id"], pa.int64()),
        "is_current_ancestor": pc.cast(t["is_current_ancestor"], pa.bool_()),
    })


def files(table: Table) -> pa.Table:
    """``t$files``: one row per data (or delete) file of the current snapshot."""
    t = table.inspect.files()
    if t.num_rows == 0 and "partition" not in t.column_names:
        return pa.table({n: pa.array([], ty) for n, ty in _FILES})
    return pa.table({
        "content": pc.cast(t["content"], pa.int32()),
        "file_path": pc.cast(t["file_path"], pa.string()),
        "file_format": pc.cast(t["file_format"], pa.string()),
        "spec_id": pc.cast(t["spec_id"], pa.int32()),
        "partition": _text(t["partition"], ", "),
        "record_count": pc.cast(t["record_count"], pa.int64()),
        "file_size_in_bytes": pc.cast(t["file_size_in_bytes"], pa.int64()),
    })


_FILES = [("content", pa.int32()), ("file_path", pa.string()), ("file_format", pa.string()),
          ("spec_id", pa.int32()), ("partition", pa.string()), ("record_count", pa.int64()),
          ("file_size_in_bytes", pa.int64())]


def partitions(table: Table) -> pa.Table:
    """``t$partitions``: one row per partition of the current snapshot (one row for an
    unpartitioned table with data)."""
    t = table.inspect.partitions()
    n = t.num_rows
    part = (_text(t["partition"], ", ") if "partition" in t.column_names
            else pa.array(["{}"] * n, pa.string()))
    return pa.table({
        "partition": part,
        "record_count": pc.cast(t["record_count"], pa.int64()),
        "file_count": pc.cast(t["file_count"], pa.int64()),
        "total_size": pc.cast(t["total_data_file_size_in_bytes"], pa.int64()),
    })


BUILDERS: dict[str, Callable[[Table], pa.Table]] = {
    "snapshots": snapshots, "history": history, "files": files, "partitions": partitions,
}
