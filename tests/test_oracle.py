"""The DuckDB oracle: Trino -> DuckDB translation, and views over every storage format.

run_oracle reads the warehouse's files with DuckDB's own readers (Parquet, CSV) or pyarrow.orc /
sqlite3; the test checks it against DuckDB over the same tables read by mpp's storage layer,
for every seed query, on a warehouse that mixes all four formats.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from mpp.catalog import Catalog
from mpp.datagen import DatagenSpec, generate
from mpp.oracle import duckdb_sql, run_oracle, sql_type
from mpp.storage import scan_fragment
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_ordered_rows, assert_same_result, order_key_columns

QUERIES = sorted((Path(__file__).parent / "fixtures" / "queries").glob("*.sql"))
EXTRA = [
    "SELECT u.category, count(*) n, sum(a.bytes) FROM access_log a JOIN urls u "
    "ON u.url_id = a.url_id WHERE a.status >= 400 GROUP BY u.category",
    "SELECT b.country, b.plan, count(DISTINCT a.user_id) FROM access_log a "
    "LEFT JOIN users b ON b.user_id = a.user_id GROUP BY 1, 2",
    "SELECT s.user_id, date_diff('hour', s.min_time, max(a.time)) FROM sessions s "
    "JOIN access_log a ON a.session_id = s.session_id GROUP BY s.user_id, s.min_time",
    "SELECT date_trunc('week', created_at) w, count(*) FROM users GROUP BY 1 ORDER BY 1",
]


@pytest.fixture(scope="module")
def catalog(cluster, tmp_path_factory) -> Catalog:  # type: ignore[no-untyped-def]
    spec = DatagenSpec(rows=3_000, partitions=4, days=4, hot_day=2, users=200, sessions=300,
                       urls=30, table_formats=(("users", StorageFormat.SQLITE),
                                               ("sessions", StorageFormat.CSV),
                                               ("urls", StorageFormat.ORC)))
    return generate(tmp_path_factory.mktemp("oracle") / "w", spec, client=cluster.client,
                    progress=False)


def via_mpp_storage(sql: str, catalog: Catalog) -> pa.Table:
    """DuckDB over Arrow tables that mpp's own scans read from the same fragments."""
    con = duckdb.connect()
    schema = {}
    for name in catalog.tables():
        info = catalog.table(name)
        parts = [scan_fragment(f, info.schema.names).table for f in catalog.fragments(info, [])]
        con.register(name, pa.concat_tables(parts).cast(info.schema))
        schema[name] = {f.name: sql_type(f.type) for f in info.schema}
    return con.sql(duckdb_sql(sql, schema)).to_arrow_table()


def test_the_warehouse_mixes_every_format(catalog: Catalog) -> None:
    formats = {catalog.table(t).format for t in catalog.tables()}
    # every format mpp writes; MySQL tables (read in place from a server) are test_mysql's
    assert formats == {f for f in StorageFormat if f.writable}


@pytest.mark.parametrize("sql", [p.read_text() for p in QUERIES] + EXTRA,
                         ids=[p.stem for p in QUERIES] + [f"extra{i}" for i in range(len(EXTRA))])
def test_oracle_reads_the_same_rows_as_mpp_storage(sql: str, catalog: Catalog) -> None:
    expected = via_mpp_storage(sql, catalog)
    actual = run_oracle(sql, catalog)
    assert_same_result(actual, expected, sql)


def test_oracle_sees_every_row(catalog: Catalog) -> None:
    counts = run_oracle("SELECT count(*), count(DISTINCT date) FROM access_log", catalog)
    assert counts.to_pylist()[0] == {"_col_0": 3_000, "_col_1": 4}


def test_date_diff_is_translated_to_date_sub() -> None:
    sql = duckdb_sql("SELECT date_diff('day', a, b) FROM t")
    assert sql == "SELECT DATE_SUB('day', a, b) FROM t"
    trino = ("SELECT date_diff('day', TIMESTAMP '2017-01-01 23:00:00', "
             "TIMESTAMP '2017-01-02 01:00:00')")
    assert duckdb.sql(duckdb_sql(trino)).fetchall() == [(0,)]  # whole days elapsed
    assert duckdb.sql(trino).fetchall() == [(1,)]  # DuckDB's own date_diff: boundaries crossed


