"""INSERT INTO: appends run on the cluster and commit ONE Iceberg snapshot; results equal
DuckDB over the same files; a failure before the commit leaves the table as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mpp.write.insert as insert_module
from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, SqlError, StorageError, UnknownTableError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = dict(rows=4_000, partitions=8, days=4, hot_day=2, users=300, sessions=400, urls=40)
DAY = "DATE '2017-01-0{}'"


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


def _files(location: str) -> set[str]:
    path = local_path(location) or location
    return {str(p) for p in Path(path).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("insert") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _fresh(wh: Path) -> Catalog:
    """The warehouse as a new process sees it (metadata checked on load)."""
    return Catalog.open(wh)


def _same_as_duckdb(catalog: Catalog, cluster, table: str, expected_sql: str) -> None:
    """mpp's read of ``table``, DuckDB's read of its files, and DuckDB recomputing the content
    from the source (``expected_sql``) are the same rows."""
    s = _session(catalog, cluster)
    actual = s.sql(f"SELECT * FROM {table}").to_arrow()
    assert_same_rows(actual, run_oracle(f"SELECT * FROM {table}", catalog))
    assert_same_rows(actual, run_oracle(expected_sql, catalog))


def test_insert_select_appends_one_snapshot(wh, cluster) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql(f"CREATE TABLE ins1 WITH (partitioned_by = ARRAY['date']) AS "
          f"SELECT * FROM access_log WHERE date = {DAY.format(1)}")
    before = catalog.snapshots("ins1")
    r = s.sql(f"INSERT INTO ins1 SELECT * FROM access_log WHERE date IN ({DAY.format(2)}, "
              f"{DAY.format(3)})")
    expected_rows = run_oracle(f"SELECT count(*) FROM access_log WHERE date IN ({DAY.format(2)}, "
                               f"{DAY.format(3)})", catalog).column(0).to_pylist()
    assert r.to_arrow().column("rows").to_pylist() == expected_rows
    fresh = _fresh(wh)
    after = fresh.snapshots("ins1")
    assert after[:-1] == before and len(after) == len(before) + 1
    assert after[-1]["operation"] == "append"
    _same_as_duckdb(fresh, cluster, "ins1",
                    f"SELECT * FROM access_log WHERE date <= {DAY.format(3)}")
    # A partitioned table gets files of one date each; the statistics count the new rows.
    frags = fresh.fragments("ins1")
    assert all(dict(f.partition)["date"] is not None for f in frags)
    assert len({dict(f.partition)["date"] for f in frags}) == 3
    stats = fresh.table("ins1").stats
    total = run_oracle(f"SELECT count(*), count(DISTINCT date), min(date), max(date) FROM "
                       f"access_log WHERE date <= {DAY.format(3)}", fresh).to_pylist()[0]
    assert (stats.row_count, stats.column("date").distinct_count,
            stats.column("date").min, stats.column("date").max) == tuple(total.values())
    assert stats.fragment_count == len(frags)


def test_insert_values_and_column_lists_fill_nulls_and_widen(wh, cluster) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql("CREATE TABLE ins2 AS SELECT date, user_id, status, bytes FROM access_log "
          "WHERE status = 404")
    # Listed columns in another order; status (smallint) and url_id (integer) widen into
    # bigint user_id and integer bytes; unlisted columns are NULL.
    s.sql("INSERT INTO ins2 (bytes, date, user_id)\nVALUES (7, DATE '2020-01-01', 1), "
          "(8, DATE '2020-01-02', NULL)")
    s.sql("INSERT INTO ins2 (user_id, date) SELECT status, date FROM access_log "
          "WHERE status = 500")
    assert len(_fresh(wh).snapshots("ins2")) == 3
    _same_as_duckdb(_fresh(wh), cluster, "ins2", """
        SELECT date, user_id, status, bytes FROM access_log WHERE status = 404
        UNION ALL SELECT * FROM (VALUES (DATE '2020-01-01', 1, CAST(NULL AS SMALLINT), 7),
                                        (DATE '2020-01-02', NULL, NULL, 8)) AS v(a, b, c, d)
        UNION ALL SELECT date, status, NULL, NULL FROM access_log WHERE status = 500""")


def test_insert_of_no_rows_is_one_empty_snapshot(wh, cluster) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql("CREATE TABLE ins3 AS SELECT date, status FROM access_log WHERE status = 404")
    files = _files(catalog.table("ins3").location)
    r = s.sql("INSERT INTO ins3 SELECT date, status FROM access_log WHERE status = -1")
    assert r.to_arrow().column("rows").to_pylist() == [0]
    fresh = _fresh(wh)
    assert len(fresh.snapshots("ins3")) == 2
    assert {f for f in _files(fresh.table("ins3").location) if "/data/" in f} == \
        {f for f in files if "/data/" in f}
    _same_as_duckdb(fresh, cluster, "ins3",
                    "SELECT date, status FROM access_log WHERE status = 404")


@pytest.mark.parametrize(("sql", "message", "column"), [
    ("INSERT INTO ins4 (nosuch) VALUES (1)",
     "Insert column name does not exist in target table ins4: nosuch", 13),
    ("INSERT INTO ins4 (status) VALUES ('x')",
     "column status is smallint but the query gives varchar", 13),
    ("INSERT INTO ins4 (status) SELECT bytes FROM access_log",
     "column status is smallint but the query gives integer", 13),
    ("INSERT INTO ins4 (date) SELECT time FROM access_log",
     "column date is date but the query gives timestamp", 13),
    ("INSERT INTO ins4 VALUES (1)",
     "the query has 1 column for 2 target columns (date, status)", 13),
    ("INSERT INTO ins4 (status, status) VALUES (1, 2)",
     "Insert column name is specified more than once: status", 27),
    ("INSERT INTO nosuch_t SELECT 1", "unknown table 'nosuch_t'", 13),
    ("INSERT INTO ins4 SELECT nosuch FROM access_log", "nosuch", 25),
])
def test_insert_errors_name_the_column(wh, cluster, sql: str, message: str, column: int) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    if "ins4" not in catalog.tables():
        s.sql("CREATE TABLE ins4 AS SELECT date, status FROM access_log WHERE status = 404")
    snaps = catalog.snapshots("ins4")
    with pytest.raises(SqlError) as info:
        s.sql(sql)
    assert message in str(info.value) and (info.value.line, info.value.column) == (1, column)
    assert _fresh(wh).snapshots("ins4") == snaps


def test_insert_into_an_external_table_is_refused(wh, cluster, tmp_path) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql("CREATE TABLE ins_orc WITH (format = 'ORC') AS SELECT date, status FROM access_log")
    with pytest.raises(CatalogError, match="external ORC table; INSERT writes Iceberg"):
        s.sql("INSERT INTO ins_orc SELECT date, status FROM access_log")
    with pytest.raises(UnknownTableError):
        s.sql("INSERT INTO ins_orcx SELECT date, status FROM access_log")


def _state(wh: Path, table: str) -> tuple:
    fresh = _fresh(wh)
    return (fresh.snapshots(table), fresh.properties(table), _files(fresh.table(table).location))


def test_a_failure_before_the_commit_leaves_the_table_as_it_was(wh, cluster, monkeypatch) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql("CREATE TABLE ins5 WITH (partitioned_by = ARRAY['date']) AS "
          "SELECT * FROM access_log WHERE status = 200")
    before = _state(wh, "ins5")
    insert = "INSERT INTO ins5 SELECT * FROM access_log WHERE status <> 200"
    # 1. A write task fails after its file, while the others write theirs.
    with pytest.raises(StorageError, match="injected failure"):
        _session(catalog, cluster, **{"write.fail_task": 1}).sql(insert)
    assert _state(wh, "ins5") == before

    # 2. Every file written, then the commit fails.
    def broken(*args, **kwargs):
        raise OSError("disk full (injected)")

    seen: list[int] = []
    original = insert_module.run_write_stage

    def counting(*args, **kwargs):
        written, tasks = original(*args, **kwargs)
        seen.append(len([w for w in written if os.path.exists(local_path(w.fragment.uri))]))
        return written, tasks

    monkeypatch.setattr(insert_module, "run_write_stage", counting)
    monkeypatch.setattr(iceberg, "commit_files", broken)
    with pytest.raises(CatalogError, match="Iceberg commit of 'ins5' failed: disk full"):
        s.sql(insert)
    assert seen and seen[0] > 0  # files were there before the commit
    assert _state(wh, "ins5") == before
    monkeypatch.undo()
    _same_as_duckdb(_fresh(wh), cluster, "ins5", "SELECT * FROM access_log WHERE status = 200")


def test_a_concurrent_commit_fails_the_later_one_and_loses_neither(wh, cluster,
                                                                   monkeypatch) -> None:
    catalog = _fresh(wh)
    # Retries off: the later commit fails (tests/test_commit_retries.py has them on).
    s = _session(catalog, cluster, **{"write.commit_retries": 0})
    s.sql("CREATE TABLE ins6 AS SELECT date, status FROM access_log WHERE status = 200")
    original = insert_module.run_write_stage

    def racing(*args, **kwargs):
        out = original(*args, **kwargs)
        monkeypatch.setattr(insert_module, "run_write_stage", original)
        # Another writer (its own catalog, as another process) commits first.
        _session(_fresh(wh), cluster).sql("INSERT INTO ins6 SELECT date, status FROM "
                                          "access_log WHERE status = 404")
        return out

    monkeypatch.setattr(insert_module, "run_write_stage", racing)
    with pytest.raises(CatalogError, match="changed while this write ran.*run it again"):
        s.sql("INSERT INTO ins6 SELECT date, status FROM access_log WHERE status = 500")
    fresh = _fresh(wh)
    assert len(fresh.snapshots("ins6")) == 2
    _same_as_duckdb(fresh, cluster, "ins6",
                    "SELECT date, status FROM access_log WHERE status IN (200, 404)")
    assert not [f for f in _files(fresh.table("ins6").location)
                if f.endswith(".parquet") and f not in {x.uri.removeprefix("file://")
                                                        for x in fresh.fragments("ins6")}]


def test_explain_and_explain_analyze_show_the_write(wh, cluster) -> None:
    catalog = _fresh(wh)
    s = _session(catalog, cluster)
    s.sql("CREATE TABLE ins7 AS SELECT date, status FROM access_log WHERE status = 200")
    plan = s.explain("INSERT INTO ins7 (status) SELECT status FROM access_log")
    assert plan.startswith("InsertInto: ins7 (status): write stage after the query")
    assert "ScanExec: access_log" in plan
    assert _fresh(wh).snapshots("ins7") == catalog.snapshots("ins7")  # EXPLAIN wrote nothing
    r = s.sql("INSERT INTO ins7 (status) SELECT status FROM access_log WHERE status = 404")
    text = r.explain_analyze
    snapshot = _fresh(wh).snapshots("ins7")[-1]["snapshot_id"]
    assert "[write into ins7]" in text and f"Commit: Iceberg append, snapshot {snapshot}" in text
    assert r.write is not None and r.write.rows == r.to_arrow().column("rows")[0].as_py()
    assert r.write.table == "ins7"



KILLED_INSERT = """
import sys, time
import distributed
import mpp
import mpp.write.stage as stage

