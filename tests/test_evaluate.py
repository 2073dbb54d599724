"""evaluate() against DuckDB: the same expression over the same Arrow table (with NULLs).

Each expression is written once in Trino SQL; mpp binds and evaluates it, DuckDB runs
``duckdb_sql`` of it over the same table, and the two columns must agree row by row.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from mpp.catalog.model import TableInfo, TableStats
from mpp.errors import SqlError
from mpp.logical.evaluate import evaluate
from mpp.logical.nodes import Project
from mpp.oracle import duckdb_sql, sql_type
from mpp.sql import bind
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_rows
from tests.fake_catalog import FakeCatalog

T = dt.datetime
TS = pa.timestamp("us")
TABLE = pa.table({
    "id": pa.array(range(8), pa.int64()),
    "i": pa.array([-7, 7, 0, None, 5, -3, 12, 1], pa.int32()),
    "j": pa.array([2, -2, 3, 4, None, 7, 5, 1], pa.int64()),
    "s16": pa.array([1, None, -2, 300, 4, 5, 6, 7], pa.int16()),
    "x": pa.array([2.5, -2.5, None, 0.1, 1e3, -0.5, 3.49, -7.5], pa.float64()),
    "s": pa.array(["apple", "a_b", None, "a\\b", "", "banana", "A%", "axb"], pa.string()),
    "b": pa.array([True, False, None, True, False, None, True, False], pa.bool_()),
    "d": pa.array([dt.date(2020, 1, 31), dt.date(2020, 2, 29), None, dt.date(2019, 12, 30),
                   dt.date(2020, 3, 31), dt.date(2021, 1, 1), dt.date(2020, 5, 17),
                   dt.date(2020, 1, 1)], pa.date32()),
    "ts": pa.array([T(2020, 1, 31, 10), T(2020, 1, 31, 10), T(2020, 3, 31), T(2020, 1, 1, 23),
                    None, T(2019, 12, 31, 23, 59, 59, 999999), T(2020, 5, 17, 12),
                    T(2020, 2, 29, 8, 30, 15, 250)], TS),
    "ts2": pa.array([T(2020, 2, 29, 9), T(2020, 2, 29, 10), T(2020, 2, 29), T(2020, 1, 2, 1),
                     T(2020, 1, 1), T(2021, 1, 1), T(2019, 11, 17, 12, 0, 1),
                     T(2019, 2, 28, 8, 30, 15, 249)], TS),
})
SCHEMA = {"t": {f.name: sql_type(f.type) for f in TABLE.schema}}
CATALOG = FakeCatalog({"t": TableInfo("t", StorageFormat.PARQUET, TABLE.schema,
                                      TableStats(8, 0, 1), "memory://t")})

EXPRESSIONS = [
    "i + j", "i - j", "i * j", "i / j", "i % j", "x / j", "x % 2", "-i", "s16 * 2", "i + 1.5",
    "x / 0e0", "(x - x) / 0e0",
    "i = j", "i <> j", "i < s16", "x >= 1", "s = 'apple'", "s < 'b'",
    "b AND i > 0", "b OR i > 0", "NOT b", "(i > 0) = b",
    "i IS NULL", "s IS NOT NULL", "i BETWEEN -3 AND 5", "i NOT BETWEEN 0 AND 5",
    "x BETWEEN i AND j", "i IN (1, 7, -7)", "i IN (1, NULL)", "i NOT IN (7, NULL)",
    "i IN (j, 5)", "s IN ('apple', 'axb')",
    "s LIKE 'a%'", "s LIKE 'a_b'", "s LIKE 'a\\b'", "s NOT LIKE '%an%'", "s LIKE '%\\%'",
    "CAST(x AS integer)", "CAST(x AS bigint)", "CAST(i AS double)", "CAST(i AS varchar)",
    "CAST(ts AS date)", "CAST(d AS timestamp)", "CAST('12' AS integer) + i",
    "date_trunc('day', ts)", "date_trunc('month', ts)", "date_trunc('year', ts)",
    "date_trunc('hour', ts)", "date_trunc('minute', ts)", "date_trunc('week', d)",
    "date_trunc('quarter', d)", "date_trunc('month', d)",
    "date_diff('day', ts, ts2)", "date_diff('hour', ts, ts2)", "date_diff('second', ts, ts2)",
    "date_diff('millisecond', ts, ts2)", "date_diff('week', ts, ts2)",
    "date_diff('month', ts, ts2)", "date_diff('quarter', ts, ts2)", "date_diff('year', ts, ts2)",
    "date_diff('day', d, DATE '2020-03-01')", "date_diff('month', d, DATE '2020-02-29')",
    "date_diff('year', d, DATE '2021-01-01')", "date_diff('day', d, ts)",
    "ts >= TIMESTAMP '2020-01-31 10:00:00'", "d = '2020-02-29'", "d < ts",
    "d >= TIMESTAMP '2020-02-29 00:00:00'", "d < TIMESTAMP '2020-02-29 00:00:01'",
    "date_diff('day', ts, ts2) * 2 + i",
    "CASE WHEN i > 0 THEN 'pos' WHEN i < 0 THEN 'neg' END",
    "CASE i WHEN 7 THEN x WHEN -7 THEN j ELSE 0 END", "CASE WHEN b THEN d ELSE ts END",
    "coalesce(i, j, 0)", "coalesce(s, 'none')", "if(b, i, -i)", "CASE WHEN i IS NULL THEN 1 END",
]


def mpp_column(expr: str) -> pa.Array | pa.ChunkedArray:
    plan = bind(f"SELECT {expr} FROM t", CATALOG)
    assert isinstance(plan.root, Project)
    renamed = TABLE.rename_columns([f"t.{n}" for n in TABLE.column_names])
    return evaluate(plan.root.exprs[0], renamed)


def duckdb_column(expr: str, con: duckdb.DuckDBPyConnection) -> pa.ChunkedArray:
    sql = duckdb_sql(f"SELECT id, {expr} FROM t ORDER BY id", SCHEMA)
    return con.sql(sql).to_arrow_table().column(1)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET ieee_floating_point_ops = true")  # as run_oracle does
    c.register("t", TABLE)
    return c


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_evaluate_matches_duckdb(expr: str, con: duckdb.DuckDBPyConnection) -> None:
    actual = pa.table({"id": TABLE["id"], "v": mpp_column(expr)})
    expected = pa.table({"id": TABLE["id"], "v": duckdb_column(expr, con)})
    assert_same_rows(actual, expected)


def test_date_diff_counts_whole_units_not_boundaries(con: duckdb.DuckDBPyConnection) -> None:
    # Row 3: 2020-01-01 23:00 -> 2020-01-02 01:00 is two hours: 0 whole days in Trino, but one
    # day boundary crossed, which is what DuckDB's own date_diff counts.
    expr = "date_diff('day', ts, ts2)"
    assert mpp_column(expr)[3].as_py() == 0
    naive = con.execute("SELECT date_diff('day', ts, ts2) FROM t ORDER BY id").fetchall()
    assert naive[3][0] == 1
    assert duckdb_column(expr, con)[3].as_py() == 0
    assert "DATE_SUB" in duckdb_sql(f"SELECT {expr} FROM t")
    # Month ends: Jan 31 10:00 -> Feb 29 09:00 is not yet a whole month; 10:00 is.
    assert mpp_column("date_diff('month', ts, ts2)")[:2].to_pylist() == [0, 1]


def test_dictionary_encoded_strings_are_decoded() -> None:
    plan = bind("SELECT s LIKE 'a%' FROM t", CATALOG)
    assert isinstance(plan.root, Project)
    table = pa.table({"t.s": TABLE["s"].dictionary_encode()})
    assert evaluate(plan.root.exprs[0], table).to_pylist() == mpp_column("s LIKE 'a%'").to_pylist()


def test_literals_and_constant_expressions_broadcast() -> None:
    assert mpp_column("1 + 2").to_pylist() == [3] * TABLE.num_rows
    assert mpp_column("NULL").null_count == TABLE.num_rows


def test_division_by_zero_is_an_error() -> None:
    with pytest.raises(SqlError, match="divide by zero|division"):
        mpp_column("i / (j - j)")


def test_double_division_by_zero_is_infinite_as_in_trino() -> None:
    values = mpp_column("x / 0e0").to_pylist()
    assert values[0] == float("inf") and values[1] == float("-inf") and values[2] is None
