"""SQLite: a row-store RDB (the seed's "MySQL master table" of a federated join).

A SQLite table is one table in one database file; its fragments are ``rowid`` ranges of it
(options ``table`` and ``rowid_range``), so several tasks can read one table in parallel.
Scans open the database read-only and push predicates into a parameterized ``WHERE`` clause;
predicates that SQL could not evaluate exactly on the stored form are applied in Arrow instead.

Storage form: integers and floats natively; dates and timestamps as fixed-width ISO text
(``2017-01-13``, ``2017-01-13 08:00:00.000000``), which sorts like the values do. Declared
column types (``INT16``, ``DATE``, ``TIMESTAMP``, ...) record the Arrow type.

``bytes_read`` is an estimate (SQLite does not report I/O): rows in the rowid range times the
table's average stored row size (database pages / rows, option ``row_bytes``). ``rows_scanned``
is the rows in the range, all of which SQLite visits to evaluate the WHERE clause.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mpp.errors import StorageError
from mpp.storage.base import ColumnPredicate, Fragment, ScanResult
from mpp.storage.files import local_path
from mpp.storage.predicates import filter_table

_DECLARED = {
    "INT8": pa.int8(), "INT16": pa.int16(), "INT32": pa.int32(), "INT64": pa.int64(),
    "DOUBLE": pa.float64(), "FLOAT": pa.float32(), "TEXT": pa.string(), "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
}


# SQLite type affinity names (a database mpp did not write) -> the declared names above.
_AFFINITY = (("INT", "INT64"), ("CHAR", "TEXT"), ("CLOB", "TEXT"), ("TEXT", "TEXT"),
             ("REAL", "DOUBLE"), ("FLOA", "DOUBLE"), ("DOUB", "DOUBLE"), ("BOOL", "BOOLEAN"))


def canonical(declared: str) -> str:
    """The mpp declared name of a column declared ``declared`` in any SQLite database.

    mpp's own names pass through; others follow SQLite's affinity rules (``INTEGER``,
    ``BIGINT`` -> ``INT64``; ``VARCHAR(20)`` -> ``TEXT``; ``REAL`` -> ``DOUBLE``), and an
    undeclared or ``NUMERIC`` column is read as text (its values are not typed).
    """
    name = declared.upper().strip()
    if name in _DECLARED:
        return name
    if name.startswith("DATETIME"):
        return "TIMESTAMP"
    return next((mpp for part, mpp in _AFFINITY if part in name), "TEXT")


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type of a column declared ``declared`` (see :func:`canonical`)."""
    return _DECLARED[canonical(declared)]


def declared_type(t: pa.DataType) -> str:
    """The SQLite declared type that records Arrow type ``t``."""
    for name, arrow_type in _DECLARED.items():
        if arrow_type == t:
            return name
    if pa.types.is_large_string(t):
        return "TEXT"
    raise StorageError(f"type {t} cannot be stored in SQLite by mpp")


def _to_stored(col: pa.ChunkedArray) -> list[Any]:
    # Arrow's timestamp[us] -> string cast is fixed-width ISO ("2017-01-13 08:00:00.000000").
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return col.cast(pa.string()).to_pylist()
    return col.to_pylist()


def _param(value: Any, declared: str) -> Any:
    """``value`` in stored form for a column of ``declared`` type, or raise TypeError."""
    if declared == "TIMESTAMP" and isinstance(value, dt.date):
        if not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        return value.isoformat(sep=" ", timespec="microseconds")
    if declared == "DATE" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if declared.startswith("INT") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if declared in ("DOUBLE", "FLOAT") and isinstance(value, (int, float)):
        return value
    if declared == "TEXT" and isinstance(value, str):
        return value
    # BOOLEAN is not pushed: a database mpp did not write may hold true/false as text,
    # which "col = 1" would silently skip; Arrow compares the values read (see _boolean).
    raise TypeError(value)


_MAX_SQL_TERMS = 500
_MAX_SQL_PARAMETERS = 30_000


def _where(predicates: Sequence[ColumnPredicate], declared: dict[str, str]
           ) -> tuple[list[str], list[Any], list[ColumnPredicate]]:
    """SQL conjuncts and parameters for the pushable predicates; the rest for Arrow."""
    clauses: list[str] = []
    params: list[Any] = []
    rest: list[ColumnPredicate] = []
    for p in predicates:
        col = '"' + p.column.replace('"', '""') + '"'
        # SQLite refuses expressions deeper than 1,000 and more than 32,766 parameters; a
        # generated query's thousands of conjuncts beyond these bounds are applied in Arrow.
        if len(clauses) >= _MAX_SQL_TERMS or len(params) + (
                len(p.value) if p.op == "in" else 1) > _MAX_SQL_PARAMETERS:
            rest.append(p)
            continue
        try:
            if p.op == "is_null":
                clauses.append(f"{col} IS NULL")
            elif p.op == "is_not_null":
                clauses.append(f"{col} IS NOT NULL")
            elif p.op == "in":
                values = [_param(v, declared[p.column]) for v in p.value]
                clauses.append(f"{col} IN ({', '.join('?' * len(values))})" if values else "0")
                params.extend(values)
            else:
                params.append(_param(p.value, declared[p.column]))
                clauses.append(f"{col} {'<>' if p.op == '!=' else p.op} ?")
        except TypeError:
            rest.append(p)
    return clauses, params, rest


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_sql(table: str, columns: Sequence[str], predicates: Sequence[ColumnPredicate],
               declared: dict[str, str]) -> tuple[str, list[Any], list[ColumnPredicate]]:
    """The parameterized SELECT a scan sends for one rowid range (its two ``?`` first).

    Returns the SQL text, the predicate parameters (after the rowid bounds), and the predicates
    SQL cannot evaluate exactly (applied in Arrow). EXPLAIN prints the same text.
    """
    clauses, params, rest = _where(predicates, declared)
    select = ", ".join(_quote(c) for c in columns) or "1"
    sql = (f"SELECT {select} FROM {_quote(table)} WHERE rowid BETWEEN ? AND ?"
           + "".join(f" AND {c}" for c in clauses) + " ORDER BY rowid")
    return sql, params, rest


