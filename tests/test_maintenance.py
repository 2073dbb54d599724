"""ALTER TABLE ... EXECUTE optimize / expire_snapshots: content unchanged (DuckDB before and
after), optimize is one overwrite snapshot with fewer files, expiry deletes exactly the files
no remaining snapshot lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog, cleanup, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import MppError, SqlError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.sql.statements import parse_statement
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = dict(rows=3_000, partitions=6, days=3, hot_day=2, users=200, sessions=300, urls=30)
ALL = "SELECT * FROM access_log WHERE date < DATE '2017-01-03'"


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("maintenance") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _small_files_table(wh: Path, cluster, name: str) -> Session:
    s = _session(Catalog.open(wh), cluster)
    s.sql(f"CREATE TABLE {name} WITH (partitioned_by = ARRAY['date'], target_file_size = '4KB')"
          " AS SELECT * FROM access_log WHERE date = DATE '2017-01-01'")
    s.sql(f"INSERT INTO {name} SELECT * FROM access_log WHERE date = DATE '2017-01-02'",
          settings={"write.target_file_bytes": 4096})
    return s


def _disk(location: str) -> set[str]:
    return {str(p) for p in Path(local_path(location) or location).rglob("*") if p.is_file()}


def test_parse_table_procedures() -> None:
    stmt = parse_statement("ALTER TABLE t EXECUTE optimize(file_size_threshold => '10MB')")
    assert (stmt.name, stmt.file_size_threshold) == ("t", 10 * 2**20)
    stmt = parse_statement("alter table T execute expire_snapshots(retention_threshold => '7d')")
    assert (stmt.name, stmt.retention.days) == ("t", 7)
    with pytest.raises(SqlError, match="unknown table procedure 'vacuum'"):
        parse_statement("ALTER TABLE t EXECUTE vacuum")
    with pytest.raises(SqlError, match="takes a duration"):
        parse_statement("ALTER TABLE t EXECUTE expire_snapshots(retention_threshold => 'x')")


def test_optimize_bin_packs_small_files_in_one_snapshot(wh, cluster) -> None:
    s = _small_files_table(wh, cluster, "opt")
    before = Catalog.open(wh)
    files_before = before.fragments("opt")
    snaps_before = before.snapshots("opt")
    assert len(files_before) > 4
    r = s.sql("ALTER TABLE opt EXECUTE optimize(file_size_threshold => '1MB')",
              settings={"write.target_file_bytes": 2**20})
    assert r.to_arrow().column("rows").to_pylist() == [sum(f.row_count for f in files_before)]
    assert r.write is not None and len(r.write.write_tasks) == len(r.write.files)
    fresh = Catalog.open(wh)  # integrity record and statistics checked on load
    after = fresh.fragments("opt")
    assert len(after) == 2  # one file per date partition
    assert {dict(f.partition)["date"] for f in after} == {
        dict(f.partition)["date"] for f in files_before}
    snaps = fresh.snapshots("opt")
    assert len(snaps) == len(snaps_before) + 1 and snaps[-1]["operation"] == "overwrite"
    got = _session(fresh, cluster).sql("SELECT * FROM opt").to_arrow()
    assert_same_rows(got, run_oracle("SELECT * FROM opt", fresh))
    assert_same_rows(got, run_oracle(ALL, fresh))
    assert fresh.table("opt").stats.row_count == got.num_rows
    # The snapshot before still reads the small files.
    old = snaps_before[-1]["snapshot_id"]
    assert_same_rows(_session(fresh, cluster).sql(
        f"SELECT * FROM opt FOR VERSION AS OF {old}").to_arrow(), got)
    with pytest.raises(MppError, match="EXPLAIN ANALYZE runs it"):
        s.explain("ALTER TABLE opt EXECUTE optimize")
    # Nothing left to combine: no new snapshot.
    again = s.sql("ALTER TABLE opt EXECUTE optimize(file_size_threshold => '1MB')")
    assert again.to_arrow().column("rows").to_pylist() == [0]
    assert len(Catalog.open(wh).snapshots("opt")) == len(snaps)


def test_expire_snapshots_deletes_exactly_the_unreferenced_files(wh, cluster) -> None:
    s = _small_files_table(wh, cluster, "exp")
    s.sql("DELETE FROM exp WHERE status >= 400")
    s.sql("ALTER TABLE exp EXECUTE optimize(file_size_threshold => '1MB')",
          settings={"write.target_file_bytes": 2**20})
    before = Catalog.open(wh)
    location = before.table("exp").location
    listed_before = cleanup.iceberg_files(before.iceberg.load_table((iceberg.NAMESPACE, "exp")))
    disk_before = _disk(location)
    old_id = before.snapshots("exp")[0]["snapshot_id"]
    n_before = len(before.snapshots("exp"))
    assert n_before >= 3
    with pytest.raises(SqlError, match=r"Retention specified \(1.00d\) is shorter than the "
                                       r"minimum retention configured in the system \(7.00d\)"):
        s.sql("ALTER TABLE exp EXECUTE expire_snapshots(retention_threshold => '1d')")
    r = s.sql("ALTER TABLE exp EXECUTE expire_snapshots(retention_threshold => '0s')",
              settings={"iceberg.expire_snapshots_min_retention_seconds": 0})
    fresh = Catalog.open(wh)
    tbl = fresh.iceberg.load_table((iceberg.NAMESPACE, "exp"))
    assert [x.snapshot_id for x in tbl.snapshots()] == [tbl.metadata.current_snapshot_id]
    # What is left on disk is exactly what pyiceberg says the remaining snapshot needs (plus
    # every metadata.json); everything else the table listed before is gone.
    data = {local_path(p) for p in tbl.inspect.files().column("file_path").to_pylist()}
    manifests = {local_path(p) for p in tbl.inspect.manifests().column("path").to_pylist()}
    lists = {local_path(x.manifest_list) for x in tbl.snapshots()}
    disk_after = _disk(location)
    jsons = {p for p in disk_before if p.endswith(".metadata.json")}
    new_jsons = {p for p in disk_after if p.endswith(".metadata.json")}
    assert disk_after == data | manifests | lists | new_jsons
    assert jsons <= disk_after  # metadata.json files are the catalog's history: kept
    gone = disk_before - disk_after
    assert gone and gone <= {local_path(f) for f in listed_before}
    assert any(p.endswith(".parquet") for p in gone)  # the small files optimize replaced
    assert r.to_arrow().to_pylist() == [{"expired_snapshots": n_before - 1,
                                         "deleted_files": len(gone)}]
    got = _session(fresh, cluster).sql("SELECT * FROM exp").to_arrow()
    assert_same_rows(got, run_oracle("SELECT * FROM exp", fresh))
    assert_same_rows(got, run_oracle(ALL + " AND status < 400", fresh))
    with pytest.raises(SqlError, match=f"no snapshot {old_id} of table 'exp'"):
        _session(fresh, cluster).sql(f"SELECT * FROM exp FOR VERSION AS OF {old_id}")


def test_optimize_keeps_transform_partitions_apart(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE optday (time timestamp, user_id bigint, bytes integer) "
          "WITH (partitioning = ARRAY['day(time)'])")
    s.sql("INSERT INTO optday SELECT time, user_id, bytes FROM access_log",
          settings={"write.target_file_bytes": 4096})
    before = len(Catalog.open(wh).fragments("optday"))
    s.sql("ALTER TABLE optday EXECUTE optimize(file_size_threshold => '1MB')",
          settings={"write.target_file_bytes": 2**20})
    fresh = Catalog.open(wh)
    days = run_oracle("SELECT count(DISTINCT CAST(time AS date)) FROM access_log", fresh)
    assert before > len(fresh.fragments("optday")) == days.column(0)[0].as_py()
    for f in fresh.fragments("optday"):  # each file holds one day
        (lo, hi), = [(lo, hi) for c, lo, hi in f.bounds if c == "time"]
        assert lo.date() == hi.date()
    got = _session(fresh, cluster).sql("SELECT * FROM optday").to_arrow()
    assert_same_rows(got, run_oracle("SELECT time, user_id, bytes FROM access_log", fresh))


def test_expire_never_deletes_files_outside_the_table_folder(wh, cluster, tmp_path) -> None:
    import pyarrow.parquet as pq

    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE expout AS SELECT user_id, bytes FROM access_log WHERE status = 200")
    outside = tmp_path / "outside.parquet"  # another engine added a file it keeps elsewhere
    pq.write_table(s.sql("SELECT user_id, bytes FROM expout").to_arrow(), outside)
    tbl = Catalog.open(wh).iceberg.load_table((iceberg.NAMESPACE, "expout"))
    tbl.add_files([str(outside)])
    s.sql("DELETE FROM expout")  # every file, the outside one too, leaves the current snapshot
    s.sql("INSERT INTO expout SELECT user_id, bytes FROM access_log WHERE status = 404")
    location = Catalog.open(wh).table("expout").location
    disk_before = _disk(location)
    r = s.sql("ALTER TABLE expout EXECUTE expire_snapshots(retention_threshold => '0s')",
              settings={"iceberg.expire_snapshots_min_retention_seconds": 0})
    assert r.to_arrow().column("expired_snapshots").to_pylist() == [3]
    assert outside.exists()  # listed by an expired snapshot only, but not the table's own
    assert any(p.endswith(".parquet") for p in disk_before - _disk(location))
    fresh = Catalog.open(wh)
    assert_same_rows(_session(fresh, cluster).sql("SELECT * FROM expout").to_arrow(),
                     run_oracle("SELECT user_id, bytes FROM access_log WHERE status = 404",
                                fresh))


def test_remembered_file_lists_are_safe_for_threads_cleaning_at_once(monkeypatch) -> None:
    """The clean-up's cache of manifest lists is shared by a process's threads. A thread that
    found a list (``get``) and another that evicted it before the first one marked it as used
    (``move_to_end``) made the first raise KeyError; the cache's lock makes the second wait.
    The interleaving is forced: the cache's ``get`` starts the other thread and gives it
    half a second to clean while the first is between the two steps."""
    import threading
    from collections import OrderedDict

    others: list[threading.Thread] = []

    class Interleaved(OrderedDict):
        def get(self, key, default=None):  # type: ignore[no-untyped-def,override]
            found = super().get(key, default)
            if found is not None and not others:  # between the lookup and move_to_end
                others.append(threading.Thread(
                    target=cleanup._remembered, args=("other-list", lambda: ["b"])))
                others[0].start()
                others[0].join(timeout=0.5)  # the other thread cleans meanwhile, or waits
            return found

    monkeypatch.setattr(cleanup, "_LISTS", Interleaved())
    monkeypatch.setattr(cleanup, "_LISTS_KEPT", 1)  # adding the other list evicts the first
    assert cleanup._remembered("list", lambda: ["a"]) == {"a"}  # read, remembered
    assert cleanup._remembered("list", lambda: ["never read"]) == {"a"}  # found
    others[0].join()
    assert list(cleanup._LISTS) == ["other-list"]
