"""DELETE FROM: whole files dropped when the condition is on identity partition columns, only
affected files rewritten otherwise; one snapshot per statement; results equal DuckDB; a
failure before the commit leaves the table as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, SqlError, StorageError, UnknownTableError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = dict(rows=4_000, partitions=8, days=4, hot_day=2, users=300, sessions=400, urls=40)
DAY2 = "DATE '2017-01-02'"


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


def _files(location: str) -> set[str]:
    path = local_path(location) or location
    return {str(p) for p in Path(path).rglob("*.parquet")}


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("delete") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _table(wh: Path, cluster, name: str) -> Session:
    s = _session(Catalog.open(wh), cluster)
    s.sql(f"CREATE TABLE {name} WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB')"
          " AS SELECT * FROM access_log")
    return s


def _check(wh: Path, cluster, name: str, remaining_sql: str) -> Catalog:
    """mpp's read, DuckDB's read of the table's files and DuckDB over the source agree."""
    fresh = Catalog.open(wh)  # metadata, statistics and integrity record checked on load
    actual = _session(fresh, cluster).sql(f"SELECT * FROM {name}").to_arrow()
    assert_same_rows(actual, run_oracle(f"SELECT * FROM {name}", fresh))
    assert_same_rows(actual, run_oracle(remaining_sql, fresh))
    assert fresh.table(name).stats.row_count == actual.num_rows
    return fresh


def _uris(catalog: Catalog, name: str) -> set[str]:
    return {f.uri for f in catalog.fragments(name)}


def test_a_partition_condition_drops_whole_files_without_reading(wh, cluster) -> None:
    s = _table(wh, cluster, "del1")
    before = Catalog.open(wh)
    day2 = {f.uri for f in before.fragments("del1") if dict(f.partition)["date"].day == 2}
    plan = s.explain(f"DELETE FROM del1 WHERE DATE = {DAY2}")
    total = len(before.fragments("del1"))
    assert plan.startswith("DeleteFrom: del1:") and f"fragments={len(day2)} of {total}" in plan
    r = s.sql(f"DELETE FROM del1 WHERE DATE = {DAY2}")  # names are case-insensitive
    assert r.to_arrow().column("rows").to_pylist() == run_oracle(
        f"SELECT count(*) FROM access_log WHERE date = {DAY2}", before).column(0).to_pylist()
    assert r.write is not None and "(metadata only)" in r.write.commit
    assert r.write.write_tasks == () and not r.stats.tasks  # no task ran
    fresh = _check(wh, cluster, "del1", f"SELECT * FROM access_log WHERE date <> {DAY2}")
    assert _uris(fresh, "del1") == _uris(before, "del1") - day2  # nothing rewritten
    snaps = fresh.snapshots("del1")
    assert len(snaps) == 2 and snaps[-1]["operation"] == "overwrite"
    # The old snapshot still reads whole: its files are kept.
    tbl = fresh.iceberg.load_table((iceberg.NAMESPACE, "del1"))
    assert tbl.scan(snapshot_id=snaps[0]["snapshot_id"]).to_arrow().num_rows == 4_000


def test_other_conditions_rewrite_only_the_files_they_change(wh, cluster) -> None:
    s = _table(wh, cluster, "del2")
    before = Catalog.open(wh)
    cond = f"date = {DAY2} AND status = 404"
    r = s.sql(f"DELETE FROM del2\nWHERE {cond}")
    assert r.to_arrow().column("rows").to_pylist() == run_oracle(
        f"SELECT count(*) FROM access_log WHERE {cond}", before).column(0).to_pylist()
    fresh = _check(wh, cluster, "del2", f"SELECT * FROM access_log WHERE NOT ({cond})")
    other_days = {f.uri for f in before.fragments("del2") if dict(f.partition)["date"].day != 2}
    after = _uris(fresh, "del2")
    assert other_days <= after  # files of other days were not candidates: untouched
    assert r.write is not None and "(rewrite)" in r.write.commit
    assert len(fresh.snapshots("del2")) == 2
    text = r.explain_analyze
    assert "[write into del2]" in text and "Commit: Iceberg overwrite" in text


def test_null_conditions_keep_the_row_and_no_match_commits_nothing(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE del3 AS SELECT date, status, bytes FROM access_log WHERE status = 200")
    s.sql("INSERT INTO del3 (date, status) SELECT date, status FROM access_log "
          "WHERE status = 404")  # bytes NULL
    s.sql("DELETE FROM del3 WHERE bytes < 5000")
    _check(wh, cluster, "del3", """
        SELECT date, status, bytes FROM access_log WHERE status = 200 AND bytes >= 5000
        UNION ALL SELECT date, status, NULL FROM access_log WHERE status = 404""")
    snaps = Catalog.open(wh).snapshots("del3")
    r = s.sql("DELETE FROM del3 WHERE status = 12345")
    assert r.to_arrow().column("rows").to_pylist() == [0]
    assert Catalog.open(wh).snapshots("del3") == snaps
    r = s.sql("DELETE FROM del3")
    fresh = _check(wh, cluster, "del3", "SELECT date, status, bytes FROM access_log WHERE false")
    assert len(fresh.snapshots("del3")) == len(snaps) + 1 and fresh.fragments("del3") == []


def test_a_failure_before_the_commit_leaves_the_table_as_it_was(wh, cluster,
                                                                 monkeypatch) -> None:
    _table(wh, cluster, "del4")
    catalog = Catalog.open(wh)
    state = (catalog.snapshots("del4"), catalog.properties("del4"),
             _files(catalog.table("del4").location))
    with pytest.raises(StorageError, match="injected failure"):
        _session(catalog, cluster, **{"write.fail_task": 0}).sql(
            "DELETE FROM del4 WHERE status = 404")

    def broken(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(iceberg, "commit_files", broken)
    with pytest.raises(CatalogError, match="disk full"):
        _session(catalog, cluster).sql("DELETE FROM del4 WHERE status = 404")
    with pytest.raises(CatalogError, match="disk full"):
        _session(catalog, cluster).sql(f"DELETE FROM del4 WHERE date = {DAY2}")
    monkeypatch.undo()
    fresh = Catalog.open(wh)
    assert (fresh.snapshots("del4"), fresh.properties("del4"),
            _files(fresh.table("del4").location)) == state
    _check(wh, cluster, "del4", "SELECT * FROM access_log")


@pytest.mark.parametrize(("sql", "error", "message", "place"), [
    ("DELETE\n  FROM access_log\nWHERE nosuch = 1", SqlError, "unknown column 'nosuch'", (3, 7)),
    ("DELETE FROM nosuch_t WHERE a = 1", UnknownTableError, "unknown table 'nosuch_t'",
     (1, 13)),
    ("DELETE FROM access_log WHERE status IN (SELECT status, bytes FROM access_log)",
     SqlError, "the subquery of IN must return one column, it returns 2", (1, 30)),
])
def test_delete_errors(wh, cluster, sql, error, message, place) -> None:
    s = _session(Catalog.open(wh), cluster)
    with pytest.raises(error) as info:
        s.sql(sql)
    assert message in str(info.value) and (info.value.line, info.value.column) == place


def test_delete_from_an_external_table_is_refused(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE del_orc WITH (format = 'ORC') AS SELECT date, status FROM access_log")
    with pytest.raises(CatalogError, match="external ORC table; DELETE writes Iceberg"):
        s.sql("DELETE FROM del_orc WHERE status = 404")
