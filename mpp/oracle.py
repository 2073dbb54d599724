"""The correctness oracle: DuckDB runs the same query over the same files.

:func:`duckdb_sql` transpiles Trino SQL to DuckDB with sqlglot and repairs the places where
the two engines give the same text different meanings, so DuckDB computes Trino's answer:

* ``date_diff(unit, a, b)``: Trino counts whole units elapsed; DuckDB's ``date_diff`` counts
  unit boundaries crossed (``date_diff('day', '01-01 23:00', '01-02 01:00')`` is 0 in Trino,
  1 in DuckDB). DuckDB's ``date_sub`` counts whole units, so date_diff becomes date_sub.
* ``date_trunc`` of a DATE is a DATE in Trino and a TIMESTAMP in DuckDB: cast back.
* CAST(double AS integer) rounds half away from zero in Trino, half to even in DuckDB: the
  operand is wrapped in DuckDB's ``round`` (half away from zero).
* a double divided by zero is +-Infinity/NaN in Trino and NULL in DuckDB unless
  ``ieee_floating_point_ops`` is set, which :func:`run_oracle` does.
* integer ``/`` truncates in Trino and is a double division in DuckDB: sqlglot rewrites typed
  divisions once the operand types are known, so the query is typed against the catalog schema.

:func:`run_oracle` registers one DuckDB view per catalog table the query reads: Parquet via
``read_parquet`` over the fragment files, CSV via ``read_csv`` with the table's types, ORC and
SQLite through pyarrow / sqlite3 into Arrow (DuckDB cannot read ORC, nor load its SQLite
extension offline). Columns are cast to the catalog schema, so both engines see one typing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.orc as orc
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from mpp.catalog.model import TableInfo
from mpp.sql.parse import DIALECT, parse
from mpp.storage.base import ColumnPredicate, Fragment, StorageFormat
from mpp.storage.files import local_path

_SQL_TYPES = [
    (pa.types.is_int8, "TINYINT"), (pa.types.is_int16, "SMALLINT"),
    (pa.types.is_int32, "INTEGER"), (pa.types.is_int64, "BIGINT"),
    (pa.types.is_float32, "REAL"), (pa.types.is_float64, "DOUBLE"),
    (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_date, "DATE"),
    (pa.types.is_timestamp, "TIMESTAMP"),
]


class OracleCatalog(Protocol):
    """What the oracle needs from a catalog: names, schemas and the fragments' files."""

    def table(self, name: str) -> TableInfo: ...

    def tables(self) -> list[str]: ...

    def fragments(self, table: TableInfo,
                  predicates: Sequence[ColumnPredicate]) -> list[Fragment]: ...


def sql_type(t: pa.DataType) -> str:
    """The SQL type name (valid in Trino and DuckDB) of an Arrow type."""
    for test, name in _SQL_TYPES:
        if test(t):
            return name
    return "VARCHAR"


def _typed(tree: exp.Expr, schema: dict[str, object] | None) -> exp.Expr:
    """``tree`` qualified and type-annotated (best effort: untyped if sqlglot cannot)."""
    try:
        if schema:
            tree = qualify(tree, schema=schema, dialect=DIALECT, quote_identifiers=False,
                           identify=False)
        return annotate_types(tree, schema=schema, dialect=DIALECT)
    except SqlglotError:
        return tree


def duckdb_sql(trino_sql: str, schema: dict[str, object] | None = None) -> str:
    """``trino_sql`` as DuckDB SQL with Trino's meaning.

    ``schema`` (``{table: {column: sql type}}``) lets sqlglot type the query, which integer
    division and date_trunc of dates need; without it, only literal operands are typed.

    >>> duckdb_sql("SELECT date_diff('day', a, b) FROM t")
    "SELECT DATE_SUB('day', a, b) FROM t"
    """
    tree = _typed(parse(trino_sql), schema)
    for node in list(tree.find_all(exp.DateDiff)):
        unit = node.args.get("unit")
        name = unit.name.lower() if unit is not None else "day"
        # Trino's date_diff(unit, start, end) is DateDiff(this=end, expression=start).
        node.replace(exp.Anonymous(this="DATE_SUB", expressions=[
            exp.Literal.string(name), node.expression.copy(), node.this.copy()]))
    for cast in list(tree.find_all(exp.Cast)):
        # Trino rounds a double half away from zero when casting it to an integer; DuckDB
        # rounds half to even. DuckDB's round() is half away from zero.
        if cast.to.is_type(*exp.DataType.INTEGER_TYPES) and cast.this.is_type(
                *exp.DataType.REAL_TYPES):
            cast.this.replace(exp.Round(this=cast.this.copy()))
    for trunc in list(tree.find_all(exp.TimestampTrunc, exp.DateTrunc)):
        if trunc.this.type is not None and trunc.this.is_type(exp.DType.DATE):
            trunc.replace(exp.cast(trunc.copy(), exp.DType.DATE))
    return tree.sql(dialect="duckdb")


