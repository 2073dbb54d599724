"""A write whose commit loses the race to another writer is committed again on top of the new
version (``write.commit_retries``) when its preconditions still hold, and fails naming the
conflicting snapshot when they do not; never is a commit lost. Contents are checked against
DuckDB recomputing them from the source table."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import mpp
from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = dict(rows=3_000, partitions=6, days=3, hot_day=2, users=200, sessions=300, urls=30)


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("retries") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _race(monkeypatch, wh: Path, name: str, rival: Callable[[], None]) -> list[int]:
    """Make ``rival`` (another writer, with its own catalog, as another process) commit just
    before the next statement's first commit attempt; returns a list that then holds the
    snapshot id the rival made."""
    original = iceberg.commit_files
    made: list[int] = []

    def racing(*args, **kwargs):
        if not made:
            made.append(0)
            rival()
            made[0] = Catalog.open(wh).snapshots(name)[-1]["snapshot_id"]
        return original(*args, **kwargs)

    monkeypatch.setattr(iceberg, "commit_files", racing)
    return made


def _unreferenced(catalog: Catalog, name: str) -> list[str]:
    """Data files in the table's folder that no snapshot lists (a failed write's leftovers)."""
    tbl = catalog.iceberg.load_table((iceberg.NAMESPACE, name))
    listed = {t.file.file_path.removeprefix("file://")
              for s in tbl.snapshots() for t in tbl.scan(snapshot_id=s.snapshot_id).plan_files()}
    folder = Path(local_path(tbl.location()))
    return [str(p) for p in folder.rglob("*.parquet") if str(p) not in listed]


def _content(catalog: Catalog, cluster, name: str, expected_sql: str) -> None:
    s = _session(catalog, cluster)
    actual = s.sql(f"SELECT * FROM {name}").to_arrow()
    assert_same_rows(actual, run_oracle(expected_sql, catalog))
    assert catalog.table(name).stats.row_count == actual.num_rows


def test_an_append_that_lost_the_race_is_committed_again(wh, cluster, monkeypatch) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE r1 AS SELECT date, status FROM access_log WHERE status = 200")
    made = _race(monkeypatch, wh, "r1", lambda: _session(Catalog.open(wh), cluster).sql(
        "INSERT INTO r1 SELECT date, status FROM access_log WHERE status = 404"))
    r = s.sql("INSERT INTO r1 SELECT date, status FROM access_log WHERE status = 500")
    monkeypatch.undo()
    fresh = Catalog.open(wh)
    snaps = fresh.snapshots("r1")
    assert len(snaps) == 3 and snaps[1]["snapshot_id"] == made[0]
    assert r.write is not None
    assert r.write.commit == (f"Iceberg append, snapshot {snaps[2]['snapshot_id']} "
                              "(committed again after 1 concurrent commit)")
    _content(fresh, cluster, "r1",
             "SELECT date, status FROM access_log WHERE status IN (200, 404, 500)")
    assert _unreferenced(fresh, "r1") == []


def test_with_no_retries_the_later_commit_fails_and_changes_nothing(wh, cluster,
                                                                    monkeypatch) -> None:
    s = _session(Catalog.open(wh), cluster, **{"write.commit_retries": 0})
    s.sql("CREATE TABLE r2 AS SELECT date, status FROM access_log WHERE status = 200")
    _race(monkeypatch, wh, "r2", lambda: _session(Catalog.open(wh), cluster).sql(
        "INSERT INTO r2 SELECT date, status FROM access_log WHERE status = 404"))
    with pytest.raises(CatalogError, match="changed while this write ran.*run it again"):
        s.sql("INSERT INTO r2 SELECT date, status FROM access_log WHERE status = 500")
    monkeypatch.undo()
    fresh = Catalog.open(wh)
    assert len(fresh.snapshots("r2")) == 2
    _content(fresh, cluster, "r2", "SELECT date, status FROM access_log WHERE status IN (200, 404)")
    assert _unreferenced(fresh, "r2") == []


def test_a_delete_whose_files_survived_the_other_commit_is_retried(wh, cluster,
                                                                    monkeypatch) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE r3 WITH (partitioned_by = ARRAY['date']) AS SELECT date, status, "
          "user_id FROM access_log WHERE date < DATE '2017-01-03'")
    _race(monkeypatch, wh, "r3", lambda: _session(Catalog.open(wh), cluster).sql(
        "INSERT INTO r3 SELECT date, status, user_id FROM access_log "
        "WHERE date = DATE '2017-01-03'"))
    r = s.sql("DELETE FROM r3 WHERE status = 404")
    monkeypatch.undo()
    assert r.write is not None and "committed again after 1 concurrent commit" in r.write.commit
    # Snapshot isolation: the DELETE applies to the files it read; the day appended meanwhile
    # is committed after it, as if it came second.
    _content(Catalog.open(wh), cluster, "r3",
             "SELECT date, status, user_id FROM access_log WHERE (date < DATE '2017-01-03' AND "
             "status <> 404) OR date = DATE '2017-01-03'")


@pytest.mark.parametrize(("name", "statement"), [
    ("r4d", "DELETE FROM r4d WHERE status = 500"),
    ("r4u", "UPDATE r4u SET status = CAST(501 AS smallint) WHERE status = 500"),
    ("r4m", "MERGE INTO r4m USING (SELECT 500 AS s) AS c ON r4m.status = c.s "
            "WHEN MATCHED THEN DELETE"),
])
def test_a_rewrite_whose_files_the_other_commit_removed_fails(wh, cluster, monkeypatch,
                                                              name, statement) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql(f"CREATE TABLE {name} AS SELECT date, status FROM access_log")
    made = _race(monkeypatch, wh, name, lambda: _session(Catalog.open(wh), cluster).sql(
        f"DELETE FROM {name} WHERE status = 404"))
    with pytest.raises(CatalogError) as info:
        s.sql(statement)
    monkeypatch.undo()
    assert str(info.value).startswith(
        f"table {name!r}: another commit (snapshot {made[0]}) removed ")
    assert str(info.value).endswith("; nothing was written, run it again")
    fresh = Catalog.open(wh)
    assert fresh.snapshots(name)[-1]["snapshot_id"] == made[0]
    _content(fresh, cluster, name, "SELECT date, status FROM access_log WHERE status <> 404")
    assert _unreferenced(fresh, name) == []


_WRITER = textwrap.dedent("""
    import sys
    import mpp

    if __name__ == "__main__":
        wh, scheduler, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
        with mpp.connect(wh, cluster=scheduler) as session:
            for i in range(first, first + 6):
                session.sql(f"INSERT INTO shared SELECT {i} AS writer, x FROM "
                            "(VALUES 1, 2, 3) AS r (x)")
""")


def test_two_processes_appending_to_one_table_lose_no_commit(tmp_path: Path, cluster) -> None:
    wh = tmp_path / "w"
    Catalog.open(wh, create=True)
    with mpp.connect(wh, cluster=cluster) as session:
        session.sql("CREATE TABLE shared (writer integer, x integer)")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    scheduler = cluster.client.scheduler.address
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, str(script), str(wh), scheduler, first],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
             for first in ("0", "100")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()
    catalog = Catalog.open(wh)
    assert len(catalog.snapshots("shared")) == 12
    expected = ("SELECT w AS writer, x FROM (VALUES 1, 2, 3) AS r (x) CROSS JOIN "
                "(SELECT * FROM (VALUES 0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105) "
                "AS t (w)) AS ws")
    _content(catalog, cluster, "shared", expected)
