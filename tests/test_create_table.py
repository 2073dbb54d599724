"""CREATE TABLE t (column type, ...) WITH (partitioning = ARRAY[...]): an empty Iceberg table
with its partition spec; INSERT then writes one file per partition value (identity columns and
year/month/day/hour transforms), and reads equal DuckDB over the same files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.transforms import DayTransform, IdentityTransform

from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, SqlError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.sql.statements import CreateTable, parse_statement
from tests.compare import assert_same_rows

SPEC = dict(rows=4_000, partitions=8, days=4, hot_day=2, users=300, sessions=400, urls=40)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("create") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def test_create_table_then_insert_writes_one_file_per_partition(wh, cluster) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    r = s.sql("CREATE TABLE ev (time timestamp, user_id bigint, status smallint)\n"
              "WITH (format = 'PARQUET', partitioning = ARRAY['day(time)', 'status'])")
    assert r.to_arrow().column("created").to_pylist() == [True]
    fresh = Catalog.open(wh)
    assert fresh.snapshots("ev") == []  # an empty table has no snapshot, as in Trino
    assert fresh.table("ev").partition_columns == ("status",)  # constant per file
    assert s.sql("SELECT count(*) AS n FROM ev").to_arrow().column("n").to_pylist() == [0]
    tbl = fresh.iceberg.load_table((iceberg.NAMESPACE, "ev"))
    assert [(type(f.transform), f.name) for f in tbl.spec().fields] == [
        (DayTransform, "time_day"), (IdentityTransform, "status")]

    source = "SELECT time, user_id, status FROM access_log WHERE status IN (200, 404)"
    s.sql(f"INSERT INTO ev {source}")
    s.sql("INSERT INTO ev (time, status) SELECT time, status FROM access_log WHERE status = 500")
    fresh = Catalog.open(wh)
    assert len(fresh.snapshots("ev")) == 2
    for f in fresh.fragments("ev"):  # one day and one status per file
        bounds = {name: (lo, hi) for name, lo, hi in f.bounds}
        assert bounds["time"][0].date() == bounds["time"][1].date()
        assert bounds["status"][0] == bounds["status"][1] == dict(f.partition)["status"]
    s2 = _session(fresh, cluster)
    expected = (f"{source} UNION ALL SELECT time, NULL, status FROM access_log "
                "WHERE status = 500")
    actual = s2.sql("SELECT * FROM ev").to_arrow()
    assert_same_rows(actual, run_oracle(expected, fresh))
    assert_same_rows(actual, run_oracle("SELECT * FROM ev", fresh))
    query = ("SELECT status, count(*) AS n FROM ev WHERE time < TIMESTAMP '2017-01-02 00:00:00' "
             "GROUP BY status")
    assert_same_rows(s2.sql(query).to_arrow(), run_oracle(query, fresh))


def test_create_table_statement_parsing() -> None:
    stmt = parse_statement("CREATE TABLE IF NOT EXISTS t (a bigint, d date, s varchar)\n"
                           "WITH (partitioning = ARRAY['month(d)', 's'])")
    assert isinstance(stmt, CreateTable)
    assert stmt.partitioning == ("month(d)", "s") and stmt.if_not_exists
    assert [f.name for f in stmt.schema] == ["a", "d", "s"]


@pytest.mark.parametrize(("sql", "message", "line", "column"), [
    ("CREATE TABLE x (a decimal(50,2))", "column a: DECIMAL precision must be 1 to 38", 1, 17),
    ("CREATE TABLE x (a varbinary)", "unsupported column type VARBINARY of column a", 1, 17),
    ("CREATE TABLE x (a bigint)\nWITH (partitioning = ARRAY['bucket(a, 4)'])",
     "partitioning 'bucket(a, 4)': mpp writes a column name or year, month, day or hour", 2, 28),
    ("CREATE TABLE x (a bigint) WITH (partitioning = ARRAY['day(a)'])",
     "partition transform day(a) needs a date or timestamp column; a is bigint", 1, 14),
    ("CREATE TABLE x (a bigint) WITH (partitioning = ARRAY['b'])",
     "partition column 'b' is not a column of x (a)", 1, 14),
    ("CREATE TABLE x (a bigint, a date)", "column a is defined twice", 1, 27),
    ("CREATE TABLE x (a bigint) WITH (format = 'ORC')",
     "CREATE TABLE with columns makes Iceberg (PARQUET) tables", 1, 14),
    ("CREATE TABLE x WITH (partitioning = ARRAY['day(time)']) AS SELECT time FROM t",
     "CREATE TABLE AS partitions by columns", 1, 14),
])
def test_create_table_errors(sql: str, message: str, line: int, column: int) -> None:
    with pytest.raises(SqlError) as info:
        parse_statement(sql)
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def test_create_existing_table(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    with pytest.raises(CatalogError, match="already exists"):
        s.sql("CREATE TABLE access_log (a bigint)")
    r = s.sql("CREATE TABLE IF NOT EXISTS access_log (a bigint)")
    assert r.to_arrow().column("created").to_pylist() == [False]
