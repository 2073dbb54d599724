"""UPDATE: only the files holding a matching row are rewritten, one snapshot per statement;
the table's content afterwards equals DuckDB running the same UPDATE on a copy of the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError, UnknownTableError
from mpp.oracle import run_oracle
from mpp.session import Session
from tests.compare import assert_same_rows
from tests.write_oracle import duckdb_after

SPEC = dict(rows=3_000, partitions=6, days=4, hot_day=2, users=300, sessions=400, urls=40)
DAY2 = "DATE '2017-01-02'"


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("update") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _table(wh: Path, cluster, name: str) -> Session:
    s = _session(Catalog.open(wh), cluster)
    s.sql(f"CREATE TABLE {name} WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB')"
          " AS SELECT date, status, bytes, user_id FROM access_log")
    return s


def _update_matches_duckdb(wh: Path, cluster, name: str, sql: str) -> tuple[Catalog, Catalog]:
    """Run ``sql`` in mpp and DuckDB (on a copy of the table as it was): same rows after."""
    before = Catalog.open(wh)
    expected = duckdb_after(before, name, [sql])
    changed = run_oracle(f"SELECT count(*) FROM {name} WHERE {sql.split('WHERE', 1)[1]}",
                         before) if "WHERE" in sql else None
    result = _session(Catalog.open(wh), cluster).sql(sql)
    after = Catalog.open(wh)  # statistics and integrity record checked on load
    actual = _session(after, cluster).sql(f"SELECT * FROM {name}").to_arrow()
    assert_same_rows(actual, expected)
    assert_same_rows(actual, run_oracle(f"SELECT * FROM {name}", after))  # files as DuckDB reads
    assert after.table(name).stats.row_count == actual.num_rows
    if changed is not None:
        assert result.to_arrow().column("rows").to_pylist() == changed.column(0).to_pylist()
    return before, after


def test_update_rewrites_only_files_with_a_matching_row(wh, cluster) -> None:
    _table(wh, cluster, "upd1")
    sql = (f"UPDATE upd1 SET bytes = bytes * 2 + 1, status = CAST(410 AS smallint) "
           f"WHERE status = 404 AND date = {DAY2}")
    assert _session(Catalog.open(wh), cluster).explain(sql).startswith("UpdateTable: upd1:")
    before, after = _update_matches_duckdb(wh, cluster, "upd1", sql)
    old, new = {f.uri for f in before.fragments("upd1")}, {f.uri for f in after.fragments("upd1")}
    other_days = {f.uri for f in before.fragments("upd1") if dict(f.partition)["date"].day != 2}
    assert other_days <= new  # not candidates: untouched
    assert old - new and new - old  # some day-2 files were rewritten
    snaps = after.snapshots("upd1")
    assert len(snaps) == 2 and snaps[-1]["operation"] == "overwrite"


def test_null_condition_keeps_the_row_no_match_commits_nothing_no_where_updates_all(
        wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE upd2 AS SELECT date, status, bytes FROM access_log WHERE status = 200")
    s.sql("INSERT INTO upd2 (date, status) SELECT date, status FROM access_log "
          "WHERE status = 404")  # bytes NULL
    _update_matches_duckdb(wh, cluster, "upd2", "UPDATE upd2 SET status = CAST(1 AS smallint) WHERE bytes < 5000")
    snaps = Catalog.open(wh).snapshots("upd2")
    r = s.sql("UPDATE upd2 SET status = CAST(2 AS smallint) WHERE status = 12345")
    assert r.to_arrow().column("rows").to_pylist() == [0] and r.write is not None
    assert "no snapshot" in r.write.commit and Catalog.open(wh).snapshots("upd2") == snaps
    _update_matches_duckdb(wh, cluster, "upd2", "UPDATE upd2 SET bytes = coalesce(bytes, 0) - 1")
    assert len(Catalog.open(wh).snapshots("upd2")) == len(snaps) + 1


def test_updating_the_partition_column_moves_rows_to_their_new_partition(wh, cluster) -> None:
    _table(wh, cluster, "upd3")
    _, after = _update_matches_duckdb(
        wh, cluster, "upd3", "UPDATE upd3 SET date = DATE '2017-02-01' WHERE status = 404")
    days = {dict(f.partition)["date"] for f in after.fragments("upd3")}
    assert any(d.month == 2 for d in days)
    for f in after.fragments("upd3"):  # each file still holds one date
        lo, hi = next((lo, hi) for c, lo, hi in f.bounds if c == "date")
        assert lo == hi == dict(f.partition)["date"]


@pytest.mark.parametrize(("sql", "error", "message"), [
    ("UPDATE upd4 SET nosuch = 1", SqlError, "unknown column nosuch"),
    ("UPDATE upd4 SET status = 'x'", SqlError, "column status is"),
    ("UPDATE upd4 SET status = 1 WHERE nosuch = 2", SqlError, "nosuch"),
    ("UPDATE nosuch_t SET a = 1", UnknownTableError, "unknown table 'nosuch_t'"),
    ("UPDATE upd4 SET status = 1, status = 2", SqlError, "more than once"),
])
def test_update_errors_change_nothing(wh, cluster, sql, error, message) -> None:
    s = _session(Catalog.open(wh), cluster)
    if "upd4" not in s.catalog.tables():
        s.sql("CREATE TABLE upd4 AS SELECT status, bytes FROM access_log")
    snaps = Catalog.open(wh).snapshots("upd4")
    with pytest.raises(error, match=message):
        s.sql(sql)
    assert Catalog.open(wh).snapshots("upd4") == snaps
