"""The correctness oracle: DuckDB runs the same query over the same files.

:func:`duckdb_sql` transpiles Trino SQL to DuckDB with sqlglot and repairs the places where
the two engines give the same text different meanings, so DuckDB computes Trino's answer:

* ``date_diff(unit, a, b)``: Trino counts whole units elapsed; DuckDB's ``date_diff`` counts
  unit boundaries crossed (``date_diff('day', '01-01 23:00', '01-02 01:00')`` is 0 in Trino,
  1 in DuckDB). DuckDB's ``date_sub`` counts whole units, so date_diff becomes date_sub.
* scalar functions whose results differ (split_part and regexp_extract out of range,
  date_format's tokens, from_unixtime, date + INTERVAL): see :mod:`mpp.oracle_functions`.
* ``date_trunc`` of a DATE is a DATE in Trino and a TIMESTAMP in DuckDB: cast back.
* ``EXTRACT(DOW ...)`` counts Monday as 1, Sunday as 7 in Trino; DuckDB's DAYOFWEEK counts
  Sunday as 0: it becomes ISODOW (and YEAR_OF_WEEK becomes ISOYEAR).
* ``substring(s, start, length)``: Trino gives '' for a start of 0, a length below 1 or a
  negative start before the beginning; DuckDB counts such ranges from position 0 (see
  :func:`_trino_substring`).
* CAST(double AS integer) rounds half away from zero in Trino, half to even in DuckDB: the
  operand is wrapped in DuckDB's ``round`` (half away from zero).
* a double divided by zero is +-Infinity/NaN in Trino and NULL in DuckDB unless
  ``ieee_floating_point_ops`` is set, which :func:`run_oracle` does.
* decimal ``/`` and ``avg`` of decimals are DECIMALs rounded half up in Trino and DOUBLEs in
  DuckDB: see :mod:`mpp.oracle_decimal`.
* integer ``/`` truncates in Trino and is a double division in DuckDB: sqlglot rewrites typed
  divisions once the operand types are known, so the query is typed against the catalog schema.
* CAST(timestamp AS varchar) prints six fractional digits in Trino (timestamp(6), as mpp types
  every timestamp: ``2017-01-01 00:12:13.000000``); DuckDB drops zero digits
  (``2017-01-01 00:12:13``): the operand is printed with ``strftime(..., '%f')``.
* CAST(double AS varchar) is Java's ``DecimalFormat("0.0###################E0")`` in Trino
  (``1.0E1``, ``1.0E-5``, ``1.23456789E7``, ``0E0``, ``NaN``, ``Infinity``) and the shortest
  round-trip decimal in DuckDB (``10.0``, ``1e-05``): the DuckDB text is taken apart into its
  significant digits and decimal exponent and put back together in Trino's layout. A REAL is
  Trino's ``DecimalFormat("0.0#####E0")`` of the float's shortest digits: at most seven
  significant digits, from DuckDB's ``printf('%.6e')`` of that value (see ``_REAL_TEXT``).
  Sub-expressions are bound once with DuckDB lambdas (``list_transform([x], lambda ...)``).
  Beyond the magnitudes where mpp prints Trino's text (:data:`mpp.logical.evaluate.
  _TEXT_RANGE`; mpp raises there) the translation prints the shortest digits.

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
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from mpp.catalog.model import TableInfo
from mpp.oracle_decimal import decimal_type, repair_decimals
from mpp.oracle_functions import translate_functions, written_formats
from mpp.sql.parse import DIALECT, parse
from mpp.storage import PATH_PARTITION
from mpp.storage.base import ColumnPredicate, Fragment, StorageFormat
from mpp.storage.files import local_path
from mpp.storage.predicates import balanced

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
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    for test, name in _SQL_TYPES:
        if test(t):
            return name
    return "VARCHAR"


def _typed(tree: exp.Expr, schema: dict[str, object] | None) -> exp.Expr:
    """``tree`` qualified and type-annotated (best effort: untyped if sqlglot cannot)."""
    try:
        if schema:
            # A copy: qualify changes the tree before it may fail (it renames a derived table's
            # columns to its column aliases, then cannot resolve ORDER BY c1 inside it).
            tree = qualify(tree.copy(), schema=schema, dialect=DIALECT, quote_identifiers=False,
                           identify=False)
        return annotate_types(tree, schema=schema, dialect=DIALECT)
    except SqlglotError:
        return tree


def _balance_chains(tree: exp.Expr) -> exp.Expr:
    """``tree`` with every chain of ANDs (ORs) rebuilt as a balanced tree of the same terms.

    sqlglot parses ``a OR b OR c ...`` one level per term, and its qualifier looks up the
    ancestors of every column: quadratic in a generated chain of thousands of terms. AND and
    OR are associative (in three-valued logic too), so the balanced tree means the same.
    """
    for kind in (exp.And, exp.Or):
        tops = [n for n in tree.find_all(kind) if type(n.parent) is not kind]
        for top in tops:
            terms = list(top.flatten(unnest=False))  # without recursion
            if len(terms) > 2:
                rebuilt = balanced([t.pop() for t in terms],
                                   lambda a, b, k=kind: k(this=a, expression=b))
                if top is tree:
                    tree = rebuilt
                else:
                    top.replace(rebuilt)
    return tree


def duckdb_sql(trino_sql: str, schema: dict[str, object] | None = None) -> str:
    """``trino_sql`` as DuckDB SQL with Trino's meaning.

    ``schema`` (``{table: {column: sql type}}``) lets sqlglot type the query, which integer
    division and date_trunc of dates need; without it, only literal operands are typed.

    >>> duckdb_sql("SELECT date_diff('day', a, b) FROM t")
    "SELECT DATE_SUB('day', a, b) FROM t"
    """
    tree = repair_decimals(_typed(written_formats(_balance_chains(parse(trino_sql)),
                                          trino_sql), schema))
    # (before the casts below add DuckDB STRFTIME calls of their own)
    tree = translate_functions(tree)
    for node in list(tree.find_all(exp.DateDiff)):
        unit = node.args.get("unit")
        name = unit.name.lower() if unit is not None else "day"
        # Trino's date_diff(unit, start, end) is DateDiff(this=end, expression=start).
        node.replace(exp.Anonymous(this="DATE_SUB", expressions=[
            exp.Literal.string(name), node.expression.copy(), node.this.copy()]))
    for cast in reversed(list(tree.find_all(exp.Cast))):  # inner casts first
        # Trino rounds a double half away from zero when casting it to an integer; DuckDB
        # rounds half to even. DuckDB's round() is half away from zero.
        if cast.to.is_type(*exp.DataType.INTEGER_TYPES) and cast.this.is_type(
                *exp.DataType.REAL_TYPES):
            cast.this.replace(exp.Round(this=cast.this.copy()))
        elif cast.to.is_type(*exp.DataType.TEXT_TYPES) and not isinstance(cast, exp.TryCast):
            text = _trino_text(cast.this)
            if text is not None:
                cast.replace(text)
    for total in list(tree.find_all(exp.Sum)):
        # Trino's sum of integers is a BIGINT that fails on overflow ("bigint addition
        # overflow"); DuckDB's is a HUGEINT that does not. The cast fails where Trino does.
        if total.this.type is not None and total.this.is_type(*exp.DataType.INTEGER_TYPES):
            # sum(x) FILTER (WHERE c), and over a window: the cast goes around the whole call
            # (CAST(sum(x)) OVER is no SQL).
            call = total.parent if isinstance(total.parent, exp.Filter) else total
            window = call.parent
            target = window if isinstance(window, exp.Window) and window.this is call else call
            target.replace(exp.cast(target.copy(), exp.DType.BIGINT))
    for pick in list(tree.find_all(exp.ArgMin, exp.ArgMax)):
        # Trino's min_by/max_by skip rows whose ordering value is NULL but keep a NULL value;
        # DuckDB's arg_min/arg_max skip a NULL value too; its arg_min_null does not.
        name = "ARG_MIN_NULL" if isinstance(pick, exp.ArgMin) else "ARG_MAX_NULL"
        pick.replace(exp.Anonymous(this=name, expressions=[pick.this.copy(),
                                                           pick.expression.copy()]))
    for count_if in list(tree.find_all(exp.CountIf)):
        # Trino's count_if is 0 over no rows; DuckDB's is NULL there. A count is 0.
        count_if.replace(exp.Count(this=exp.Case(ifs=[exp.If(this=count_if.this.copy(),
                                                             true=exp.Literal.number(1))])))
    for extract in tree.find_all(exp.Extract):
        field = _EXTRACT_FIELDS.get(extract.this.name.lower())
        if field is not None:
            extract.set("this", exp.var(field))
    for sub in reversed(list(tree.find_all(exp.Substring))):  # inner ones first
        sub.replace(_trino_substring(sub))
    for trunc in list(tree.find_all(exp.TimestampTrunc, exp.DateTrunc)):
        if trunc.this.type is not None and trunc.this.is_type(exp.DType.DATE):
            trunc.replace(exp.cast(trunc.copy(), exp.DType.DATE))
    return tree.sql(dialect="duckdb")


# Trino's EXTRACT fields whose DuckDB name or meaning differs.
_EXTRACT_FIELDS = {"dow": "ISODOW", "day_of_week": "ISODOW", "dayofweek": "ISODOW",
                   "yow": "ISOYEAR", "year_of_week": "ISOYEAR", "day_of_year": "DOY",
                   "day_of_month": "DAY"}


def _trino_substring(node: exp.Substring) -> exp.Expr:
    """DuckDB SQL for Trino's ``substr(s, start[, length])`` (StringFunctions.substr): NULL if
    any argument is, '' for a start of 0, a length below 1 or a start before the beginning,
    else DuckDB's SUBSTRING (the same 1-based, from-the-end-when-negative slice)."""
    value = node.this.sql(dialect="duckdb")
    start = node.args["start"].sql(dialect="duckdb")
    length = node.args.get("length")
    parts = [value, start] + ([length.sql(dialect="duckdb")] if length is not None else [])
    empty = [f"({start}) = 0", f"({start}) < -LENGTH({value})"]
    if length is not None:
        empty.append(f"({parts[2]}) <= 0")
    nulls = " OR ".join(f"({p}) IS NULL" for p in parts)
    return sqlglot.parse_one(
        f"(CASE WHEN {nulls} THEN NULL WHEN {' OR '.join(empty)} THEN '' "
        f"ELSE SUBSTRING({', '.join(parts)}) END)", read="duckdb")


