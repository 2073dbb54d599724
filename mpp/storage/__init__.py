"""The storage layer: one interface over Parquet, ORC, CSV and SQLite.

* :func:`scan_fragment` reads one fragment (the unit of one partition task) on a Dask worker:
  the requested columns of the rows that pass every pushed predicate, plus what it cost
  (``bytes_read``, ``rows_scanned``).
* :func:`fragment_may_match` is the planner-side pruning check: partition values and
  ``(min, max)`` bounds from the catalog, before any task is made.

One module per format (``parquet``, ``orc``, ``csvfile``, ``sqlite``) implements ``scan``; the
formats' bytes accounting is documented in each module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from mpp.storage.base import (
    ColumnPredicate,
    Fragment,
    ScanResult,
    StorageFormat,
    constant_column,
)
from mpp.storage.predicates import bounds_may_match, finish_scan, needed_columns

# Fragment options of registered files in Hive-style folders: the partition columns with
# their type aliases (their values are in ``Fragment.partition``, not in the file), and one
# column of the file to read when a scan needs only partition columns (its row count).
PATH_PARTITION = "path_partition"
ROW_COLUMN = "row_column"

__all__ = [
    "ColumnPredicate",
    "Fragment",
    "ScanResult",
    "StorageFormat",
    "fragment_may_match",
    "scan_fragment",
]


def _scanner(fmt: StorageFormat) -> Callable[..., ScanResult]:
    # Imported lazily: a worker scanning Parquet never imports sqlite3 or the ORC reader.
    if fmt is StorageFormat.PARQUET:
        from mpp.storage import parquet as module
    elif fmt is StorageFormat.ORC:
        from mpp.storage import orc as module  # type: ignore[no-redef]
    elif fmt is StorageFormat.CSV:
        from mpp.storage import csvfile as module  # type: ignore[no-redef]
    elif fmt is StorageFormat.MYSQL:
        from mpp.storage import mysql as module  # type: ignore[no-redef]
    elif fmt is StorageFormat.ARROW:
        from mpp.storage import arrow_ipc as module  # type: ignore[no-redef]
    else:
        from mpp.storage import sqlite as module  # type: ignore[no-redef]
    return module.scan


def scan_fragment(fragment: Fragment, columns: Sequence[str],
                  predicates: Sequence[ColumnPredicate] = ()) -> ScanResult:
    """Scan one fragment: only ``columns`` (in that order), only rows passing every predicate.

    Runs on a Dask worker. Raises :class:`~mpp.errors.StorageError` naming the file when it is
    missing, truncated or corrupt (including a Parquet page checksum mismatch).
    """
    if fragment.option(PATH_PARTITION):
        return _scan_path_partitioned(fragment, list(columns), list(predicates))
    return _scanner(fragment.format)(fragment, list(columns), list(predicates))


def _scan_path_partitioned(fragment: Fragment, columns: list[str],
                           predicates: list[ColumnPredicate]) -> ScanResult:
    """Scan a registered file whose partition columns live in its folder names (Hive
    ``key=value/``), not in the file: read the file's columns, add the folder values."""
    types = {name: pa.type_for_alias(alias) for name, alias in fragment.option(PATH_PARTITION)}
    values = dict(fragment.partition)
    needed = needed_columns(columns, predicates)
    read = [c for c in needed if c not in types] or [fragment.option(ROW_COLUMN)]
    inner = _scanner(fragment.format)(fragment, read,
                                      [p for p in predicates if p.column not in types])
    n = inner.table.num_rows
    cols = {c: inner.table[c] for c in read}
    for name, type_ in types.items():
        cols[name] = constant_column(pa.scalar(values.get(name), type_), n)
    table = pa.table({c: cols[c] for c in needed})
    done = finish_scan(table, columns, [p for p in predicates if p.column in types],
                       inner.bytes_read)
    return ScanResult(done.table, inner.bytes_read, inner.rows_scanned)


def fragment_bounds(fragment: Fragment) -> dict[str, tuple[Any, Any]]:
    """``{column: (min, max)}`` known for a fragment: its partition values and its bounds."""
    bounds = {col: (lo, hi) for col, lo, hi in fragment.bounds}
    for col, value in fragment.partition:
        bounds[col] = (value, value)
    return bounds


def fragment_may_match(fragment: Fragment, predicates: Sequence[ColumnPredicate]) -> bool:
    """False only if the fragment's partition values or bounds prove no row passes."""
    return bounds_may_match(fragment_bounds(fragment), predicates)
