"""Partition overwrite for re-loads (``write.insert_existing_partitions = 'overwrite'``, Trino
Hive's insert_existing_partitions_behavior = 'OVERWRITE'): an INSERT replaces exactly the
partitions its query produces, in one snapshot. Loading a day twice leaves it once, loading
another day leaves the first untouched, a failed-then-retried load leaves no duplicates;
contents compared with DuckDB recomputing the table from the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError, StorageError
from mpp.oracle import run_oracle
from mpp.session import Session
from tests.compare import assert_same_rows

SPEC = dict(rows=3_000, partitions=6, days=4, hot_day=2, users=200, sessions=300, urls=40)
DAY = "DATE '2017-01-0{}'"
OVERWRITE = {"write.insert_existing_partitions": "overwrite"}


def _session(catalog: Catalog, cluster, **settings) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings(settings))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("overwrite") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    return path


def _load(day: int, table: str) -> str:
    return (f"INSERT INTO {table} SELECT time, date, user_id, status, bytes FROM access_log "
            f"WHERE date = {DAY.format(day)}")


def _check(wh: Path, cluster, table: str, days: list[int]) -> Catalog:
    fresh = Catalog.open(wh)  # statistics and integrity record checked on load
    actual = _session(fresh, cluster).sql(f"SELECT * FROM {table}").to_arrow()
    expected = run_oracle(
        " UNION ALL ".join(f"SELECT time, date, user_id, status, bytes FROM access_log WHERE "
                           f"date = {DAY.format(d)}" for d in days), fresh)
    assert_same_rows(actual, expected)
    assert fresh.table(table).stats.row_count == actual.num_rows
    return fresh


def _day_files(catalog: Catalog, table: str, day: int) -> set[str]:
    return {f.uri for f in catalog.fragments(table)
            if min(lo for c, lo, _ in f.bounds if c == "date").day == day}


@pytest.mark.parametrize("partitioning", ["date", "day(time)"])
def test_reloading_a_day_replaces_it_and_leaves_other_days_alone(wh, cluster,
                                                                 partitioning) -> None:
    table = "io_" + partitioning.replace("(", "_").replace(")", "")
    s = _session(Catalog.open(wh), cluster, **OVERWRITE)
    s.sql(f"CREATE TABLE {table} (time timestamp, date date, user_id bigint, status smallint, "
          f"bytes bigint) WITH (partitioning = ARRAY['{partitioning}'])")
    s.sql(_load(1, table))
    s.sql(_load(1, table))  # the same day again: replaced, not doubled
    first = _check(wh, cluster, table, [1])
    day1 = _day_files(first, table, 1)
    r = s.sql(_load(3, table))  # another day: day 1's files untouched
    assert r.write is not None and "1 partition overwritten (0 files replaced" in r.write.commit
    after = _check(wh, cluster, table, [1, 3])
    assert _day_files(after, table, 1) == day1
    day3 = _day_files(after, table, 3)
    r = s.sql(_load(1, table))
    assert r.write is not None and "overwrite" in r.write.commit
    after = _check(wh, cluster, table, [1, 3])
    assert _day_files(after, table, 3) == day3  # day 3 untouched
    assert not _day_files(after, table, 1) & day1  # day 1 replaced
    snaps = after.snapshots(table)
    assert [x["operation"] for x in snaps][-1] == "overwrite"
    assert len(snaps) == 4  # one snapshot per INSERT (CREATE TABLE with columns makes none)


def test_a_failed_then_retried_load_leaves_no_duplicates(wh, cluster) -> None:
    small = {**OVERWRITE, "write.target_file_bytes": 8192}  # several files per day
    s = _session(Catalog.open(wh), cluster, **small)
    s.sql("CREATE TABLE io_retry WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB') "
          "AS SELECT time, date, user_id, status, bytes FROM access_log "
          f"WHERE date = {DAY.format(1)}")
    s.sql(_load(2, "io_retry"))
    with pytest.raises(StorageError, match="injected failure"):  # a write task fails
        _session(Catalog.open(wh), cluster, **small, **{"write.fail_task": 1}).sql(
            _load(2, "io_retry"))
    assert len(_day_files(_check(wh, cluster, "io_retry", [1, 2]), "io_retry", 2)) > 1
    s.sql(_load(2, "io_retry"))  # the retry, after a load that had committed already
    _check(wh, cluster, "io_retry", [1, 2])


def test_append_is_the_default_and_unpartitioned_tables_refuse_overwrite(wh, cluster) -> None:
    s = _session(Catalog.open(wh), cluster)
    s.sql("CREATE TABLE io_append WITH (partitioned_by = ARRAY['date']) AS SELECT time, date, "
          f"user_id, status, bytes FROM access_log WHERE date = {DAY.format(1)}")
    s.sql(_load(1, "io_append"))
    _check(wh, cluster, "io_append", [1, 1])  # appended twice: duplicates, as asked
    s.sql("CREATE TABLE io_flat AS SELECT time, date, user_id, status, bytes FROM access_log "
          "WHERE false")
    with pytest.raises(SqlError, match="replaces partitions, and this table has none"):
        s.sql(_load(1, "io_flat"), settings=OVERWRITE)


def test_a_load_whose_write_task_was_retried_leaves_no_duplicates(wh, tmp_path) -> None:
    """The worker running write task 1 is killed as the task starts: Dask runs it again (and
    whatever the dead worker held), each file name is fixed by its task, the commit lists it
    once."""
    import dask

    from mpp.execution.cluster import Cluster, ClusterSpec
    from mpp.session import LOCAL_SCHEDULER_CONFIG
    from tests.chaos import Chaos, Victim, starts

    spec = ClusterSpec(workers=2, threads_per_worker=1, dashboard_address=None,
                       stall_timeout=120)
    with dask.config.set(LOCAL_SCHEDULER_CONFIG), Cluster(spec) as own:
        small = {**OVERWRITE, "write.target_file_bytes": 8192}
        s = _session(Catalog.open(wh), own, **small)
        s.sql("CREATE TABLE io_kill (time timestamp, date date, user_id bigint, "
              "status smallint, bytes bigint) WITH (partitioning = ARRAY['date'])")
        s.sql(_load(1, "io_kill"))
        victim = "stage2-write partition 1"
        own.client.register_plugin(Chaos(str(tmp_path), (Victim(victim),)),
                                   name="mpp-test-chaos")
        s.sql(_load(2, "io_kill"))
        assert starts(tmp_path).count(victim) >= 2  # killed, then run again
        _check(wh, own, "io_kill", [1, 2])
        s.sql(_load(2, "io_kill"))  # and the whole load run again
        _check(wh, own, "io_kill", [1, 2])