def test_integer_division_and_date_trunc_of_dates_keep_trino_types() -> None:
    schema = {"t": {"a": "INTEGER", "b": "BIGINT", "d": "DATE"}}
    sql = duckdb_sql("SELECT a / b, date_trunc('month', d) FROM t", schema)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT -7 a, 2::BIGINT b, DATE '2020-05-17' d")
    row = con.sql(sql).fetchall()[0]
    assert row[0] == -3 and str(row[1]) == "2020-05-01"


def test_table_names_match_case_insensitively(catalog: Catalog) -> None:
    # As in the binder and in Trino: Access_Log is access_log (columns too).
    sql = "SELECT Status, COUNT(*) AS N FROM Access_Log GROUP BY STATUS"
    lower = "SELECT status, count(*) AS n FROM access_log GROUP BY status"
    assert_same_result(run_oracle(sql, catalog), via_mpp_storage(lower, catalog), sql)


def test_cast_to_varchar_prints_trinos_text() -> None:
    # Trino: timestamp(6) text keeps six fractional digits; a double is in scientific notation.
    sql = duckdb_sql("SELECT CAST(TIMESTAMP '2017-01-01 00:12:13' AS varchar), "
                     "CAST(TIMESTAMP '2017-01-01 00:12:13.205' AS varchar), CAST(10e0 AS varchar)")
    whole, fraction, ten = duckdb.sql(sql).fetchall()[0]
    assert (whole, fraction) == ("2017-01-01 00:12:13.000000", "2017-01-01 00:12:13.205000")
    assert ten == "1.0E1"
    assert duckdb.sql("SELECT CAST(10e0 AS VARCHAR)").fetchall()[0][0] == "10.0"  # untranslated


SORTED = pa.table({"k": [1, 1, 2, 3, 3, 3], "v": ["a", "b", "c", "d", "e", "f"]})


def test_ordered_comparison_fails_on_a_reversed_result() -> None:
    sql = "SELECT k, v FROM t ORDER BY k"
    reversed_ = SORTED.take(list(range(SORTED.num_rows))[::-1])
    assert_same_result(reversed_, SORTED, "SELECT k, v FROM t")  # unordered: the same rows
    with pytest.raises(AssertionError, match="out of order"):
        assert_same_result(reversed_, SORTED, sql)
    with pytest.raises(AssertionError, match="out of order"):
        assert_same_ordered_rows(reversed_, SORTED, [0])


def test_scenario_checks_compare_order_too() -> None:
    # The runner's "= DuckDB" check uses the same rule as the tests.
    from mpp.scenario.rows import result_difference

    reversed_ = SORTED.take(list(range(SORTED.num_rows))[::-1])
    assert result_difference(reversed_, SORTED, "SELECT k, v FROM t") is None
    diff = result_difference(reversed_, SORTED, "SELECT k, v FROM t ORDER BY k")
    assert diff is not None and diff.startswith("row 0 is out of order")


def test_ordered_comparison_lets_ties_come_in_any_order() -> None:
    ties = SORTED.take([1, 0, 2, 5, 3, 4])  # same k sequence, rows permuted within each k
    assert_same_result(ties, SORTED, "SELECT k, v FROM t ORDER BY k")
    with pytest.raises(AssertionError, match="out of order"):
        assert_same_result(ties, SORTED, "SELECT k, v FROM t ORDER BY k, v")


@pytest.mark.parametrize("sql,keys", [
    ("SELECT date, status, count(*) FROM t GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2", [2, 0, 1]),
    ("SELECT user_id, count(*) c FROM t GROUP BY user_id ORDER BY c DESC, USER_ID", [1, 0]),
    ("SELECT a.x, count(*) FROM t a GROUP BY a.x ORDER BY A.X, count(*)", [0, 1]),
    ("SELECT x s FROM t ORDER BY S", [0]),
    ("SELECT x AS y, y AS x FROM t ORDER BY x", [1]),  # output names before input columns
    ("SELECT x FROM t ORDER BY y, x", []),  # y is hidden: x alone does not order the rows
    ("SELECT * FROM t ORDER BY y, z", [1]),  # SELECT *: the result's names ['x', 'y']
    ("SELECT x FROM t ORDER BY 0E0, 1", []),  # a double constant is not a position
    ("SELECT x FROM t", None),
    ("WITH w AS (SELECT x FROM t ORDER BY x) SELECT x FROM w", None),
])
def test_order_key_columns(sql: str, keys: list[int] | None) -> None:
    names = ["x", "y"] if sql.startswith("SELECT *") else [f"c{i}" for i in range(3)]
    assert order_key_columns(sql, names) == keys


