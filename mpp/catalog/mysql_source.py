"""Register a table of a live MySQL / MariaDB database as an external table (federation).

The source notes keep the users master table in MySQL and join it, in place, with the fact
table in the data lake (Presto's pluggable connectors). This module reads the table's schema
(``information_schema.COLUMNS``, mapped to Arrow by :func:`mpp.storage.mysql.column_type`), its
statistics (one aggregate query: row count, min, max, nulls and distinct values per column, so
the optimizer can size a broadcast), and cuts it into ranges of its integer primary key, one
fragment each. Nothing is copied and nothing is written to the database: DROP TABLE forgets
the registration only.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mpp.catalog.external import PROP_REGISTERED, PROP_SOURCE_TABLE, ExternalTable
from mpp.catalog.model import ColumnStats, TableInfo, TableStats
from mpp.catalog.place import check_table_name
from mpp.errors import CatalogError
from mpp.storage import mysql
from mpp.storage.base import Fragment, StorageFormat

if TYPE_CHECKING:
    from mpp.catalog import Catalog


def _column_stats(con: Any, table: str, types: dict[str, pa.DataType]
                  ) -> tuple[int, dict[str, ColumnStats]]:
    """Row count and per-column statistics, from one aggregate query."""
    q = mysql.quote
    parts = ["COUNT(*)"]
    for c in types:
        parts += [f"MIN({q(c)})", f"MAX({q(c)})", f"SUM({q(c)} IS NULL)",
                  f"COUNT(DISTINCT {q(c)})"]
    with con.cursor() as cur:
        cur.execute(f"SELECT {', '.join(parts)} FROM {q(table)}")
        row = cur.fetchone()
    columns: dict[str, ColumnStats] = {}
    for i, (c, t) in enumerate(types.items()):
        lo, hi, nulls, ndv = row[1 + 4 * i: 5 + 4 * i]
        if pa.types.is_string(t) or pa.types.is_boolean(t):
            # MySQL orders text by its collation (case-insensitive), not by code point as
            # mpp prunes with: no bounds rather than wrong ones.
            lo = hi = None
        try:
            bounds = mysql.rows_to_arrow([(lo,), (hi,)], [c], {c: t})[c].to_pylist()
        except ValueError:
            bounds = [None, None]
        columns[c] = ColumnStats(min=bounds[0], max=bounds[1], null_count=int(nulls or 0),
                                 distinct_count=int(ndv))
    return int(row[0]), columns


def _integer_key(con: Any, table: str, types: dict[str, pa.DataType]) -> str | None:
    """The table's primary key column if it is one integer column, else None."""
    with con.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
                    "AND CONSTRAINT_NAME = 'PRIMARY'", (table,))
        keys = [str(r[0]) for r in cur.fetchall()]
    if len(keys) == 1 and pa.types.is_integer(types[keys[0]]):
        return keys[0]
    return None


def _row_bytes(con: Any, table: str) -> float:
    """The table's average row length (``information_schema.TABLES``; 0 if unknown)."""
    with con.cursor() as cur:
        cur.execute("SELECT AVG_ROW_LENGTH FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
        row = cur.fetchone()
    return float(row[0] or 0) if row else 0.0


def _fragments(con: Any, uri: str, table: str, key: str | None, rows: int, count: int,
               row_bytes: float) -> list[Fragment]:
    """``count`` key ranges of equal width covering the table (one fragment without a key)."""
    options: tuple[tuple[str, Any], ...] = (("table", table), ("row_bytes", row_bytes))
    if key is None:
        return [Fragment(uri=uri, format=StorageFormat.MYSQL, index=0, row_count=rows,
                         size_bytes=int(rows * row_bytes), options=options)]
    q = mysql.quote
    with con.cursor() as cur:
        cur.execute(f"SELECT MIN({q(key)}), MAX({q(key)}) FROM {q(table)}")
        lo, hi = cur.fetchone()
        lo, hi = (0, -1) if lo is None else (int(lo), int(hi))
        count = max(1, min(count, rows))
        width = -(-(hi - lo + 1) // count)
        out = []
        for i in range(count):
            a, b = lo + i * width, min(hi, lo + (i + 1) * width - 1)
            if i == count - 1:
                b = max(b, hi)
            cur.execute(f"SELECT COUNT(*) FROM {q(table)} WHERE {q(key)} BETWEEN %s AND %s",
                        (a, b))
            n = int(cur.fetchone()[0])
            out.append(Fragment(uri=uri, format=StorageFormat.MYSQL, index=i, row_count=n,
                                size_bytes=int(n * row_bytes),
                                options=(*options, ("key", key), ("key_range", (a, b)))))
    return out


def register_mysql(catalog: Catalog, name: str, uri: str, *, source_table: str | None = None,
                   fragments: int = 4) -> TableInfo:
    """Register table ``source_table`` (default ``name``) of the MySQL / MariaDB database at
    ``uri`` (``mysql://user[:password]@host[:port]/database``) as the external table ``name``,
    split into ``fragments`` ranges of its integer primary key.

    Raises StorageError naming the address (never its password) when the database cannot be
    reached, the table is missing or a column's type cannot be read; CatalogError if ``name``
    is taken or not a plain identifier. Nothing is registered when any of these fail.
    """
    check_table_name(name)
    if fragments < 1:
        raise CatalogError(f"fragments must be >= 1, got {fragments}")
    if name in catalog.tables():
        raise CatalogError(f"table {name!r} already exists in {catalog.warehouse}")
    mysql.Address.parse(uri)
    table = source_table or name
    with mysql.connect(uri) as con:
        declared = mysql.table_columns(con, table, uri)
        types = {c: t for c, (t, _) in declared.items()}
        rows, columns = _column_stats(con, table, types)
        row_bytes = _row_bytes(con, table)
        key = _integer_key(con, table, types)
        frags = _fragments(con, uri, table, key, rows, fragments, row_bytes)
    schema = pa.schema([(c, t) for c, t in types.items()])
    stats = TableStats(rows, int(rows * row_bytes), len(frags), columns)
    catalog.registry.register(ExternalTable(
        name=name, format=StorageFormat.MYSQL, location=mysql.redact(uri), schema=schema,
        partition_columns=(), fragments=tuple(frags), stats=stats,
        properties={PROP_SOURCE_TABLE: table, PROP_REGISTERED: "true",
                    "mpp.mysql-types": ", ".join(f"{c} {t}" for c, (_, t) in declared.items())},
        created_at=dt.datetime.now(dt.UTC)))
    return catalog.table(name)