def _let(value: str, name: str, body: str) -> str:
    """DuckDB SQL for ``body`` with ``name`` bound to ``value`` (evaluated once)."""
    return f"LIST_TRANSFORM([{value}], LAMBDA {name}: {body})[1]"


def _float_text(mantissa: str) -> str:
    """Trino's text of a double or real ``_v``: zeros, NaN and infinities, else ``mantissa``."""
    return _let("_v", "_x", "CASE WHEN _x IS NULL THEN NULL WHEN ISNAN(_x) THEN 'NaN' "
                "WHEN ISINF(_x) THEN CASE WHEN _x > 0 THEN 'Infinity' ELSE '-Infinity' END "
                "WHEN _x = 0 THEN CASE WHEN CAST(_x AS VARCHAR) LIKE '-%' THEN '-0E0' "
                f"ELSE '0E0' END ELSE {mantissa} END")


def _significant(text: str, name: str, body: str) -> str:
    """``body`` with ``{name}_i`` the integer digits of a DuckDB number text (``12.5``,
    ``1e-05``, ``1.5e+17``), ``{name}_g`` all its mantissa digits and ``{name}_d`` those
    without leading and trailing zeros: the significant digits."""
    mantissa = f"SPLIT_PART({text}, 'e', 1)"
    return _let(f"SPLIT_PART({mantissa}, '.', 1)", f"{name}_i", _let(
        f"{name}_i || SPLIT_PART({mantissa}, '.', 2)", f"{name}_g", _let(
            f"RTRIM(LTRIM({name}_g, '0'), '0')", f"{name}_d", body)))


