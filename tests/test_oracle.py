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
from tests.compare import assert_same_rows

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
    assert formats == set(StorageFormat)


@pytest.mark.parametrize("sql", [p.read_text() for p in QUERIES] + EXTRA,
                         ids=[p.stem for p in QUERIES] + [f"extra{i}" for i in range(len(EXTRA))])
def test_oracle_reads_the_same_rows_as_mpp_storage(sql: str, catalog: Catalog) -> None:
    expected = via_mpp_storage(sql, catalog)
    actual = run_oracle(sql, catalog)
    assert_same_rows(actual, expected)


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
