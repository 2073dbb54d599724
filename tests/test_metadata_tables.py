"""Iceberg metadata tables ("t$snapshots", "t$history", "t$files", "t$partitions"): their rows
are pyiceberg's own metadata of the table, and queries over them run like over any table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mpp.catalog import Catalog, iceberg
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import SqlError
from mpp.session import Session
from tests.compare import assert_same_rows

SPEC = dict(rows=2_000, partitions=4, days=3, hot_day=2, users=100, sessions=200, urls=20)


def _session(catalog: Catalog, cluster) -> Session:
    import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

    return Session(catalog, cluster, Settings({}))


@pytest.fixture(scope="module")
def wh(cluster, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metadata") / "w"
    generate(path, DatagenSpec(**SPEC), client=cluster.client, progress=False)
    s = _session(Catalog.open(path), cluster)
    s.sql("CREATE TABLE mt WITH (partitioned_by = ARRAY['date'], target_file_size = '8KB') "
          "AS SELECT * FROM access_log WHERE date < DATE '2017-01-03'")
    s.sql("INSERT INTO mt SELECT * FROM access_log WHERE date = DATE '2017-01-03'")
    s.sql("DELETE FROM mt WHERE status >= 400")
    return path


def _iceberg(wh: Path):
    return Catalog.open(wh).iceberg.load_table((iceberg.NAMESPACE, "mt"))


def _sql(wh: Path, cluster, sql: str) -> pa.Table:
    return _session(Catalog.open(wh), cluster).sql(sql).to_arrow()


def _naive_utc(col: pa.ChunkedArray) -> list:
    return pc.cast(pc.cast(col, pa.timestamp("us", "UTC")), pa.timestamp("us")).to_pylist()


def test_snapshots_are_pyicebergs(wh, cluster) -> None:
    got = _sql(wh, cluster, 'SELECT * FROM "mt$snapshots"')
    want = _iceberg(wh).inspect.snapshots()
    assert got.column_names == ["committed_at", "snapshot_id", "parent_id", "operation",
                                "manifest_list", "summary"]
    assert got.schema.field("committed_at").type == pa.timestamp("us")
    got = got.sort_by("snapshot_id")
    want = want.sort_by("snapshot_id")
    for col in ("snapshot_id", "parent_id", "operation", "manifest_list"):
        assert got[col].to_pylist() == want[col].to_pylist(), col
    assert got["committed_at"].to_pylist() == _naive_utc(want["committed_at"])
    for text, entries in zip(got["summary"].to_pylist(), want["summary"].to_pylist(),
                             strict=True):
        assert text == "{" + ", ".join(f"{k}={v}" for k, v in entries) + "}"
    assert len(got) == 3


def test_history_is_pyicebergs(wh, cluster) -> None:
    got = _sql(wh, cluster, 'SELECT * FROM "mt$history"')
    want = _iceberg(wh).inspect.history()
    assert got.column_names == ["made_current_at", "snapshot_id", "parent_id",
                                "is_current_ancestor"]
    assert got["made_current_at"].to_pylist() == _naive_utc(want["made_current_at"])
    for col in ("snapshot_id", "parent_id", "is_current_ancestor"):
        assert got[col].to_pylist() == want[col].to_pylist(), col


def test_files_and_partitions_are_pyicebergs(wh, cluster) -> None:
    got = _sql(wh, cluster, 'SELECT * FROM "mt$files"').sort_by("file_path")
    want = _iceberg(wh).inspect.files().sort_by("file_path")
    assert got.column_names == ["content", "file_path", "file_format", "spec_id", "partition",
                                "record_count", "file_size_in_bytes"]
    for col in ("content", "file_path", "file_format", "spec_id", "record_count",
                "file_size_in_bytes"):
        assert got[col].to_pylist() == want[col].to_pylist(), col
    assert got["partition"].to_pylist() == [
        "{" + ", ".join(f"{k}={v}" for k, v in p.items()) + "}"
        for p in want["partition"].to_pylist()]
    parts = _sql(wh, cluster, 'SELECT * FROM "mt$partitions"').sort_by("partition")
    wparts = _iceberg(wh).inspect.partitions()
    wparts = wparts.append_column("key", pa.array(
        ["{" + ", ".join(f"{k}={v}" for k, v in p.items()) + "}"
         for p in wparts["partition"].to_pylist()])).sort_by("key")
    assert parts.column_names == ["partition", "record_count", "file_count", "total_size"]
    assert parts["partition"].to_pylist() == wparts["key"].to_pylist()
    assert parts["record_count"].to_pylist() == wparts["record_count"].to_pylist()
    assert parts["file_count"].to_pylist() == wparts["file_count"].to_pylist()
    assert parts["total_size"].to_pylist() == wparts["total_data_file_size_in_bytes"].to_pylist()


def test_queries_over_metadata_tables(wh, cluster) -> None:
    """WHERE, ORDER BY, joins and aggregates over metadata tables equal DuckDB over
    pyiceberg's metadata."""
    tbl = _iceberg(wh)
    con = duckdb.connect()
    snaps = tbl.inspect.snapshots().drop_columns(["summary"])
    con.register("s", snaps)
    con.register("h", tbl.inspect.history())
    con.register("f", tbl.inspect.files().select(["file_path", "record_count"]))
    query = ("SELECT s.snapshot_id, s.operation, h.is_current_ancestor FROM {s} s JOIN {h} h "
             "ON s.snapshot_id = h.snapshot_id WHERE s.operation <> 'delete' "
             "ORDER BY s.snapshot_id")
    got = _sql(wh, cluster, query.format(s='"mt$snapshots"', h='"mt$history"'))
    want = con.sql(query.format(s="s", h="h")).to_arrow_table()
    assert got.to_pylist() == want.to_pylist()
    plan = _session(Catalog.open(wh), cluster).explain(
        'SELECT snapshot_id FROM "mt$snapshots" WHERE operation = \'append\'')
    assert 'ScanExec: mt$snapshots [' in plan and "fragments=1" in plan, plan
    agg = "SELECT count(*) AS n, sum(record_count) AS rows FROM {f} WHERE record_count > 10"
    assert_same_rows(_sql(wh, cluster, agg.format(f='"mt$files"')),
                     con.sql(agg.format(f="f")).to_arrow_table())


def test_unknown_metadata_table_is_a_clear_error(wh, cluster) -> None:
    with pytest.raises(SqlError, match=r"unknown table 'mt\$nope': 'nope' is not a metadata "
                                       r"table \(Iceberg tables have 'mt\$snapshots', "):
        _sql(wh, cluster, 'SELECT * FROM "mt$nope"')
    with pytest.raises(SqlError, match=r"unknown table 'nope\$files'"):
        _sql(wh, cluster, 'SELECT * FROM "nope$files"')
