"""Damaged Iceberg metadata is a clear error naming the table and the file, never a silently
wrong answer; other tables stay readable; tables written by other engines are not flagged."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import (
    DATA_FILE_TYPE,
    DataFile,
    ManifestEntry,
    clear_manifest_cache,
    read_manifest_list,
    write_manifest,
)
from pyiceberg.types import StringType

import mpp
from mpp.catalog import Catalog
from mpp.cli import main
from mpp.datagen import DatagenSpec, generate
from mpp.errors import DamagedMetadataError
from mpp.oracle import run_oracle
from tests.compare import assert_same_rows

SPEC = DatagenSpec(rows=1_200, partitions=4, days=2, hot_day=0, users=50, sessions=80, urls=20)
RANGE = ("SELECT count(*) FROM access_log WHERE time >= TIMESTAMP '2017-01-01 00:00:00' "
         "AND time < TIMESTAMP '2017-01-03 00:00:00'")


@pytest.fixture
def warehouse(cluster, tmp_path) -> Path:
    path = tmp_path / "w"
    generate(path, SPEC, client=cluster.client, progress=False)
    clear_manifest_cache()  # pyiceberg caches manifest-list entries by path, per process
    return path


def _metadata_json(root: Path, table: str = "access_log") -> Path:
    return next((root / table / "metadata").glob("*.metadata.json"))


def _edit_metadata(root: Path, edit) -> Path:
    path = _metadata_json(root)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def _rewrite_manifest(root: Path, change) -> Path:
    """Rewrite access_log's manifest in place, each data file passed through ``change``."""
    tbl = SqlCatalog("mpp", uri=f"sqlite:///{root}/catalog.db").load_table(("mpp", "access_log"))
    snap = tbl.current_snapshot()
    [manifest] = read_manifest_list(tbl.io.new_input(snap.manifest_list))
    entries = manifest.fetch_manifest_entry(tbl.io, discard_deleted=False)
    path = Path(manifest.manifest_path.removeprefix("file://"))
    path.unlink()
    with write_manifest(2, tbl.spec(), tbl.schema(), tbl.io.new_output(manifest.manifest_path),
                        snap.snapshot_id, "deflate") as writer:
        for i, e in enumerate(entries):
            writer.add_entry(ManifestEntry.from_args(
                status=e.status, snapshot_id=e.snapshot_id, sequence_number=e.sequence_number,
                file_sequence_number=e.file_sequence_number, data_file=change(i, e.data_file)))
    return path


def _changed(f: DataFile, **changes) -> DataFile:
    """A copy of ``f`` with some of its fields changed (DataFile fields have no setters)."""
    fields = {field.name: getattr(f, field.name) for field in DATA_FILE_TYPE[2].fields}
    return DataFile.from_args(**{**fields, **changes})


def _with_bounds(f: DataFile, field_id: int, lower: bytes, upper: bytes) -> DataFile:
    lo, hi = dict(f.lower_bounds), dict(f.upper_bounds)
    lo[field_id], hi[field_id] = lower, upper
    return _changed(f, lower_bounds=lo, upper_bounds=hi)


def test_a_flipped_current_snapshot_id_is_an_error_not_an_empty_table(warehouse, cluster):
    """The issue's case: one bit of the id's last digit (count(*) used to return 0)."""
    path = _metadata_json(warehouse)
    text = path.read_bytes()
    at = text.index(b'"current-snapshot-id":') + len(b'"current-snapshot-id":')
    while text[at + 1:at + 2].isdigit():
        at += 1
    path.write_bytes(text[:at] + bytes([text[at] ^ 1]) + text[at + 1:])
    with mpp.connect(warehouse, cluster=cluster) as session:
        with pytest.raises(DamagedMetadataError, match=(
                f"^table 'access_log': its metadata is damaged: .*{path.name}: "
                "current-snapshot-id .* disagrees with the main branch's snapshot-id")):
            session.sql("SELECT count(*) FROM access_log")
        # Other tables stay readable.
        sql = "SELECT count(*), sum(user_id) FROM users"
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_a_current_snapshot_id_naming_no_snapshot_is_an_error(warehouse):
    path = _edit_metadata(warehouse, lambda d: d.update(
        {"current-snapshot-id": d["current-snapshot-id"] ^ 2}, refs={}))
    with pytest.raises(DamagedMetadataError, match=f"{path.name}: current-snapshot-id .* "
                                                   "names no snapshot"):
        Catalog.open(warehouse).table("access_log")


def test_a_narrowed_bound_in_a_manifest_is_an_error_not_a_skipped_file(warehouse, cluster):
    """The issue's case: one file's time bounds no longer cover the queried range, so pruning
    would skip it and the count would come out short."""
    late = struct.pack("<q", 1_000 * 86_400_000_000 * 18)  # a time in the year 2019

    def shift(i, f):  # time is field 1
        return _with_bounds(f, 1, late, late) if i == 0 else f

    path = _rewrite_manifest(warehouse, shift)
    with mpp.connect(warehouse, cluster=cluster) as session:
        with pytest.raises(DamagedMetadataError,
                           match=f"'access_log'.*damaged: .*{path.name}.*differ from what mpp "
                                 "recorded"):
            session.sql(RANGE)


