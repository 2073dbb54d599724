"""Register a table of an existing SQLite database as an external table (federation).

The seed's Presto "pluggable storage": a master table that lives in a relational database
(users, in the seed's MySQL) is queried in place, joined with the Parquet fact table. This
module reads the table's schema (``PRAGMA table_info``; SQLite affinities map to Arrow types,
see :func:`mpp.storage.sqlite.canonical`), its statistics (one aggregate query: row count,
min, max, nulls and distinct values per column, so the optimizer can size a broadcast) and
cuts it into ``rowid`` ranges, one fragment each. Nothing is copied; the database is opened
read-only here and by every scan.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from typing import TYPE_CHECKING

import pyarrow as pa

from mpp.catalog.external import PROP_REGISTERED, PROP_SOURCE_TABLE, ExternalTable
from mpp.catalog.model import ColumnStats, TableInfo, TableStats
from mpp.catalog.place import check_table_name
from mpp.errors import CatalogError, StorageError
from mpp.storage import sqlite
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.files import to_uri

if TYPE_CHECKING:
    from mpp.catalog import Catalog


def _column_stats(con: sqlite3.Connection, table: str,
                  declared: dict[str, str]) -> tuple[int, dict[str, ColumnStats]]:
    """Row count and per-column statistics, from one aggregate query."""
    q = sqlite._quote  # noqa: SLF001 - same module family, one quoting rule
    parts = ["COUNT(*)"]
    for c in declared:
        parts += [f"MIN({q(c)})", f"MAX({q(c)})", f"SUM({q(c)} IS NULL)",
                  f"COUNT(DISTINCT {q(c)})"]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {q(table)}").fetchone()
    columns: dict[str, ColumnStats] = {}
    for i, c in enumerate(declared):
        lo, hi, nulls, ndv = row[1 + 4 * i: 5 + 4 * i]
        try:
            bounds = sqlite.rows_to_arrow([(lo,), (hi,)], [c], declared)[c].to_pylist()
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            bounds = [None, None]  # values that do not fit the declared type: no bounds
        columns[c] = ColumnStats(min=bounds[0], max=bounds[1], null_count=int(nulls or 0),
                                 distinct_count=int(ndv))
    return int(row[0]), columns


def _fragments(con: sqlite3.Connection, uri: str, table: str, rows: int, count: int,
               row_bytes: float) -> list[Fragment]:
    """``count`` rowid ranges of equal width covering the table (at least one)."""
    q = sqlite._quote  # noqa: SLF001
    lo, hi = con.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {q(table)}").fetchone()
    lo, hi = (1, 0) if lo is None else (int(lo), int(hi))
    count = max(1, min(count, rows))
    width = -(-(hi - lo + 1) // count)
    out = []
    for i in range(count):
        a, b = lo + i * width, min(hi, lo + (i + 1) * width - 1)
        n = con.execute(f"SELECT COUNT(*) FROM {q(table)} WHERE rowid BETWEEN ? AND ?",
                        (a, b)).fetchone()[0]
        out.append(Fragment(uri=uri, format=StorageFormat.SQLITE, index=i, row_count=int(n),
                            size_bytes=int(n * row_bytes),
                            options=(("table", table), ("rowid_range", (a, b)),
                                     ("row_bytes", row_bytes))))
    return out


def register_sqlite(catalog: Catalog, name: str, path: str | os.PathLike[str], *,
                    source_table: str | None = None, fragments: int = 4) -> TableInfo:
    """Register table ``source_table`` (default ``name``) of the SQLite database at ``path`` as
    the external table ``name`` of ``catalog``, split into ``fragments`` rowid ranges.

    Raises StorageError naming the file for a missing file or table, CatalogError if ``name``
    is taken or not a plain identifier. The file stays the user's: DROP TABLE forgets the
    table and never deletes it.
    """
    check_table_name(name)
    if fragments < 1:
        raise CatalogError(f"fragments must be >= 1, got {fragments}")
    if name in catalog.tables():
        raise CatalogError(f"table {name!r} already exists in {catalog.warehouse}")
    uri = to_uri(path)
    table = source_table or name
    con = sqlite.connect_readonly(uri)
    try:
        declared = sqlite.table_columns(con, table, uri)
        rows, columns = _column_stats(con, table, declared)
        pages, page_size = (con.execute(f"PRAGMA {p}").fetchone()[0]
                            for p in ("page_count", "page_size"))
        row_bytes = pages * page_size / max(1, rows)
        frags = _fragments(con, uri, table, rows, fragments, row_bytes)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot read database: {exc}", uri) from None
    finally:
        con.close()
    schema = pa.schema([(c, sqlite.arrow_type(d)) for c, d in declared.items()])
    stats = TableStats(rows, os.path.getsize(os.fspath(path)), len(frags), columns)
    catalog.registry.register(ExternalTable(
        name=name, format=StorageFormat.SQLITE, location=uri, schema=schema,
        partition_columns=(), fragments=tuple(frags), stats=stats,
        properties={PROP_SOURCE_TABLE: table, PROP_REGISTERED: "true"}, created_at=dt.datetime.now(dt.UTC)))
    return catalog.table(name)
