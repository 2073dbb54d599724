"""ORC: the other columnar format (Hive's), read with pyarrow's ORC reader.

Pruning happens per fragment from the catalog's bounds (``fragment_may_match``); pyarrow does
not expose ORC stripe statistics, so there is no stripe-level pruning inside a file.
``bytes_read`` is measured, not estimated: the file is read through a counting wrapper, so the
figure is exactly the bytes the ORC reader pulled from storage for the requested columns
(stripe footers and the file tail included), the most honest figure pyarrow allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.orc as porc

from mpp.errors import StorageError
from mpp.storage.base import ColumnPredicate, Fragment, ScanResult
from mpp.storage.files import CountingReader, open_output, resolve, storage_errors
from mpp.storage.predicates import finish_scan, needed_columns
from mpp.storage.schema_text import schema_from_text


def scan(fragment: Fragment, columns: Sequence[str],
         predicates: Sequence[ColumnPredicate] = ()) -> ScanResult:
    """Read ``columns`` of the rows of one ORC file that pass every predicate."""
    uri = fragment.uri
    needed = needed_columns(columns, predicates)
    fs, path = resolve(uri)
    with storage_errors(uri), fs.open_input_file(path) as raw:
        counting = CountingReader(raw)
        orc = porc.ORCFile(counting)
        missing = [c for c in needed if c not in orc.schema.names]
        if missing:
            raise StorageError(f"no column {missing[0]!r} in the file", uri)
        table = orc.read(columns=needed).select(needed)
        bytes_read = counting.bytes_read
    schema_text = fragment.option("schema")
    if schema_text:  # ORC widens timestamp[us] to [ns] on read: restore the table's types
        schema = schema_from_text(schema_text)
        table = table.cast(pa.schema([schema.field(c) for c in needed]))
    return finish_scan(table, columns, predicates, bytes_read)


def write(table: pa.Table, uri: str) -> None:
    """Write ``table`` as one ORC file (zstd, one stripe per ~64 MiB)."""
    with open_output(uri) as out:
        porc.write_table(table, out, compression="zstd")