# A finite non-zero DOUBLE: DuckDB's shortest text of abs(x) ('10.0', '1e-05', '1.5e+17') has
# Trino's significant digits d, and the decimal exponent of the first one is the text's
# exponent + len(integer digits) - 1 - (leading zeros of the mantissa digits).
_DOUBLE_TEXT = _float_text(_let("CAST(ABS(_x) AS VARCHAR)", "_s", _significant(
    "_s", "_s",
    "CASE WHEN _x < 0 THEN '-' ELSE '' END || LEFT(_s_d, 1) || '.' || "
    "COALESCE(NULLIF(SUBSTRING(_s_d, 2), ''), '0') || 'E' || "
    "CAST(COALESCE(TRY_CAST(SPLIT_PART(_s, 'e', 2) AS INTEGER), 0) + LENGTH(_s_i) - 1 - "
    "(LENGTH(_s_g) - LENGTH(LTRIM(_s_g, '0'))) AS VARCHAR)")))

# A finite non-zero REAL: Trino formats Double.parseDouble(Float.toString(x)), so first the
# float's shortest decimal: the nearest decimal of p + 1 digits that reads back as x, for the
# least such p (_p), unless DuckDB's own shortest text has fewer digits (it can, next to a
# power of two; and it can have more where the decimal lies exactly halfway between two
# floats, which Java counts in). That value (_f) is printed to seven significant digits:
# printf rounds its exact value half to even, as DecimalFormat does, except that the JDK's
# DecimalFormat rounds a tie up when _f is a whole number below 2^63 (it takes those digits
# for inexact), so such an _f is first rounded half up in integer arithmetic. Trailing zeros
# are dropped down to one fraction digit.
_NEAREST = " ".join(f"WHEN CAST(CAST(PRINTF('%.{p}e', _d) AS DOUBLE) AS FLOAT) = _x THEN {p}"
                    for p in range(8))
