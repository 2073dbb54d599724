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
from mpp.logical.evaluate import evaluate, trino_float_text
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
    "CAST(ts AS varchar)", "CAST(d AS varchar)", "CAST(b AS varchar)", "CAST(x AS varchar)",
    "CAST(CAST(x AS real) AS varchar)", "CAST(CAST(CAST(x AS real) AS double) AS varchar)",
    "CAST(i / 4.0 AS varchar)", "CAST(s16 AS varchar)",
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
    # NULL of unknown type on both sides is unknown, not a missing kernel (null, null).
    "NULL = NULL", "NULL <> NULL", "NULL < NULL", "NULL BETWEEN NULL AND NULL",
    "NULL LIKE 'a%'", "NULL NOT LIKE 'a%'", "CASE NULL WHEN NULL THEN 1 ELSE 2 END",
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


# CAST(double AS varchar) edges: integral values, 0.1, 1e-5, 1e7, the largest and smallest
# magnitudes mpp prints, negatives, signed zeros, NaN and the infinities. Trino prints every
# double in scientific notation (1.0E1); DuckDB prints its shortest decimal (10.0). As REALs:
# 15066845 is a tie at the eighth digit (Trino rounds it up), 8999999488 a float whose
# shortest decimal 9E9 lies halfway to the next float (DuckDB prints 8999999488.0).
FLOATS = [10.0, 1.0, 100.0, 0.1, 1e-5, 1e7, 12345678.9, 2.5, 0.001, 37.7, 1e15,
          9999999999999998.0, 2.2250738585072014e-308, 1.7e-300, 2.0 ** 52 + 1, 1 / 3, -2.5,
          -1e-7, -123.456, 15066845.0, 8999999488.0, 2.0 ** -96, 3e38, 0.0, -0.0,
          float("nan"), float("inf"), float("-inf"), None]
EDGES = pa.table({"id": pa.array(range(len(FLOATS)), pa.int64()),
                  # 3e38 only as a REAL: a double's text is mpp's below 1E16 (tested below)
                  "x": pa.array([None if v == 3e38 else v for v in FLOATS], pa.float64()),
                  "r": pa.array(FLOATS, pa.float64()).cast(pa.float32())})
EDGE_CATALOG = FakeCatalog({"f": TableInfo("f", StorageFormat.PARQUET, EDGES.schema,
                                           TableStats(len(FLOATS), 0, 1), "memory://f")})


def _edge_column(expr: str, table: pa.Table = EDGES) -> pa.Array | pa.ChunkedArray:
    plan = bind(f"SELECT {expr} FROM f", EDGE_CATALOG)
    assert isinstance(plan.root, Project)
    return evaluate(plan.root.exprs[0], table.rename_columns([f"f.{n}" for n in
                                                               table.column_names]))


@pytest.mark.parametrize("expr", ["CAST(x AS varchar)", "CAST(r AS varchar)",
                                  "CAST(CAST(x AS real) AS varchar)", "CAST(-x AS varchar)"])
def test_cast_of_floats_to_varchar_matches_translated_duckdb(expr: str) -> None:
    con = duckdb.connect()
    con.register("f", EDGES)
    schema = {"f": {f.name: sql_type(f.type) for f in EDGES.schema}}
    expected = con.sql(duckdb_sql(f"SELECT id, {expr} FROM f ORDER BY id", schema))
    actual = _edge_column(expr)
    assert actual.to_pylist() == expected.to_arrow_table().column(1).to_pylist()
    if expr == "CAST(x AS varchar)":  # DuckDB's own cast prints the shortest decimal instead
        naive = con.sql("SELECT CAST(x AS VARCHAR) FROM f ORDER BY id").fetchall()
        assert naive[0][0] == "10.0" and actual[0].as_py() != "10.0"


def test_double_text_is_trinos() -> None:
    # Trino's TestDoubleOperators.testCastToVarchar and TestRealOperators: the text DuckDB
    # cannot print itself, so these few are Trino's own expected values.
    trino = [(37.7, "3.77E1"), (17.1, "1.71E1"), (1200.0, "1.2E3"), (0.0, "0E0"),
             (12345678.9, "1.23456789E7"), (-0.0, "-0E0"), (float("nan"), "NaN"),
             (float("inf"), "Infinity")]
    for value, text in trino:
        assert trino_float_text(value) == text
    real = [(754.1985, "7.541985E2"), (-754.2008, "-7.542008E2"), (1200.0, "1.2E3"),
            (12345678.9, "1.234568E7")]
    for value, text in real:
        assert trino_float_text(value, 32) == text
    assert mpp_column("CAST(x AS varchar)").to_pylist()[:2] == ["2.5E0", "-2.5E0"]


def test_double_text_beyond_the_known_range_is_an_error() -> None:
    # Trino's DecimalFormat takes digits from the JDK's legacy FloatingDecimal, which beyond
    # 1E16 may print more than the shortest digits (1E23 -> 9.999999999999999E22 on JDK 25):
    # mpp refuses rather than print a different text.
    for value, bits in [(1e16, 64), (-1e23, 64), (5e-324, 64), (1e-40, 32)]:
        with pytest.raises(SqlError, match="unsupported: CAST"):
            trino_float_text(value, bits)
    big = EDGES.set_column(1, "x", pa.array([1e16] + FLOATS[1:], pa.float64()))
    with pytest.raises(SqlError, match=r"CAST\(double AS varchar\) of 1e\+16"):
        _edge_column("CAST(x AS varchar)", big)


def test_cast_of_timestamps_to_varchar_keeps_six_fraction_digits(
        con: duckdb.DuckDBPyConnection) -> None:
    # Row 0 is a whole second, row 7 has 250 microseconds: Trino's timestamp(6) text has six
    # fractional digits for both; DuckDB's own cast drops the zeros.
    expr = "CAST(ts AS varchar)"
    actual, expected = mpp_column(expr), duckdb_column(expr, con)
    assert actual.to_pylist() == expected.to_pylist()
    naive = con.execute("SELECT CAST(ts AS VARCHAR) FROM t ORDER BY id").fetchall()
    for row in (0, 7):
        assert actual[row].as_py() != naive[row][0]
        assert actual[row].as_py().startswith(naive[row][0].split(".")[0])
        assert len(actual[row].as_py().split(".")[1]) == 6
