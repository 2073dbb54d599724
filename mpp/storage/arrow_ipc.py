"""A fragment that carries its rows: a small Arrow table serialized (IPC stream) in the
fragment itself, for sources built from metadata rather than read from files (Iceberg
metadata tables such as ``"t$snapshots"``). The one task scanning it filters and projects
like any other scan."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from mpp.storage.base import ColumnPredicate, Fragment, ScanResult, StorageFormat
from mpp.storage.predicates import finish_scan

ROWS = "arrow_ipc"  # the fragment option holding the IPC stream bytes


def to_fragment(uri: str, table: pa.Table) -> Fragment:
    """One fragment holding ``table`` (``uri`` names it in EXPLAIN and errors)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    return Fragment(uri=uri, format=StorageFormat.ARROW, index=0, row_count=table.num_rows,
                    size_bytes=len(data), options=((ROWS, data),))


def rows(fragment: Fragment) -> pa.Table:
    """The table a fragment made by :func:`to_fragment` carries."""
    return pa.ipc.open_stream(pa.py_buffer(fragment.option(ROWS))).read_all()


def scan(fragment: Fragment, columns: Sequence[str],
         predicates: Sequence[ColumnPredicate]) -> ScanResult:
    """Filter and project the fragment's rows."""
    return finish_scan(rows(fragment), columns, predicates, fragment.size_bytes)