def test_oracle_reads_csv_nulls_under_a_pushed_filter(tmp_path: Path) -> None:
    """Empty fields of non-string CSV columns are NULL, of string columns '' (as pyarrow reads
    them for mpp), also when DuckDB pushes a filter into the CSV scan (with force_not_null,
    DuckDB 2.0 failed to convert the empty date and boolean fields there)."""
    from mpp.catalog import write_fragment

    catalog = Catalog.open(tmp_path / "w", create=True)
    schema = pa.schema([("k", pa.int64()), ("s", pa.string()), ("day", pa.date32()),
                        ("ok", pa.bool_())])
    rows = pa.table({"k": [1, 2, None, 4], "s": ["x", None, "", "y"],
                     "day": pa.array([None, 19_000, 19_001, 19_002], pa.date32()),
                     "ok": [True, None, False, True]}, schema=schema)
    target = catalog.begin_write("lake", schema, StorageFormat.CSV)
    catalog.commit_write(target, [write_fragment(target, 0, rows)])
    for sql in ["SELECT * FROM lake",
                "SELECT l.s, l.k FROM lake l WHERE l.day > DATE '2000-01-01' AND l.ok",
                "SELECT s, count(*) FROM lake WHERE ok IS NULL OR day IS NULL GROUP BY s"]:
        assert_same_result(run_oracle(sql, catalog), via_mpp_storage(sql, catalog), sql)


def test_integer_sum_is_a_bigint_that_overflows_as_in_trino() -> None:
    """Trino's sum(bigint) fails past 2^63 - 1; DuckDB's own would return a HUGEINT."""
    schema = {"t": {"x": "BIGINT", "d": "DOUBLE"}}
    assert duckdb_sql("SELECT sum(x), sum(d) FROM t", schema) == (
        "SELECT CAST(SUM(t.x) AS BIGINT) AS _col_0, SUM(t.d) AS _col_1 FROM t AS t")
    con = duckdb.connect()
    con.register("t", pa.table({"x": [2**62, 2**62, 5], "d": [1.0, 2.0, 3.0]}))
    with pytest.raises(duckdb.ConversionException):
        con.sql(duckdb_sql("SELECT sum(x) FROM t", schema)).fetchall()
    assert con.sql(duckdb_sql("SELECT sum(x) FROM t WHERE x < 10", schema)).fetchall() == [(5,)]


def test_integer_division_by_zero_fails_as_in_trino() -> None:
    """x / 0 and x % 0 are errors in Trino and in the oracle (DuckDB 2.0 raises too), only
    where they are evaluated: the differential test counts on it to call an mpp error there
    a failure."""
    schema = {"t": {"x": "INTEGER", "d": "DOUBLE"}}
    con = duckdb.connect()
    con.register("t", pa.table({"x": pa.array([0, 3], pa.int32()), "d": [0.0, 1.5]}))
    for sql in ["SELECT 10 % x FROM t", "SELECT 10 / x FROM t"]:
        with pytest.raises(duckdb.Error, match="(?i)division by zero|out of range"):
            con.sql(duckdb_sql(sql, schema)).fetchall()
    lazy = "SELECT CASE WHEN x <> 0 THEN 10 % x ELSE -1 END, d % 2 FROM t ORDER BY x"
    assert con.sql(duckdb_sql(lazy, schema)).fetchall() == [(-1, 0.0), (1, 1.5)]


def test_a_failed_qualification_leaves_the_query_as_written() -> None:
    """sqlglot's qualify renames a derived table's columns to its column aliases and then
    fails on an ORDER BY naming an output inside it; the oracle then translates the query as
    written, not the half-rewritten tree (DuckDB: 'Referenced column "c1" not found')."""
    schema = {"t": {"k": "BIGINT", "name": "VARCHAR"}}
    sql = "SELECT s.a1 FROM (SELECT k AS c0, name AS c1 FROM t ORDER BY c1 LIMIT 2) AS s (a0, a1)"
    con = duckdb.connect()
    con.register("t", pa.table({"k": [1, 2, 3], "name": ["b", "a", "c"]}))
    assert sorted(con.sql(duckdb_sql(sql, schema)).fetchall()) == [("a",), ("b",)]