def _paths(fragments: list[Fragment]) -> list[str]:
    out = []
    for f in fragments:
        path = local_path(f.uri)
        out.append(path if path is not None else f.uri)
    return list(dict.fromkeys(out))


def _select_typed(info: TableInfo, source: str) -> str:
    cols = ", ".join(f'CAST("{f.name}" AS {sql_type(f.type)}) AS "{f.name}"'
                     for f in info.schema)
    return f"SELECT {cols} FROM {source}"


def _sqlite_table(info: TableInfo, fragments: list[Fragment]) -> pa.Table:
    """All rows of a SQLite table, read with sqlite3 (each database/table once)."""
    parts = []
    for uri, name in dict.fromkeys((f.uri, f.option("table", info.name)) for f in fragments):
        con = sqlite3.connect(f"file:{local_path(uri)}?mode=ro", uri=True)
        try:
            names = ", ".join(f'"{c}"' for c in info.schema.names)
            rows = con.execute(f'SELECT {names} FROM "{name}"').fetchall()
        finally:
            con.close()
        arrays = []
        for j, field in enumerate(info.schema):
            values = [r[j] for r in rows]
            if pa.types.is_date(field.type) or pa.types.is_timestamp(field.type):
                arrays.append(pa.array(values, pa.string()).cast(field.type))
            else:
                arrays.append(pa.array(values).cast(field.type))
        parts.append(pa.Table.from_arrays(arrays, schema=info.schema))
    return pa.concat_tables(parts) if parts else info.schema.empty_table()


def register_table(con: duckdb.DuckDBPyConnection, info: TableInfo,
                   fragments: list[Fragment]) -> None:
    """Create a DuckDB view ``info.name`` over the table's fragment files."""
    paths = _paths(fragments)
    name = f'"{info.name}"'
    if not paths:
        con.register(f"_empty_{info.name}", info.schema.empty_table())
        con.execute(f'CREATE VIEW {name} AS SELECT * FROM "_empty_{info.name}"')
    elif info.format is StorageFormat.PARQUET:
        # The files hold every column: the date=... folders of partitioned tables add none.
        source = f"read_parquet({paths!r}, hive_partitioning = false)"
        con.execute(f"CREATE VIEW {name} AS {_select_typed(info, source)}")
    elif info.format is StorageFormat.CSV:
        types = {f.name: sql_type(f.type) for f in info.schema}
        strings = [f.name for f in info.schema if sql_type(f.type) == "VARCHAR"]
        # pyarrow reads an empty string field of a string column as "" (not NULL): match it.
        # The dialect is pyarrow.csv's, stated rather than sniffed (sniffing costs ~0.1 s/file).
        source = (f"read_csv({paths!r}, header = true, columns = {types!r}, "
                  "auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
                  "hive_partitioning = false"
                  + (f", force_not_null = {strings!r}" if strings else "") + ")")
        con.execute(f"CREATE VIEW {name} AS {_select_typed(info, source)}")
    else:
        if info.format is StorageFormat.ORC:
            table = pa.concat_tables(orc.read_table(p).select(info.schema.names) for p in paths)
            table = table.cast(info.schema)
        else:
            table = _sqlite_table(info, fragments)
        con.register(f"_arrow_{info.name}", table)
        con.execute(f'CREATE VIEW {name} AS SELECT * FROM "_arrow_{info.name}"')


def _referenced_tables(sql: str, catalog: OracleCatalog) -> list[str]:
    tree = parse(sql)
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    known = set(catalog.tables())
    names = [t.name for t in tree.find_all(exp.Table) if t.name.lower() not in ctes]
    return [n for n in dict.fromkeys(names) if n in known]


def run_oracle(sql: str, catalog: OracleCatalog, **duckdb_config: Any) -> pa.Table:
    """Run Trino ``sql`` on DuckDB over the catalog's files; the result as an Arrow table."""
    con = duckdb.connect(config=duckdb_config or {})
    try:
        con.execute("SET ieee_floating_point_ops = true")  # x / 0e0 is Infinity, as in Trino
        schema: dict[str, object] = {}
        for name in _referenced_tables(sql, catalog):
            info = catalog.table(name)
            register_table(con, info, catalog.fragments(info, []))
            schema[name] = {f.name: sql_type(f.type) for f in info.schema}
        return con.sql(duckdb_sql(sql, schema)).to_arrow_table()
    finally:
        con.close()
