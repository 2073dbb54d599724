"""CSV: the raw "data lake" form. A row format: every scan reads the whole file.

``bytes_read`` is the file's size (a text file cannot skip columns or rows). Column types come
from the table's Arrow schema (stored with each fragment), so a CSV scan returns the same types
as a Parquet scan of the same rows. Writing includes a header line; timestamps are ISO text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.csv as pcsv

from mpp.errors import StorageError
from mpp.storage.base import ColumnPredicate, Fragment, ScanResult
from mpp.storage.files import open_output, resolve, storage_errors
from mpp.storage.predicates import finish_scan, needed_columns
from mpp.storage.schema_text import schema_from_text


def scan(fragment: Fragment, columns: Sequence[str],
         predicates: Sequence[ColumnPredicate] = ()) -> ScanResult:
    """Read ``columns`` of the rows of one CSV file that pass every predicate."""
    uri = fragment.uri
    needed = needed_columns(columns, predicates)
    schema_text = fragment.option("schema")
    types = schema_from_text(schema_text) if schema_text else None
    fs, path = resolve(uri)
    with storage_errors(uri), fs.open_input_file(path) as f:
        size = f.size()
        try:
            table = pcsv.read_csv(
                f,
                # Serial reading: pyarrow then numbers the rows in its errors (file lines).
                read_options=pcsv.ReadOptions(use_threads=False),
                convert_options=pcsv.ConvertOptions(
                    column_types=types, include_columns=needed, strings_can_be_null=False
                ),
            )
        except pa.ArrowInvalid as exc:
            raise malformed_row_error(str(exc), uri, types) from None
    if types is not None and table.num_columns == len(needed):
        table = table.cast(pa.schema([types.field(c) for c in needed]))
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise StorageError(f"no column {missing[0]!r} in the file", uri)
    return finish_scan(table, columns, predicates, size)


def malformed_row_error(message: str, uri: str, types: pa.Schema | None) -> StorageError:
    """A StorageError naming the file, the line (pyarrow's 1-based row, header included) and
    the column of a malformed CSV row, from pyarrow's error text."""
    text = message.splitlines()[0] if message else "malformed CSV"
    m = re.search(r"Row #(\d+)", text)
    if m is None:
        return StorageError(f"cannot read: file is truncated or corrupt ({text})", uri)
    col = re.search(r"In CSV column #(\d+)", text)
    where = f"line {m.group(1)}"
    if col is not None:
        i = int(col.group(1))
        name = types.names[i] if types is not None and i < len(types.names) else f"#{i + 1}"
        where += f", column {name!r}"
    detail = text[m.end():].lstrip(": ").strip()
    return StorageError(f"{where}: malformed CSV row: {detail}", uri)


def write(table: pa.Table, uri: str) -> None:
    """Write ``table`` as one CSV file with a header line."""
    with open_output(uri) as out:
        pcsv.write_csv(table, out)
