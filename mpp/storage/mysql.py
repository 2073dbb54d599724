"""MySQL / MariaDB: a live row-store RDB read in place (the source notes' "master table in MySQL").

A registered MySQL table is read where it lives, never copied. Its fragments are ranges of its
integer primary key (options ``table``, ``key``, ``key_range``), so several tasks read one table
in parallel, each with one parameterized ``SELECT`` that carries the pushed filters and only the
needed columns; a table without a one-column integer primary key is one fragment. EXPLAIN
prints the same SQL text the scans send.

What is pushed into the SQL, and what is not (Trino's MySQL connector draws the same lines):

- comparisons and ``IN`` on numbers, dates and timestamps: MySQL evaluates them as Trino does;
- comparisons on strings are sent as ``BINARY col op %s``: MySQL's default collations compare
  text case-insensitively and ignore trailing spaces (``'kr' = 'KR '`` is true there), Trino
  compares code points, and a byte comparison of UTF-8 is the same order as code points;
- booleans are not pushed (a ``TINYINT(1)`` may hold 2), Arrow compares the values read.

Connections: ``mysql://user[:password]@host[:port]/database``; the password may instead come
from the ``MPP_MYSQL_PASSWORD`` environment variable (of the workers, too). Every session
runs with ``time_zone = '+00:00'`` so TIMESTAMP columns read as stored UTC. Messages and EXPLAIN
show the address without its password (:func:`redact`).

``bytes_read`` is an estimate (MySQL does not report I/O per query): rows in the key range
times the table's average row length from ``information_schema.TABLES``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

from mpp.errors import StorageError
from mpp.storage.base import ColumnPredicate, Fragment, ScanResult
from mpp.storage.files import redact_uri
from mpp.storage.predicates import filter_table

SCHEME = "mysql"
PASSWORD_ENV = "MPP_MYSQL_PASSWORD"

# MySQL DATA_TYPE -> Arrow type (signed forms; see column_type for UNSIGNED and TINYINT(1)).
_TYPES: dict[str, pa.DataType] = {
    "tinyint": pa.int8(), "smallint": pa.int16(), "mediumint": pa.int32(), "int": pa.int32(),
    "integer": pa.int32(), "bigint": pa.int64(), "year": pa.int16(),
    "float": pa.float32(), "double": pa.float64(), "real": pa.float64(),
    # DECIMAL(p, s) stays DECIMAL up to 38 digits (see column_type); wider ones are DOUBLE.
    "decimal": pa.float64(), "numeric": pa.float64(),
    "char": pa.string(), "varchar": pa.string(), "tinytext": pa.string(), "text": pa.string(),
    "mediumtext": pa.string(), "longtext": pa.string(), "enum": pa.string(), "set": pa.string(),
    "json": pa.string(),
    "date": pa.date32(), "datetime": pa.timestamp("us"), "timestamp": pa.timestamp("us"),
}
_WIDER_UNSIGNED = {"tinyint": pa.int16(), "smallint": pa.int32(), "mediumint": pa.int32(),
                   "int": pa.int64(), "integer": pa.int64(), "bigint": pa.int64()}


@dataclass(frozen=True)
class Address:
    """Where a MySQL database is: what :func:`connect` needs, parsed from a ``mysql://`` URL."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    @classmethod
    def parse(cls, uri: str) -> Address:
        """Parse ``mysql://user[:password]@host[:port]/database`` (StorageError if malformed)."""
        parsed = urlparse(uri)
        database = parsed.path.lstrip("/")
        if parsed.scheme != SCHEME or not parsed.hostname or not database or "/" in database:
            raise StorageError("not a MySQL address: expected "
                               "mysql://user[:password]@host[:port]/database", redact(uri))
        try:
            port = parsed.port or 3306
        except ValueError:
            raise StorageError("the port is not a number", redact(uri)) from None
        return cls(parsed.hostname, port, unquote(parsed.username or "root"),
                   unquote(parsed.password) if parsed.password is not None else None,
                   unquote(database))


def is_mysql(uri: str) -> bool:
    """True for a ``mysql://`` address."""
    return uri.startswith(f"{SCHEME}://")


def redact(uri: str) -> str:
    """``uri`` without its password, for messages, EXPLAIN and the catalog listing."""
    return redact_uri(uri)


