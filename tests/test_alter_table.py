"""ALTER TABLE ... ADD / RENAME / DROP COLUMN: Iceberg schema evolution that older files keep
honouring (read by field id), checked against DuckDB doing the same statements on a copy of
the table, with statistics right after every change and time travel reading old snapshots with
their own schema."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError, UnknownTableError
from mpp.session import Session
from tests.compare import assert_same_rows
from tests.write_oracle import duckdb_after

SPEC = dict(rows=2_000, partitions=4, days=3, hot_day=2, users=100, sessions=200, urls=20)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


@pytest.fixture()
def wh(cluster, tmp_path: Path) -> Path:
    path = tmp_path / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    s = _session(Catalog.open(path), cluster)
    s.sql("CREATE TABLE ev WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB') AS "
          "SELECT user_id, date, status, bytes FROM access_log WHERE date < DATE '2017-01-03'")
    return path


def _duck(table: pa.Table, sql: str) -> pa.Table:
    """``sql`` run by DuckDB over ``table`` as ``ev``."""
    con = duckdb.connect()
    try:
        con.register("ev", table)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


# Each statement in both dialects (the same text: DuckDB runs Trino's ALTER TABLE forms).
EVOLUTION = [
    "ALTER TABLE ev ADD COLUMN note varchar",
    "INSERT INTO ev SELECT user_id, date, status, bytes, 'day 3' FROM access_log "
    "WHERE date = DATE '2017-01-03'",
    "ALTER TABLE ev RENAME COLUMN status TO http_status",
    "UPDATE ev SET note = 'error' WHERE http_status >= 400",
    "ALTER TABLE ev DROP COLUMN bytes",
    "ALTER TABLE ev ADD COLUMN bytes bigint",  # a new column: the old values do not come back
    "INSERT INTO ev (user_id, date, http_status, bytes) VALUES (7, DATE '2017-01-02', CAST(201 AS smallint), 99)",
]

QUERIES = [
    "SELECT * FROM ev",
    "SELECT http_status, count(*) AS n, count(note) AS notes, sum(bytes) AS b FROM ev "
    "WHERE http_status >= 300 GROUP BY http_status",
    "SELECT date, count(*) AS n FROM ev WHERE note IS NULL GROUP BY date",
]


def _check_stats(catalog: Catalog, rows: pa.Table) -> None:
    """The stored statistics count what DuckDB counts in the same rows (a fresh load: the
    integrity check of the new metadata passes too)."""
    stats = Catalog.open(catalog.warehouse).table("ev").stats
    assert stats.row_count == rows.num_rows
    for name in rows.column_names:
        assert stats.columns[name].null_count == rows[name].null_count, name


def test_evolution_matches_duckdb(wh, cluster) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    expected = duckdb_after(catalog, "ev", EVOLUTION, sources=["access_log"])
    for sql in EVOLUTION:
        s.sql(sql)
        if sql.startswith("ALTER"):
            _check_stats(catalog, s.sql("SELECT * FROM ev").to_arrow())
    got = s.sql("SELECT * FROM ev").to_arrow()
    assert got.column_names == expected.column_names == [
        "user_id", "date", "http_status", "note", "bytes"]
    for sql in QUERIES:
        assert_same_rows(s.sql(sql).to_arrow(), _duck(expected, sql))
    _check_stats(catalog, expected)


def _file_columns(catalog: Catalog) -> set[tuple[str, ...]]:
    """The column names written in each current data file of ev."""
    tbl = catalog.iceberg.load_table((iceberg.NAMESPACE, "ev"))
    return {tuple(pq.read_schema(t.file.file_path.removeprefix("file://")).names)
            for t in tbl.scan().plan_files()}


def test_renamed_column_is_read_by_field_id(wh, cluster) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    statements = ["ALTER TABLE ev RENAME COLUMN status TO bytes_", "ALTER TABLE ev RENAME COLUMN "
                  "bytes TO status", "ALTER TABLE ev RENAME COLUMN bytes_ TO bytes"]
    expected = duckdb_after(catalog, "ev", statements)  # status and bytes swap names
    for sql in statements:
        s.sql(sql)
    # No file was rewritten: each still holds the old names, which now mean the other column.
    assert _file_columns(catalog) == {("user_id", "date", "status", "bytes")}
    assert_same_rows(s.sql("SELECT * FROM ev").to_arrow(), expected, check_names=True)
    sql = "SELECT bytes, count(*) AS n, max(status) AS s FROM ev WHERE bytes >= 400 GROUP BY bytes"
    assert_same_rows(s.sql(sql).to_arrow(), _duck(expected, sql))
    _check_stats(catalog, expected)


def test_time_travel_reads_old_snapshots_with_their_schema(wh, cluster) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    before = duckdb_after(catalog, "ev", [])
    old = catalog.snapshots("ev")[-1]["snapshot_id"]
    s.sql("ALTER TABLE ev RENAME COLUMN status TO http_status")
    s.sql("ALTER TABLE ev ADD COLUMN note varchar")
    s.sql("INSERT INTO ev SELECT user_id, date, http_status, bytes, 'x' FROM ev WHERE user_id = 1")
    s.sql("ALTER TABLE ev DROP COLUMN bytes")
    then = s.sql(f"SELECT * FROM ev FOR VERSION AS OF {old}").to_arrow()
    assert then.column_names == ["user_id", "date", "status", "bytes"]
    assert_same_rows(then, before)
    sql = "SELECT status, sum(bytes) AS b FROM ev WHERE status >= 400 GROUP BY status"
    assert_same_rows(s.sql(sql.replace("FROM ev", f"FROM ev FOR VERSION AS OF {old}")).to_arrow(),
                     _duck(before, sql))
    info = Catalog.open(wh).table_at("ev", snapshot_id=old)
    assert info.stats.row_count == before.num_rows
    now = s.sql("SELECT * FROM ev").to_arrow()
    assert now.column_names == ["user_id", "date", "http_status", "note"]
    added = _duck(before, "SELECT count(*) FROM ev WHERE user_id = 1").column(0)[0].as_py()
    assert now.num_rows == before.num_rows + added > before.num_rows


@pytest.mark.parametrize(("sql", "error"), [
    ("ALTER TABLE ev ADD COLUMN STATUS bigint", "column status already exists"),
    ("ALTER TABLE ev RENAME COLUMN nosuch TO x", "unknown column nosuch"),
    ("ALTER TABLE ev RENAME COLUMN status TO Bytes", "column bytes already exists"),
    ("ALTER TABLE ev DROP COLUMN date", "date is a partition column of ev"),
    ("ALTER TABLE ev DROP COLUMN nosuch", "unknown column nosuch"),
    ("ALTER TABLE ev ALTER COLUMN status SET DATA TYPE bigint",
     "changing a column's type or default is not supported"),
    ("ALTER TABLE ev ADD COLUMN c bigint NOT NULL", "column constraints"),
    ("ALTER TABLE ev RENAME TO ev2", "unsupported statement: ALTER TABLE"),
])
def test_bad_changes_are_refused_and_change_nothing(wh, cluster, sql, error) -> None:
    catalog = Catalog.open(wh)
    s = _session(catalog, cluster)
    before = s.sql("SELECT * FROM ev").to_arrow()
    meta = catalog.iceberg.load_table((iceberg.NAMESPACE, "ev")).metadata_location
    with pytest.raises(SqlError, match=error) as info:
        s.sql(sql)
    assert info.value.line == 1
    assert catalog.iceberg.load_table((iceberg.NAMESPACE, "ev")).metadata_location == meta
    assert_same_rows(s.sql("SELECT * FROM ev").to_arrow(), before, check_names=True)


def test_if_exists_forms_and_unknown_table(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    assert s.sql("ALTER TABLE ev ADD COLUMN IF NOT EXISTS status bigint").to_arrow().column(
        0).to_pylist() == [False]
    assert s.sql("ALTER TABLE ev DROP COLUMN IF EXISTS nosuch").to_arrow().column(
        0).to_pylist() == [False]
    assert s.sql("ALTER TABLE ev RENAME COLUMN IF EXISTS bytes TO size").to_arrow().column(
        0).to_pylist() == [True]
    with pytest.raises(UnknownTableError, match="unknown table 'evv'") as info:
        s.sql("ALTER TABLE evv ADD COLUMN c bigint")
    assert (info.value.line, info.value.column) == (1, 13)


def test_explain_says_what_it_commits(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    text = s.explain("ALTER TABLE ev ADD COLUMN c decimal(10, 2)")
    assert text == ("AlterColumn: ev: ADD COLUMN c decimal(10,2): one Iceberg schema commit, "
                    "metadata only (no data file is read or written; older files are read by "
                    "field id)\n")
