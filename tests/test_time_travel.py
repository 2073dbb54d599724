"""Time travel: FOR VERSION AS OF / FOR TIMESTAMP AS OF read exactly one snapshot's files,
planned with that snapshot's own statistics; the current snapshot still reads current data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mpp.catalog import Catalog, TableInfo, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.storage.base import Fragment, StorageFormat
from tests.compare import assert_same_rows

SPEC = dict(rows=3_000, partitions=6, days=3, hot_day=2, users=200, sessions=300, urls=30)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


class SnapshotFiles:
    """An oracle catalog of one table as DuckDB should see one snapshot: exactly the data
    files pyiceberg's own metadata table lists for it (not mpp's fragment listing)."""

    def __init__(self, catalog: Catalog, name: str, snapshot_id: int):
        self.catalog, self.name = catalog, name
        tbl = catalog.iceberg.load_table((iceberg.NAMESPACE, name))
        files = tbl.inspect.files(snapshot_id=snapshot_id)
        self.paths = files.column("file_path").to_pylist()

    def tables(self) -> list[str]:
        return [self.name]

    def table(self, name: str) -> TableInfo:
        return self.catalog.table(name)

    def fragments(self, info: TableInfo, predicates=()) -> list[Fragment]:
        return [Fragment(uri=p, format=StorageFormat.PARQUET, index=i)
                for i, p in enumerate(self.paths)]


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("travel") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _snapshot_ids(catalog: Catalog, name: str) -> list[int]:
    return [s["snapshot_id"] for s in catalog.snapshots(name)]


def test_each_old_snapshot_reads_its_own_files(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE tt WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB') "
          "AS SELECT * FROM access_log WHERE date < DATE '2017-01-03'")
    s.sql("INSERT INTO tt SELECT * FROM access_log WHERE date = DATE '2017-01-03'")
    s.sql("DELETE FROM tt WHERE status >= 400")
    s.sql("CREATE OR REPLACE TABLE tt WITH (partitioned_by = ARRAY['date']) "
          "AS SELECT * FROM access_log WHERE user_id < 50")
    fresh = Catalog.open(wh)
    ids = _snapshot_ids(fresh, "tt")
    assert len(ids) == 4
    query = "SELECT user_id, count(*) AS n, sum(bytes) AS b FROM tt GROUP BY user_id"
    for sid in ids:
        mpp = _session(fresh, cluster).sql(
            query.replace("FROM tt", f"FROM tt FOR VERSION AS OF {sid}")).to_arrow()
        assert_same_rows(mpp, run_oracle(query, SnapshotFiles(fresh, "tt", sid)))
        info = fresh.table_at("tt", snapshot_id=sid)
        assert info.snapshot_id == sid
        assert info.stats.row_count == run_oracle(
            "SELECT count(*) FROM tt", SnapshotFiles(fresh, "tt", sid)).column(0)[0].as_py()
    # The current snapshot still reads the current data.
    now = _session(fresh, cluster).sql("SELECT * FROM tt").to_arrow()
    assert_same_rows(now, run_oracle("SELECT * FROM access_log WHERE user_id < 50", fresh))


def test_statistics_and_pruning_come_from_the_snapshot(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE ts WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB') "
          "AS SELECT * FROM access_log WHERE date = DATE '2017-01-01'")
    s.sql("INSERT INTO ts SELECT * FROM access_log WHERE date > DATE '2017-01-01'")
    fresh = Catalog.open(wh)
    first = _snapshot_ids(fresh, "ts")[0]
    old = fresh.table_at("ts", snapshot_id=first)
    oracle = SnapshotFiles(fresh, "ts", first)
    expect = run_oracle("SELECT count(*) AS n, min(time) AS t0, max(time) AS t1, min(user_id) AS "
                        "u0, max(user_id) AS u1, count(*) - count(status) AS nulls FROM ts",
                        oracle).to_pylist()[0]
    got = old.stats
    assert got.row_count == expect["n"] != fresh.table("ts").stats.row_count
    assert got.fragment_count == len(oracle.paths)
    assert (got.column("user_id").min, got.column("user_id").max) == (expect["u0"], expect["u1"])
    assert (got.column("time").min, got.column("time").max) == (expect["t0"], expect["t1"])
    assert got.column("status").null_count == expect["nulls"]
    # Pruning by partition within the old snapshot; EXPLAIN names the snapshot.
    sql = f"SELECT count(*) FROM ts FOR VERSION AS OF {first} WHERE date = DATE '2017-01-02'"
    plan = _session(fresh, cluster).explain(sql)
    assert f"ts FOR VERSION AS OF {first}" in plan
    assert "fragments=0 of" in plan
    assert _session(fresh, cluster).sql(sql).to_arrow().column(0)[0].as_py() == 0
    # Two versions of one table in one query stay apart.
    both = _session(fresh, cluster).sql(
        f"SELECT 'old' AS v, count(*) AS n FROM ts FOR VERSION AS OF {first} "
        "UNION ALL SELECT 'now' AS v, count(*) AS n FROM ts").to_arrow()
    assert dict(zip(both["v"].to_pylist(), both["n"].to_pylist(), strict=True)) == {
        "old": expect["n"],
        "now": run_oracle("SELECT count(*) FROM ts", fresh).column(0)[0].as_py()}


def test_timestamp_as_of_reads_the_snapshot_current_then(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE tm AS SELECT * FROM access_log WHERE date = DATE '2017-01-01'")
    s.sql("INSERT INTO tm SELECT * FROM access_log WHERE date = DATE '2017-01-02'")
    fresh = Catalog.open(wh)
    snaps = fresh.snapshots("tm")
    first, second = snaps[0]["timestamp"], snaps[1]["timestamp"]
    between = first + (second - first) / 2 if second > first else first

    def at(t: dt.datetime) -> str:
        return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    sql = f"SELECT * FROM tm FOR TIMESTAMP AS OF TIMESTAMP '{at(between)} UTC'"
    got = _session(fresh, cluster).sql(sql).to_arrow()
    assert_same_rows(got, run_oracle("SELECT * FROM tm", SnapshotFiles(
        fresh, "tm", snaps[0 if second > first else 1]["snapshot_id"])))
    with pytest.raises(SqlError, match=r"no snapshot of table 'tm' was current at .* "
                                       r"has snapshots"):
        _session(fresh, cluster).sql(
            f"SELECT * FROM tm FOR TIMESTAMP AS OF TIMESTAMP '{at(first - dt.timedelta(days=1))}'")


def test_unknown_version_names_the_table_and_its_snapshots(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE tu AS SELECT * FROM access_log WHERE date = DATE '2017-01-01'")
    sid = _snapshot_ids(Catalog.open(wh), "tu")[0]
    with pytest.raises(SqlError, match=rf"no snapshot 1 of table 'tu': table 'tu' has "
                                       rf"snapshots {sid} \("):
        s.sql("SELECT * FROM tu FOR VERSION AS OF 1")
    with pytest.raises(SqlError, match="needs a snapshot id"):
        s.sql("SELECT * FROM tu FOR VERSION AS OF 'x'")