_WHOLE = "CAST(ABS(_f) AS HUGEINT)"
_UNIT = f"CAST('1' || REPEAT('0', GREATEST(LENGTH(CAST({_WHOLE} AS VARCHAR)) - 7, 0)) AS HUGEINT)"
_REAL_TEXT = _float_text(_let("CAST(_x AS DOUBLE)", "_d", _let(
    f"CASE {_NEAREST} ELSE 8 END", "_p", _significant(
        "CAST(ABS(_x) AS VARCHAR)", "_s", _let(
            "CASE WHEN LENGTH(_s_d) < _p + 1 THEN CAST(CAST(_x AS VARCHAR) AS DOUBLE) "
            "ELSE CAST(PRINTF('%.' || _p || 'e', _d) AS DOUBLE) END", "_f", _let(
                "PRINTF('%.6e', CASE WHEN _f = TRUNC(_f) AND ABS(_f) < 9.223372036854775808e18 "
                f"THEN SIGN(_f) * CAST(({_WHOLE} + {_UNIT} // 2) // {_UNIT} * {_UNIT} AS DOUBLE) "
                "ELSE _f END)", "_t", _let(
                    "SPLIT_PART(_t, 'e', 1)", "_m",
                    "RTRIM(_m, '0') || CASE WHEN _m LIKE '%.000000' THEN '0' ELSE '' END || "
                    "'E' || CAST(CAST(SPLIT_PART(_t, 'e', 2) AS INTEGER) AS VARCHAR)")))))))
_TIMESTAMP_TEXT = "STRFTIME(_v, '%Y-%m-%d %H:%M:%S.%f')"


def _trino_text(operand: exp.Expr) -> exp.Expr | None:
    """DuckDB's expression for Trino's CAST(operand AS varchar), where the two print it
    differently (timestamps, doubles, reals); None where DuckDB's own cast agrees or the
    operand's type is unknown."""
    if operand.type is None or decimal_type(operand) is not None:
        return None  # DuckDB prints a decimal (1.50) and an integer as Trino does
    if operand.is_type(exp.DType.TIMESTAMP):
        template = _TIMESTAMP_TEXT
    elif operand.is_type(exp.DType.FLOAT):
        template = _REAL_TEXT
    elif operand.is_type(exp.DType.DOUBLE):
        template = _DOUBLE_TEXT
    else:
        return None
    text = sqlglot.parse_one(template, read="duckdb")
    for placeholder in list(text.find_all(exp.Column)):
        if placeholder.name == "_v":  # the operand, placed once
            placeholder.replace(operand.copy())
    return exp.paren(text, copy=False)


def _paths(fragments: list[Fragment]) -> list[str]:
    out = []
    for f in fragments:
        path = local_path(f.uri)
        out.append(path if path is not None else f.uri)
    return list(dict.fromkeys(out))


def _select_typed(info: TableInfo, source: str, not_null: Sequence[str] = ()) -> str:
    """Every column cast to the table's type; ``not_null`` string columns read NULL as ''."""
    cols = ", ".join(
        f'CAST({_coalesced(f.name) if f.name in not_null else repr_name(f.name)} AS '
        f'{sql_type(f.type)}) AS "{f.name}"' for f in info.schema)
    return f"SELECT {cols} FROM {source}"


def repr_name(name: str) -> str:
    """A quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def _coalesced(name: str) -> str:
    return f"COALESCE({repr_name(name)}, '')"


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


def _mysql_table(info: TableInfo, fragments: list[Fragment]) -> pa.Table:
    """All rows of a MySQL table, read with one plain SELECT (no key ranges, no filters)."""
    from mpp.storage import mysql

    uri, name = fragments[0].uri, fragments[0].option("table", info.name)
    with mysql.connect(uri) as con, con.cursor() as cur:
        cur.execute(f"SELECT {', '.join(mysql.quote(c) for c in info.schema.names)} "
                    f"FROM {mysql.quote(name)}")
        rows = cur.fetchall()
    def value(v: Any, t: pa.DataType) -> Any:
        if isinstance(v, bytes):  # BIT(1)
            v = int.from_bytes(v, "big")
        if v is None or not (pa.types.is_floating(t) or pa.types.is_boolean(t)):
            return v
        return float(v) if pa.types.is_floating(t) else bool(v)

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in info.schema]
    return pa.Table.from_arrays(
        [pa.array([value(v, f.type) for v in col], f.type)
         for col, f in zip(columns, info.schema, strict=True)], schema=info.schema)


def _hive(fragments: list[Fragment]) -> str:
    """DuckDB's hive_partitioning flag: true only for registered files in Hive folders."""
    return "true" if fragments[0].option(PATH_PARTITION) else "false"