@contextlib.contextmanager
def connect(uri: str) -> Iterator[Any]:
    """A connection to the database at ``uri`` (StorageError naming the address if it fails).

    Errors raised by queries inside the block become StorageErrors naming the address too.
    """
    import pymysql  # imported on use: only MySQL scans need the driver

    a = Address.parse(uri)
    password = a.password if a.password is not None else os.environ.get(PASSWORD_ENV, "")
    try:
        con = pymysql.connect(host=a.host, port=a.port, user=a.user, password=password,
                              database=a.database, connect_timeout=10, charset="utf8mb4",
                              init_command="SET time_zone = '+00:00'")
    except pymysql.MySQLError as exc:
        raise StorageError(f"cannot connect to the database: {_reason(exc)}",
                           redact(uri)) from None
    try:
        yield con
    except pymysql.MySQLError as exc:
        raise StorageError(f"cannot read the database: {_reason(exc)}", redact(uri)) from None
    finally:
        con.close()


def _reason(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) >= 2 else str(exc)


def quote(name: str) -> str:
    """``name`` as a MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def column_type(data_type: str, column_type_text: str) -> pa.DataType | None:
    """The Arrow type of a column from ``information_schema.COLUMNS`` (None: not readable).

    ``DECIMAL(p, s)`` is DECIMAL(p, s) up to 38 digits (Trino's limit), DOUBLE beyond.
    ``TINYINT(1)`` and ``BIT(1)`` are BOOLEAN (MySQL's BOOLEAN is ``TINYINT(1)``); unsigned
    integers widen so every value fits (BIGINT UNSIGNED stays BIGINT: values past 2^63 fail
    the scan, naming the column).
    """
    data_type = data_type.lower()
    text = column_type_text.lower()
    if text.startswith("tinyint(1)") or text == "bit(1)":
        return pa.bool_()
    if "unsigned" in text and data_type in _WIDER_UNSIGNED:
        return _WIDER_UNSIGNED[data_type]
    if data_type in ("decimal", "numeric"):
        digits = re.search(r"\((\d+)(?:,\s*(\d+))?\)", text)
        precision, scale = (int(digits.group(1)), int(digits.group(2) or 0)) if digits else (10, 0)
        if precision <= 38:
            return pa.decimal128(precision, scale)
    return _TYPES.get(data_type)


def table_columns(con: Any, table: str, uri: str) -> dict[str, tuple[pa.DataType, str]]:
    """Column name -> (Arrow type, MySQL type) of ``table``, in table order.

    StorageError naming the address and the table if there is no such table, or naming the
    column if mpp cannot read its type (BLOB, GEOMETRY, TIME, BIT(n)).
    """
    with con.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
                    "ORDER BY ORDINAL_POSITION", (table,))
        rows = cur.fetchall()
    if not rows:
        raise StorageError(f"no table {table!r} in the database", redact(uri))
    out: dict[str, tuple[pa.DataType, str]] = {}
    for name, data_type, text in rows:
        t = column_type(str(data_type), str(text))
        if t is None:
            raise StorageError(
                f"table {table!r}: column {name!r} has type {text}, which mpp cannot read "
                "(register a view of the table without it, with --source-table)", redact(uri))
        out[str(name)] = (t, str(text))
    return out


def _param(value: Any, t: pa.DataType) -> Any:
    """``value`` as a query parameter for a column of Arrow type ``t``, or raise TypeError."""
    if isinstance(value, bool) or pa.types.is_boolean(t):
        raise TypeError(value)  # booleans: compared in Arrow (see the module docstring)
    if pa.types.is_timestamp(t) and isinstance(value, dt.date):
        return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    if pa.types.is_date(t) and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if pa.types.is_integer(t) and isinstance(value, int):
        return value
    if pa.types.is_floating(t) and isinstance(value, (int, float)) and value == value:
        return value  # NaN is not pushed: MySQL has none
    if pa.types.is_string(t) and isinstance(value, str):
        return value
    raise TypeError(value)


def _where(predicates: Sequence[ColumnPredicate], types: dict[str, pa.DataType]
           ) -> tuple[list[str], list[Any], list[ColumnPredicate]]:
    """SQL conjuncts and parameters for the pushable predicates; the rest for Arrow."""
    clauses: list[str] = []
    params: list[Any] = []
    rest: list[ColumnPredicate] = []
    for p in predicates:
        t = types[p.column]
        col = ("BINARY " if pa.types.is_string(t) else "") + quote(p.column)
        try:
            if p.op == "is_null":
                clauses.append(f"{quote(p.column)} IS NULL")
            elif p.op == "is_not_null":
                clauses.append(f"{quote(p.column)} IS NOT NULL")
            elif p.op == "in":
                values = [_param(v, t) for v in p.value]
                clauses.append(f"{col} IN ({', '.join(['%s'] * len(values))})" if values
                               else "FALSE")
                params.extend(values)
            else:
                params.append(_param(p.value, t))
                clauses.append(f"{col} {'<>' if p.op == '!=' else p.op} %s")
        except TypeError:
            rest.append(p)
    return clauses, params, rest


def select_sql(table: str, key: str | None, columns: Sequence[str],
               predicates: Sequence[ColumnPredicate], types: dict[str, pa.DataType]
               ) -> tuple[str, list[Any], list[ColumnPredicate]]:
    """The parameterized SELECT a scan sends (its two key-range ``%s`` first, if ``key``).

    Returns the SQL text, the predicate parameters (after the key bounds), and the predicates
    SQL cannot evaluate as Trino does (applied in Arrow). EXPLAIN prints the same text.
    """
    clauses, params, rest = _where(predicates, types)
    if key is not None:
        clauses.insert(0, f"{quote(key)} BETWEEN %s AND %s")
    select = ", ".join(quote(c) for c in columns) or "1"
    sql = f"SELECT {select} FROM {quote(table)}"
    return sql + (" WHERE " + " AND ".join(clauses) if clauses else ""), params, rest


def scan_sql(table: str, key: str | None, columns: Sequence[str],
             predicates: Sequence[ColumnPredicate], types: dict[str, pa.DataType]
             ) -> tuple[str, list[Any], list[ColumnPredicate], list[str]]:
    """What a scan sends and reads: :func:`select_sql` over ``columns`` plus the columns of
    the predicates left for Arrow; returns (sql, params, predicates for Arrow, columns read)."""
    rest = _where(predicates, types)[2]
    read = list(dict.fromkeys([*columns, *(p.column for p in rest)]))
    sql, params, _ = select_sql(table, key, read, predicates, types)
    return sql, params, rest, read


def rows_to_arrow(rows: Sequence[tuple[Any, ...]], columns: Sequence[str],
                  types: dict[str, pa.DataType]) -> pa.Table:
    """The ``columns`` of MySQL result ``rows`` as an Arrow table of the registered types.

    Raises ValueError naming the column for a value that does not fit (a zero date, an
    unsigned BIGINT past 2^63, a TINYINT(1) holding 2 is TRUE as in MySQL)."""
    arrays = []
    for j, c in enumerate(columns):
        t = types[c]
        values = [r[j] for r in rows]
        try:
            if pa.types.is_boolean(t):
                values = [None if v is None else bool(int.from_bytes(v, "big")
                                                      if isinstance(v, bytes) else v)
                          for v in values]
                arrays.append(pa.array(values, t))
            elif pa.types.is_floating(t) and any(isinstance(v, decimal.Decimal) for v in values):
                arrays.append(pa.array([None if v is None else float(v) for v in values], t))
            else:
                arrays.append(pa.array(values, t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
            raise ValueError(f"column {c!r} holds a value mpp cannot read as {t}: {exc}") from None
    return pa.table(arrays, names=list(columns)) if columns else pa.table({})


def scan(fragment: Fragment, columns: Sequence[str],
         predicates: Sequence[ColumnPredicate] = ()) -> ScanResult:
    """Read ``columns`` of the rows of one key range that pass every predicate."""
    uri, name, key = fragment.uri, fragment.option("table"), fragment.option("key")
    bounds = list(fragment.option("key_range", ())) if key is not None else []
    with connect(uri) as con:
        declared = table_columns(con, name, uri)
        types = {c: t for c, (t, _) in declared.items()}
        missing = [c for c in [*columns, *(p.column for p in predicates)] if c not in types]
        if missing:
            raise StorageError(f"no column {missing[0]!r} in table {name!r} of the database",
                               redact(uri))
        sql, params, rest, read = scan_sql(name, key, columns, predicates, types)
        with con.cursor() as cur:
            cur.execute(sql, [*bounds, *params])
            rows = cur.fetchall()
    try:
        table = rows_to_arrow(rows, read, types)
    except ValueError as exc:
        raise StorageError(f"table {name!r}: {exc}", redact(uri)) from None
    if rest:
        table = filter_table(table, rest).select(list(columns))
    rows_scanned = fragment.row_count if fragment.row_count >= 0 else len(rows)
    return ScanResult(table=table,
                      bytes_read=int(rows_scanned * fragment.option("row_bytes", 0)),
                      rows_scanned=rows_scanned)