def test_without_mpp_digests_bounds_outside_the_stored_statistics_are_an_error(warehouse):
    _edit_metadata(warehouse, lambda d: d["properties"].pop("mpp.integrity"))
    late = struct.pack("<q", 1_000 * 86_400_000_000 * 18)
    path = _rewrite_manifest(warehouse, lambda i, f: _with_bounds(
        f, 1, f.lower_bounds[1], late) if i == 1 else f)
    with pytest.raises(DamagedMetadataError, match=f"{path.name}: entry .*: bounds of time "
                                                   r"\(.*\) lie outside the table's"):
        Catalog.open(warehouse).table("access_log")


def test_a_row_count_that_disagrees_with_the_statistics_is_an_error(warehouse):
    _edit_metadata(warehouse, lambda d: d["properties"].pop("mpp.integrity"))

    def fewer(i, f):
        if i != 2:
            return f
        return _changed(f, record_count=f.record_count - 100,
                        value_counts={k: v - 100 for k, v in f.value_counts.items()})

    _rewrite_manifest(warehouse, fewer)
    with pytest.raises(DamagedMetadataError, match="manifest .* holds 1,200 rows; it holds 1,100"):
        Catalog.open(warehouse).table("access_log")


def test_unparsable_metadata_names_the_file_and_the_catalog_lists_the_others(warehouse):
    path = _metadata_json(warehouse)
    path.write_bytes(path.read_bytes().replace(b'"type":"long"', b'"type":"lonf"', 1))
    with pytest.raises(DamagedMetadataError, match=f"table 'access_log': its metadata is "
                                                   f"damaged: .*{path.name}: invalid"):
        Catalog.open(warehouse).table("access_log")
    result = CliRunner().invoke(main, ["catalog", "-w", str(warehouse)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "access_log  [DAMAGED]" in result.output and path.name in result.output
    for other in ("sessions", "urls", "users"):
        assert f"\n{other}  [parquet, iceberg]" in result.output
    assert "mpp: error: the metadata of 1 table(s) is damaged: access_log" in result.output


def test_an_unreadable_manifest_list_names_it(warehouse):
    [mlist] = (warehouse / "access_log" / "metadata").glob("snap-*.avro")
    data = bytearray(mlist.read_bytes())
    data[-40:] = bytes(40)  # the tail of its last block (deflated records, sync marker)
    mlist.write_bytes(bytes(data))
    with pytest.raises(DamagedMetadataError, match=f"{mlist.name}: cannot be read"):
        Catalog.open(warehouse).table("access_log")


def test_a_table_written_by_another_engine_is_checked_by_iceberg_alone(warehouse, cluster):
    ice = SqlCatalog("mpp", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=str(warehouse))
    data = pa.table({"k": pa.array(range(50), pa.int64()),
                     "d": pa.array([dt.date(2017, 1, 1 + i % 3) for i in range(50)])})
    foreign = ice.create_table(("mpp", "foreign"), data.schema)
    foreign.append(data.slice(0, 30))
    foreign.append(data.slice(30))
    foreign.delete("k < 5")  # copy-on-write: deleted manifest entries, several manifests
    # ... and another engine appends to a table mpp wrote: mpp's digests and statistics then
    # describe an older snapshot, which is not damage.
    users = ice.load_table(("mpp", "users"))
    users.append(users.scan().to_arrow().slice(0, 10))
    # ... or evolves its schema (a new schema, no new snapshot).
    ice.load_table(("mpp", "sessions")).update_schema().add_column("note", StringType()).commit()
    with mpp.connect(warehouse, cluster=cluster) as session:
        for sql in ("SELECT d, count(*), sum(k) FROM foreign WHERE k > 7 GROUP BY d",
                    "SELECT count(*), sum(user_id) FROM users",
                    "SELECT count(*), sum(session_id) FROM sessions WHERE user_id < 30"):
            assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))


def test_drop_table_of_a_damaged_table_forgets_it_and_deletes_nothing(warehouse, cluster):
    def flip(data):
        data["current-snapshot-id"] ^= 1 << 12

    _edit_metadata(warehouse, flip)
    files = sorted(p for p in (warehouse / "access_log").rglob("*") if p.is_file())
    with mpp.connect(warehouse, cluster=cluster) as session:
        with pytest.raises(DamagedMetadataError):
            session.sql("SELECT count(*) FROM access_log")
        assert session.drop_table("access_log")
        assert "access_log" not in session.catalog.tables()
        sql = "SELECT count(*) FROM users"
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
    assert sorted(p for p in (warehouse / "access_log").rglob("*") if p.is_file()) == files
