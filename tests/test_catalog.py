"""The metastore: Iceberg round-trip, one commit per write, pruning, statistics, bad names."""

from __future__ import annotations

import datetime as dt
import os

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from mpp.catalog import Catalog, write_fragment
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, StorageError, UnknownTableError
from mpp.storage import ColumnPredicate
from mpp.storage.base import StorageFormat
from mpp.storage.files import local_path

SPEC = DatagenSpec(rows=8_000, partitions=20, days=5, users=400, hot_day=2, hot_share=0.4,
                   urls=300, table_formats=(("users", StorageFormat.SQLITE),
                                            ("urls", StorageFormat.CSV)))


@pytest.fixture(scope="module")
def warehouse(cluster, tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "w"
    generate(path, SPEC, client=cluster.client, progress=False)
    return path


def test_round_trip_reopen_gives_the_same_tables_fragments_and_snapshots(warehouse):
    first = Catalog.open(warehouse)
    again = Catalog.open(warehouse)
    assert first.tables() == again.tables() == ["access_log", "sessions", "urls", "users"]
    for name in first.tables():
        assert first.table(name) == again.table(name)
        assert first.fragments(name) == again.fragments(name)
        assert first.snapshots(name) == again.snapshots(name)
        assert first.properties(name) == again.properties(name)


def test_iceberg_tables_are_readable_by_pyiceberg_itself(warehouse):
    ice = SqlCatalog("mpp", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=str(warehouse))
    table = ice.load_table(("mpp", "access_log"))
    assert [f.name for f in table.spec().fields] == ["date"]
    assert len(table.snapshots()) == 1  # every file registered by one commit
    got = table.scan(selected_fields=("user_id", "date")).to_arrow()
    files = [local_path(f.uri) for f in Catalog.open(warehouse).fragments("access_log")]
    expected = duckdb.sql(f"SELECT count(*), sum(user_id) FROM read_parquet({files!r})").fetchall()[0]
    assert (got.num_rows, pa.compute.sum(got["user_id"]).as_py()) == expected


def test_formats_and_external_tables(warehouse):
    cat = Catalog.open(warehouse)
    assert cat.table("access_log").format is StorageFormat.PARQUET
    assert not cat.table("access_log").external
    assert cat.table("access_log").partition_columns == ("date",)
    assert cat.table("users").format is StorageFormat.SQLITE and cat.table("users").external
    assert cat.table("urls").format is StorageFormat.CSV and cat.table("urls").external


def test_fragments_are_in_time_order_with_stable_indexes_after_pruning(warehouse):
    cat = Catalog.open(warehouse)
    frags = cat.fragments("access_log")
    assert [f.index for f in frags] == list(range(SPEC.partitions))
    starts = [dict((c, lo) for c, lo, _ in f.bounds)["time"] for f in frags]
    assert starts == sorted(starts)
    hot = dt.date(2017, 1, 2)
    pruned = cat.fragments("access_log", [ColumnPredicate("date", "=", hot)])
    assert {f.partition for f in pruned} == {(("date", hot),)}
    assert len(pruned) == round(SPEC.partitions * SPEC.hot_share)  # the hot day's 40%
    assert pruned == [f for f in frags if f.partition == (("date", hot),)]
    late = frags[-1].bounds[0][1]  # time lower bound of the last fragment
    assert cat.fragments("access_log", [ColumnPredicate("time", ">=", late)]) == [frags[-1]]


def test_statistics_match_the_data(warehouse):
    cat = Catalog.open(warehouse)
    info = cat.table("access_log")
    files = [local_path(f.uri) for f in cat.fragments("access_log")]
    rows, users, lo, hi = duckdb.sql(
        f"SELECT count(*), count(DISTINCT user_id), min(time), max(time) "
        f"FROM read_parquet({files!r})").fetchall()[0]
    assert info.stats.row_count == rows == SPEC.rows
    assert info.stats.fragment_count == SPEC.partitions
    assert (info.stats.column("time").min, info.stats.column("time").max) == (lo, hi)
    assert abs(info.stats.column("user_id").distinct_count - users) <= 0.1 * users
    top_date, top_rows = info.stats.column("date").top_values[0]
    assert top_date == dt.date(2017, 1, 2) and top_rows == round(SPEC.rows * SPEC.hot_share)
    assert info.stats.total_bytes == sum(os.path.getsize(f) for f in files)
    assert info.schema.field("status").type == pa.int16()  # not widened by Iceberg


def test_describe_lists_tables_formats_partitions_snapshots_stats(warehouse):
    text = Catalog.open(warehouse).describe()
    for needle in ["access_log  [parquet, iceberg]", "users  [sqlite, external]",
                   "urls  [csv, external]", "partitioned by: date (5 partitions)", "snapshot ",
                   "rows 8,000", "2017-01-02 (3,200)", "content checksum"]:
        assert needle in text


def test_unknown_table_suggests_a_name(warehouse):
    with pytest.raises(UnknownTableError, match="unknown table 'acces_log'.*'access_log'"):
        Catalog.open(warehouse).table("acces_log")


def test_opening_a_directory_without_a_warehouse(tmp_path):
    with pytest.raises(CatalogError, match="no warehouse at"):
        Catalog.open(tmp_path / "nothing")


def test_a_failed_commit_registers_nothing_and_removes_the_files(tmp_path):
    cat = Catalog.open(tmp_path / "w", create=True)
    schema = pa.schema([("d", pa.date32()), ("x", pa.int64())])
    target = cat.begin_write("t", schema, StorageFormat.PARQUET, partition_by=("d",))
    day = dt.date(2017, 1, 1)
    written = [write_fragment(target, i, pa.table({"d": [day] * 3, "x": [1, 2, 3]},
                                                 schema=schema)) for i in range(2)]
    assert all(os.path.exists(local_path(w.fragment.uri)) for w in written)
    with pytest.raises(CatalogError, match="missing fragments"):
        cat.commit_write(target, written[1:])  # fragment 0 lost: refuse, clean up
    assert cat.tables() == []
    assert not any(os.path.exists(local_path(w.fragment.uri)) for w in written)


def test_a_fragment_spanning_partitions_is_refused(tmp_path):
    cat = Catalog.open(tmp_path / "w", create=True)
    schema = pa.schema([("d", pa.date32())])
    target = cat.begin_write("t", schema, StorageFormat.PARQUET, partition_by=("d",))
    table = pa.table({"d": [dt.date(2017, 1, 1), dt.date(2017, 1, 2)]}, schema=schema)
    with pytest.raises(StorageError, match="spans several values of partition column 'd'"):
        write_fragment(target, 0, table)


def test_writing_an_existing_table_is_refused(warehouse):
    with pytest.raises(CatalogError, match="'users' already exists"):
        Catalog.open(warehouse).begin_write("users", pa.schema([("a", pa.int64())]),
                                            StorageFormat.CSV)


def test_any_iceberg_catalog_uri_opens_the_same_tables(warehouse):
    by_uri = Catalog.open(warehouse, uri=f"sqlite:///{warehouse}/catalog.db")
    default = Catalog.open(warehouse)
    assert by_uri.tables() == default.tables()
    assert by_uri.table("access_log") == default.table("access_log")
    assert by_uri.fragments("access_log") == default.fragments("access_log")


def test_cli_catalog_prints_the_description(warehouse):
    from click.testing import CliRunner

    from mpp.cli import main

    result = CliRunner().invoke(main, ["catalog", "-w", str(warehouse)])
    assert result.exit_code == 0
    assert result.output.strip() == Catalog.open(warehouse).describe()
    missing = CliRunner().invoke(main, ["catalog", "-w", str(warehouse / "nope")])
    assert missing.exit_code == 2 and "mpp: error: no warehouse at" in missing.output


def test_in_and_null_predicates_prune_through_the_iceberg_plan(warehouse):
    cat = Catalog.open(warehouse)
    days = (dt.date(2017, 1, 1), dt.date(2017, 1, 4))
    frags = cat.fragments("access_log", [ColumnPredicate("date", "in", days)])
    assert frags == [f for f in cat.fragments("access_log") if f.partition[0][1] in days]
    # Iceberg keeps null counts per file: "IS NULL" on a column without nulls prunes everything.
    assert cat.fragments("access_log", [ColumnPredicate("user_id", "is_null")]) == []
    assert len(cat.fragments("access_log", [ColumnPredicate("user_id", "is_not_null")])) == 20



def test_a_moved_warehouse_is_a_clear_error(cluster, tmp_path):
    import shutil

    from click.testing import CliRunner

    from mpp.cli import main

    original, moved = tmp_path / "w", tmp_path / "moved"
    generate(original, DatagenSpec(rows=500, partitions=2, days=2, users=50, urls=20, hot_day=0),
             client=cluster.client, progress=False)
    shutil.move(original, moved)  # Iceberg metadata still names the old absolute paths
    with pytest.raises(CatalogError, match=f"{moved} was copied or moved from {original}.*"
                                           f"mpp catalog relocate -w {moved}"):
        Catalog.open(moved).table("access_log")
    result = CliRunner().invoke(main, ["catalog", "-w", str(moved)])
    assert result.exit_code != 0 and "mpp catalog relocate" in result.output
    assert "Traceback" not in result.output