def _folder_values(info: TableInfo, fragment: Fragment) -> str:
    """``CAST('2024-01-03' AS DATE) AS "day", ...``: a file's Hive folder values as columns."""
    out = []
    for key, value in fragment.partition:
        text = "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"
        out.append(f'CAST({text} AS {sql_type(info.schema.field(key).type)}) AS "{key}"')
    return ", ".join(out)


def _orc_file(info: TableInfo, fragment: Fragment) -> pa.Table:
    """One ORC file's rows in the table's schema (Hive folder values added as columns)."""
    path = local_path(fragment.uri) or fragment.uri
    in_path = dict(fragment.partition) if fragment.option(PATH_PARTITION) else {}
    table = orc.read_table(path)
    cols = [table[f.name] if f.name not in in_path
            else pa.array([in_path[f.name]] * table.num_rows, f.type) for f in info.schema]
    return pa.Table.from_arrays(cols, names=info.schema.names).cast(info.schema)


def register_table(con: duckdb.DuckDBPyConnection, info: TableInfo,
                   fragments: list[Fragment]) -> None:
    """Create a DuckDB view ``info.name`` over the table's fragment files."""
    paths = _paths(fragments)
    name = f'"{info.name}"'
    if not paths:
        con.register(f"_empty_{info.name}", info.schema.empty_table())
        con.execute(f'CREATE VIEW {name} AS SELECT * FROM "_empty_{info.name}"')
    elif info.format is StorageFormat.PARQUET:
        # The files of mpp's tables hold every column: their date=... folders add none. Only
        # registered files in Hive folders take partition columns from the folder names.
        source = f"read_parquet({paths!r}, hive_partitioning = {_hive(fragments)})"
        con.execute(f"CREATE VIEW {name} AS {_select_typed(info, source)}")
    elif info.format is StorageFormat.CSV:
        in_path = {k for k, _ in fragments[0].option(PATH_PARTITION, ())}
        types = {f.name: sql_type(f.type) for f in info.schema if f.name not in in_path}
        strings = [f.name for f in info.schema if sql_type(f.type) == "VARCHAR"
                   and f.name not in in_path]
        # pyarrow reads an empty string field of a string column as "" (not NULL): match it
        # with COALESCE (DuckDB's force_not_null mis-reads a row whose last field is empty
        # when the scan projects columns). The dialect is pyarrow.csv's, stated rather than
        # sniffed (sniffing costs ~0.1 s/file).
        options = (f"header = true, columns = {types!r}, auto_detect = false, delim = ',', "
                   "quote = '\"', escape = '\"', hive_partitioning = false")
        if in_path:
            # Hive folders: one SELECT per file with its folder values (DuckDB's own
            # hive_partitioning with a filter on them mis-reads later files' NULL fields).
            source = "(" + " UNION ALL ".join(
                f"SELECT *, {_folder_values(info, f)} FROM read_csv({local_path(f.uri)!r}, "
                f"{options})" for f in fragments) + ")"
        else:
            source = f"read_csv({paths!r}, {options})"
        con.execute(f"CREATE VIEW {name} AS {_select_typed(info, source, strings)}")
    else:
        if info.format is StorageFormat.ORC:
            table = pa.concat_tables(_orc_file(info, f) for f in fragments)
        elif info.format is StorageFormat.MYSQL:
            table = _mysql_table(info, fragments)
        else:
            table = _sqlite_table(info, fragments)
        con.register(f"_arrow_{info.name}", table)
        con.execute(f'CREATE VIEW {name} AS SELECT * FROM "_arrow_{info.name}"')


def _referenced_tables(sql: str, catalog: OracleCatalog) -> list[str]:
    """The catalog names of the tables ``sql`` reads. Table names match case-insensitively,
    as in the binder and in Trino (``FROM Access_Log`` reads ``access_log``)."""
    tree = parse(sql)
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    known = {name.lower(): name for name in catalog.tables()}
    names = [t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() not in ctes]
    return [known[n] for n in dict.fromkeys(names) if n in known]


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