original = stage.write

def slow_write(payload, index, ranges):  # every file takes a while: time to be killed
    written = original(payload, index, ranges)
    time.sleep(0.5)
    return written

stage.write = slow_write
local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                 dashboard_address=None)
with mpp.connect(sys.argv[1], cluster=distributed.Client(local),
                 settings={"write.target_file_bytes": 2048}) as s:
    s.sql("INSERT INTO ins_killed SELECT * FROM access_log")
"""


def test_a_killed_insert_leaves_the_table_and_the_next_write_removes_its_files(wh, cluster):
    s = _session(_fresh(wh), cluster)
    s.sql("CREATE TABLE ins_killed AS SELECT * FROM access_log WHERE status = 200")
    before = _state(wh, "ins_killed")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_INSERT, str(wh)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    data = wh / "ins_killed" / "data"
    deadline = time.monotonic() + 120
    while len(list(data.glob("*.parquet"))) < len(before[2]) + 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the INSERT wrote no file in time"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    fresh = _fresh(wh)
    assert fresh.snapshots("ins_killed") == before[0]  # not committed: nothing changed
    assert len(_files(fresh.table("ins_killed").location)) > len(before[2])  # its files stay
    _same_as_duckdb(fresh, cluster, "ins_killed", "SELECT * FROM access_log WHERE status = 200")
    # The next write to the table removes the dead write's files.
    _session(fresh, cluster).sql("INSERT INTO ins_killed SELECT * FROM access_log "
                                 "WHERE status = 404")
    after = _fresh(wh)
    listed = {f.uri.removeprefix("file://") for f in after.fragments("ins_killed")}
    assert {f for f in _files(after.table("ins_killed").location) if f.endswith(".parquet")} \
        == listed
    _same_as_duckdb(after, cluster, "ins_killed",
                    "SELECT * FROM access_log WHERE status IN (200, 404)")


def test_a_session_writes_on_top_of_what_another_committed_since_it_last_read(wh, cluster):
    a = _session(_fresh(wh), cluster)
    a.sql("CREATE TABLE ins8 AS SELECT date, status FROM access_log WHERE status = 200")
    a.sql("SELECT count(*) FROM ins8")  # a's catalog has loaded ins8
    _session(_fresh(wh), cluster).sql("INSERT INTO ins8 SELECT date, status FROM access_log "
                                      "WHERE status = 404")  # another writer commits
    a.sql("INSERT INTO ins8 SELECT date, status FROM access_log WHERE status = 500")
    a.sql("DELETE FROM ins8 WHERE status = 200 AND date = DATE '2017-01-01'")
    fresh = _fresh(wh)  # statistics and integrity record checked: they count every commit
    assert len(fresh.snapshots("ins8")) == 4
    _same_as_duckdb(fresh, cluster, "ins8", "SELECT date, status FROM access_log WHERE "
                    "status IN (404, 500) OR (status = 200 AND date <> DATE '2017-01-01')")


def test_mpp_sql_runs_insert_and_delete(wh, cluster) -> None:
    from click.testing import CliRunner

    from mpp.cli import main

    args = ["sql", "-w", str(wh), "--scheduler", cluster.client.scheduler.address]
    _session(_fresh(wh), cluster).sql("CREATE TABLE ins9 AS SELECT date, status FROM "
                                      "access_log WHERE status = 200")
    result = CliRunner().invoke(main, [*args, "INSERT INTO ins9 SELECT date, status FROM "
                                              "access_log WHERE status = 404"])
    assert result.exit_code == 0, result.output
    n = run_oracle("SELECT count(*) FROM access_log WHERE status = 404", _fresh(wh))[0][0]
    assert str(n.as_py()) in result.stdout and "Iceberg append, snapshot" in result.stderr
    bad = CliRunner().invoke(main, [*args, "INSERT INTO ins9 (nosuch) VALUES (1)"])
    assert bad.exit_code == 2 and "Insert column name does not exist" in bad.output
    assert "Traceback" not in bad.output
    result = CliRunner().invoke(main, [*args, "DELETE FROM ins9 WHERE status = 404"])
    assert result.exit_code == 0, result.output
    _same_as_duckdb(_fresh(wh), cluster, "ins9",
                    "SELECT date, status FROM access_log WHERE status = 200")