def connect_readonly(uri: str) -> sqlite3.Connection:
    """Open the database at ``uri`` read-only (StorageError if it is missing or not SQLite)."""
    path = local_path(uri)
    if path is None:
        raise StorageError("SQLite databases must be on a local filesystem", uri)
    if not os.path.exists(path):
        raise StorageError("file not found (missing database file)", uri)
    try:
        # A URI (percent-encoded by as_uri) so any path works; mode=ro: scans never write.
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database: {exc}", uri) from None


def scan(fragment: Fragment, columns: Sequence[str],
         predicates: Sequence[ColumnPredicate] = ()) -> ScanResult:
    """Read ``columns`` of the rows of one rowid range that pass every predicate."""
    uri, name = fragment.uri, fragment.option("table")
    lo, hi = fragment.option("rowid_range")
    con = connect_readonly(uri)
    try:
        declared = table_columns(con, name, uri)
        missing = [c for c in [*columns, *(p.column for p in predicates)] if c not in declared]
        if missing:
            raise StorageError(f"no column {missing[0]!r} in table {name!r} of the database", uri)
        sql, params, rest = select_sql(name, columns, predicates, declared)
        rows = con.execute(sql, [lo, hi, *params]).fetchall()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot read database: {exc}", uri) from None
    finally:
        con.close()
    try:
        table = rows_to_arrow(rows, columns, declared)
    except ValueError as exc:
        raise StorageError(f"table {name!r}: {exc}", uri) from None
    if rest:
        extra = list(dict.fromkeys(p.column for p in rest if p.column not in columns))
        if extra:  # re-read with the columns the unpushed predicates need
            full = scan(fragment, [*columns, *extra], [p for p in predicates if p not in rest])
            table = filter_table(full.table, rest).select(list(columns))
        else:
            table = filter_table(table, rest)
    rows_in_range = max(0, hi - lo + 1)
    row_bytes = fragment.option("row_bytes", 0)
    return ScanResult(table=table, bytes_read=int(rows_in_range * row_bytes),
                      rows_scanned=rows_in_range)


def table_columns(con: sqlite3.Connection, name: str, uri: str) -> dict[str, str]:
    """Column name -> canonical declared type of table ``name`` (StorageError naming the
    file and the table if there is no such table)."""
    info = con.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
    if not info:
        raise StorageError(f"no table {name!r} in the database", uri)
    return {row[1]: canonical(row[2] or "") for row in info}


def rows_to_arrow(rows: list[tuple[Any, ...]], columns: Sequence[str],
                  declared: dict[str, str]) -> pa.Table:
    """The ``columns`` of SQLite result ``rows`` as an Arrow table of the declared types."""
    arrays = []
    for j, c in enumerate(columns):
        t = _DECLARED[declared[c]]
        values = [r[j] for r in rows]
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            arrays.append(pa.array(values, pa.string()).cast(t))
        elif pa.types.is_boolean(t):
            arrays.append(pa.array([_boolean(v, c) for v in values], t))
        else:
            arrays.append(pa.array(values, t))
    return pa.table(arrays, names=list(columns)) if columns else pa.table({})


# SQLite has no boolean storage class: a BOOLEAN column (NUMERIC affinity) holds the integers
# 1 and 0 (TRUE and FALSE are their keywords since 3.23), or text where a writer stored words.
_BOOLEAN_TEXT = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


def _boolean(value: Any, column: str) -> bool | None:
    """A stored value of BOOLEAN column ``column`` as a bool (None for NULL).

    Integers and reals are true when non-zero (SQLite's own rule for a condition); the
    words true/false (t/f, 1/0) in any case are read as such; anything else raises
    ValueError (the scan names the file)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[value.strip().lower()]
    raise ValueError(f"column {column!r} is declared BOOLEAN but holds {value!r}, which is "
                     "not a boolean (expected 1/0 or true/false)")


def load(path: str, name: str, schema: pa.Schema, tables: Iterable[pa.Table]
         ) -> list[tuple[int, int]]:
    """Create table ``name`` in the database at ``path`` and insert ``tables`` in order.

    Returns the ``(first_rowid, last_rowid)`` range of each input table (its fragment).
    """
    cols = ", ".join(f'"{f.name}" {declared_type(f.type)}' for f in schema)
    marks = ", ".join("?" * (len(schema) + 1))
    ranges: list[tuple[int, int]] = []
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(f'CREATE TABLE "{name}" ({cols})')
            next_id = 1
            for t in tables:
                data = [_to_stored(t.column(i)) for i in range(t.num_columns)]
                ids = range(next_id, next_id + t.num_rows)
                con.executemany(f'INSERT INTO "{name}" (rowid, {", ".join(schema.names)}) '
                                f"VALUES ({marks})", zip(ids, *data, strict=True))
                ranges.append((next_id, next_id + t.num_rows - 1))
                next_id += t.num_rows
    finally:
        con.close()
    return ranges


def average_row_bytes(path: str, name: str, rows: int) -> float:
    """Database bytes per stored row (the basis of the ``bytes_read`` estimate)."""
    con = sqlite3.connect(path)
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    return pages * size / max(1, rows)
