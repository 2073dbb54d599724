"""Catalog safety: table names, the warehouse boundary, DROP of registered tables, copied
warehouses, orphan files. Each test is a case a new user found (issue 12)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from mpp.catalog import Catalog, write_fragment
from mpp.catalog.cleanup import iceberg_files
from mpp.catalog.commit import commit
from mpp.catalog.iceberg import field_ids
from mpp.catalog.relocate import relocate
from mpp.catalog.sqlite_source import register_sqlite
from mpp.catalog.write import WriteTarget
from mpp.cli import main
from mpp.config import Settings
from mpp.datagen import DatagenSpec, generate
from mpp.errors import CatalogError, SqlError, UnknownTableError
from mpp.oracle import run_oracle
from mpp.session import Session
from mpp.storage.base import StorageFormat
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

SPEC = DatagenSpec(rows=2_000, partitions=4, days=2, users=50, urls=20, hot_day=0,
                   table_formats=(("users", StorageFormat.SQLITE), ("urls", StorageFormat.CSV)))
BAD_NAMES = [".", "..", "./users", "../escape", "", "a/b", "users/..", "a\nb", "1x", " users"]


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a digest of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _session(path: Path, cluster) -> Session:
    return Session(Catalog.open(path), cluster, Settings({}))


@pytest.fixture
def wh(cluster, tmp_path) -> Path:
    """A small generated warehouse of its own, inside ``tmp_path/outer`` (whose other files
    show whether a statement touched anything beside the warehouse)."""
    path = tmp_path / "outer" / "wh"
    generate(path, SPEC, client=cluster.client, progress=False)
    (tmp_path / "outer" / "neighbour.txt").write_text("not the warehouse's")
    return path


def _listed(cat: Catalog, name: str) -> set[str]:
    """Local paths of every file table ``name``'s metadata lists."""
    return {os.path.normpath(local_path(u)) for u in iceberg_files(cat._load_iceberg(name))}


# ---- names ---------------------------------------------------------------------------------

def test_names_that_are_not_plain_identifiers_are_refused_everywhere(wh, cluster):
    before = _tree(wh.parent)
    s = _session(wh, cluster)
    for name in BAD_NAMES:
        quoted = name.replace('"', '""')
        refused = re.escape(f"table name {name!r} is not allowed")
        with pytest.raises(SqlError, match=refused + ".*plain identifier.*line 1, column 14"):
            s.sql(f'CREATE TABLE "{quoted}" AS SELECT * FROM users')
        with pytest.raises(CatalogError, match="is not allowed"):
            s.create_table_as(name, "SELECT * FROM users")
        with pytest.raises(CatalogError, match="is not allowed"):
            s.catalog.begin_write(name, pa.schema([("a", pa.int64())]), StorageFormat.PARQUET)
        with pytest.raises(CatalogError, match="is not allowed"):
            register_sqlite(s.catalog, name, wh / "users" / "users.sqlite")
        with pytest.raises(UnknownTableError):  # nothing of that name: DROP deletes nothing
            s.sql(f'DROP TABLE "{quoted}"')
    assert _tree(wh.parent) == before
    result = CliRunner().invoke(main, ["catalog", "-w", str(wh)])
    assert result.exit_code == 0, result.output


def test_a_table_folder_that_leads_outside_the_warehouse_is_refused(wh, cluster, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, wh / "evil")
    with pytest.raises(CatalogError, match="'evil'.*resolves outside the warehouse"):
        _session(wh, cluster).sql("CREATE TABLE evil AS SELECT * FROM users")
    assert list(outside.iterdir()) == []


def test_drop_of_a_table_registered_at_a_bad_place_deletes_nothing_outside_it(wh, cluster):
    # A table written by an older mpp under the name ".": its location is the warehouse.
    cat = Catalog.open(wh)
    schema = pa.schema([("a", pa.int64())])
    legacy = WriteTarget(table=".", format=StorageFormat.PARQUET,
                         location=f"{cat.warehouse}/.", schema=schema,
                         write_id=WriteTarget.new_id(), field_ids=field_ids(schema))
    commit(cat, legacy, [write_fragment(legacy, 0, pa.table({"a": [1, 2]}))], {})
    before = _tree(wh.parent)
    _session(wh, cluster).sql('DROP TABLE "."')
    after = _tree(wh.parent)
    assert "." not in Catalog.open(wh).tables()
    # Everything else, catalog.db aside (it forgot the table), is still there.
    assert {k: v for k, v in after.items() if k != "wh/catalog.db"} == \
        {k: v for k, v in before.items() if k != "wh/catalog.db"}


def test_partition_values_cannot_lead_out_of_the_table_folder(wh, cluster):
    before = _tree(wh.parent)
    s = _session(wh, cluster)
    select = ("SELECT CASE WHEN user_id % 2 = 0 THEN '../../../../../escape' ELSE 'a/b' END AS p, "
              "user_id, plan FROM users")
    s.sql(f"CREATE TABLE part_t WITH (partitioned_by = ARRAY['p']) AS {select}")
    added = sorted(set(_tree(wh.parent)) - set(before))
    assert added and all(k.startswith("wh/part_t/") or k in ("wh/catalog.db",) for k in added)
    assert len({os.path.dirname(k) for k in added if k.endswith(".parquet")}) == 2
    sql = "SELECT p, count(*) AS n, sum(user_id) AS u FROM {t} GROUP BY 1"
    assert_same_rows(s.sql(sql.format(t="part_t")).to_arrow(),
                     run_oracle(sql.format(t=f"({select})"), s.catalog))
    s.sql("DROP TABLE part_t")
    assert not (wh / "part_t").exists()


# ---- DROP ----------------------------------------------------------------------------------

def test_drop_deletes_only_the_files_the_table_lists(wh, cluster):
    s = _session(wh, cluster)
    s.sql("CREATE TABLE copy_t AS SELECT * FROM access_log")
    listed = _listed(s.catalog, "copy_t")
    (wh / "copy_t" / "notes.txt").write_text("the user's")
    (wh / "copy_t" / "data" / "mine.parquet").write_text("the user's too")
    others = {k: v for k, v in _tree(wh).items() if not k.startswith("copy_t/")}
    s.sql("DROP TABLE copy_t")
    assert not any(os.path.exists(p) for p in listed)
    left = _tree(wh)
    assert sorted(k for k in left if k.startswith("copy_t/")) == \
        ["copy_t/data/mine.parquet", "copy_t/notes.txt"]
    assert {k: v for k, v in left.items()
            if not k.startswith("copy_t/") and k != "catalog.db"} == \
        {k: v for k, v in others.items() if k != "catalog.db"}


@pytest.mark.parametrize("inside", [False, True])
def test_drop_of_a_registered_sqlite_table_never_deletes_its_file(wh, cluster, tmp_path, inside):
    db = (wh / "mine.sqlite") if inside else (tmp_path / "mine.sqlite")
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE people (id INTEGER, name TEXT)")
        con.executemany("INSERT INTO people VALUES (?, ?)", [(1, "a"), (2, "b")])
    con.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    register_sqlite(Catalog.open(wh), "people", db)
    s = _session(wh, cluster)
    assert s.sql("SELECT count(*) AS n FROM people").to_arrow()["n"].to_pylist() == [2]
    s.sql("DROP TABLE people")
    assert "people" not in Catalog.open(wh).tables()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    Catalog.open(wh).clean()  # the maintenance command does not take it either
    assert db.exists()


# ---- copied and moved warehouses -----------------------------------------------------------

QUERIES = ["SELECT date, count(*) AS n, sum(bytes) AS b FROM access_log GROUP BY date",
           "SELECT plan, count(*) AS n FROM users GROUP BY plan",
           "SELECT count(*) AS n FROM sessions", "SELECT category, count(*) AS n FROM urls "
           "GROUP BY category"]


def test_a_copied_warehouse_is_refused_until_relocated_then_uses_its_own_files(wh, cluster):
    copy = wh.parent / "wh2"
    shutil.copytree(wh, copy)
    original = _tree(wh)
    with pytest.raises(CatalogError, match=f"{copy}.*copied or moved from .*{wh}.*"
                                           f"mpp catalog relocate -w {copy}"):
        Catalog.open(copy)
    for args in (["catalog", "-w", str(copy)], ["sql", "-w", str(copy), "DROP TABLE users"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "copied or moved from" in result.output, result.output
        assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["catalog", "relocate", "-w", str(copy)])
    assert result.exit_code == 0, result.output
    assert f"relocated {copy} (copied or moved from {wh})" in result.output
    relocated = _tree(copy)
    again = CliRunner().invoke(main, ["catalog", "relocate", "-w", str(copy)])
    assert "in its own place: nothing to relocate" in again.output
    assert _tree(copy) == relocated
    cat = Catalog.open(copy)
    for name in cat.tables():
        assert all(local_path(f.uri).startswith(f"{copy}/{name}/")
                   for f in cat.fragments(name)), name
    s = _session(copy, cluster)
    for sql in QUERIES:
        assert_same_rows(s.sql(sql).to_arrow(), run_oracle(sql, Catalog.open(wh)))
    for name in ("users", "urls", "access_log"):  # SQLite, CSV, Iceberg
        s.sql(f"DROP TABLE {name}")
    assert _tree(wh) == original  # the original was never touched
    assert Catalog.open(wh).tables() == ["access_log", "sessions", "urls", "users"]


def test_a_moved_warehouse_works_after_relocate(wh, cluster):
    moved = wh.parent / "moved"
    expected = [run_oracle(sql, Catalog.open(wh)) for sql in QUERIES]
    shutil.move(wh, moved)
    with pytest.raises(CatalogError, match="copied or moved from"):
        Catalog.open(moved)
    relocate(moved)
    s = _session(moved, cluster)
    for sql, rows in zip(QUERIES, expected, strict=True):
        assert_same_rows(s.sql(sql).to_arrow(), rows)
    assert not wh.exists()


# ---- orphans -------------------------------------------------------------------------------

KILLED_CTAS = """
import sys, time
import distributed
import mpp
import mpp.write.stage as run

original = run.write

def slow_write(payload, index, ranges):  # every file takes a while: time to be killed
    written = original(payload, index, ranges)
    time.sleep(0.5)
    return written

run.write = slow_write
local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                 dashboard_address=None)
with mpp.connect(sys.argv[1], cluster=distributed.Client(local)) as s:
    s.sql("CREATE TABLE killed_t WITH (target_file_size = '2KB') AS SELECT * FROM access_log")
"""


def _files(folder: Path) -> set[str]:
    return {os.path.normpath(p) for p in map(str, folder.rglob("*")) if os.path.isfile(p)}


def test_a_killed_ctas_leaves_orphans_that_the_next_write_removes(wh, cluster):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CTAS, str(wh)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    data = wh / "killed_t" / "data"
    deadline = time.monotonic() + 120
    while len(list(data.glob("*.parquet")) if data.exists() else []) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the CTAS wrote no file in time"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    left = _files(wh / "killed_t")
    assert len(left) >= 2 and "killed_t" not in Catalog.open(wh).tables()

    dry = CliRunner().invoke(main, ["catalog", "clean", "-w", str(wh), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would remove {len(left)} orphan file(s)" in dry.output
    assert all(p in dry.output for p in left)
    assert _files(wh / "killed_t") == left  # a dry run deletes nothing

    s = _session(wh, cluster)
    s.sql("CREATE TABLE killed_t AS SELECT * FROM access_log")  # the next write to that name
    assert _files(wh / "killed_t") == _listed(s.catalog, "killed_t")  # the orphans are gone
    sql = "SELECT date, count(*) AS n, sum(bytes) AS b FROM {t} GROUP BY date"
    assert_same_rows(s.sql(sql.format(t="killed_t")).to_arrow(),
                     run_oracle(sql.format(t="access_log"), s.catalog))
    assert list((wh / ".mpp-writes").iterdir()) == []  # the dead write's marker went too


def test_the_loser_of_a_race_for_a_name_leaves_no_file(wh):
    schema = pa.schema([("a", pa.int64())])
    first, second = Catalog.open(wh), Catalog.open(wh)
    a = first.begin_write("race_t", schema, StorageFormat.PARQUET)
    b = second.begin_write("race_t", schema, StorageFormat.PARQUET)  # both saw the name free
    wa = [write_fragment(a, i, pa.table({"a": [i, i + 1]})) for i in range(2)]
    wb = [write_fragment(b, i, pa.table({"a": [i, i + 5]})) for i in range(2)]
    first.commit_write(a, wa)
    with pytest.raises(CatalogError, match="'race_t'"):
        second.commit_write(b, wb)
    assert _files(wh / "race_t") == _listed(Catalog.open(wh), "race_t")


def test_clean_removes_the_files_of_dead_writes_and_keeps_live_ones(wh):
    schema = pa.schema([("a", pa.int64())])
    cat = Catalog.open(wh)
    live = cat.begin_write("live_t", schema, StorageFormat.PARQUET)
    write_fragment(live, 0, pa.table({"a": [1]}))
    dead = cat.begin_write("dead_t", schema, StorageFormat.ORC)
    dead_files = [write_fragment(dead, i, pa.table({"a": [i]})).fragment.uri for i in range(3)]
    # The writer of dead_t died: its marker names a process that is gone.
    gone = subprocess.Popen(["true"])
    gone.wait()
    marker = wh / ".mpp-writes" / f"{dead.write_id}.json"
    marker.write_text(marker.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {gone.pid}'))
    # A table folder that is a link out of the warehouse: what lies there is not the warehouse's.
    outside = wh.parent / "elsewhere"
    outside.mkdir()
    (outside / "part-000000-0123456789ab.parquet").write_text("not the warehouse's")
    os.symlink(outside, wh / "stray_t")
    before = _tree(wh)

    result = CliRunner().invoke(main, ["catalog", "clean", "-w", str(wh)])
    assert result.exit_code == 0, result.output
    assert "removed 3 orphan file(s)" in result.output
    assert all(local_path(u) in result.output for u in dead_files)
    assert not (wh / "dead_t").exists() and not marker.exists()
    assert {k: v for k, v in _tree(wh).items() if not k.startswith(".mpp-writes/")} == \
        {k: v for k, v in before.items()
         if not k.startswith(("dead_t/", ".mpp-writes/"))}  # live_t's file and tables stay
    assert (outside / "part-000000-0123456789ab.parquet").exists()
    cat.abort_write(live)
    assert not (wh / "live_t").exists()


def test_an_orphan_in_a_table_folder_is_never_read_and_clean_removes_it(wh, cluster):
    sql = "SELECT date, count(*) AS n, sum(bytes) AS b FROM access_log GROUP BY date"
    expected = run_oracle(sql, Catalog.open(wh))
    first = Path(local_path(Catalog.open(wh).fragments("access_log")[0].uri))
    stray = first.parent / "part-000000-0000deadbeef.parquet"  # a dead write's whole copy
    shutil.copy(first, stray)
    s = _session(wh, cluster)
    assert_same_rows(s.sql(sql).to_arrow(), expected)
    assert [o.path for o in s.catalog.clean().orphans] == [str(stray)]
    assert not stray.exists() and first.exists()


def test_clean_leaves_the_folder_of_a_table_whose_metadata_cannot_be_read(wh):
    cat = Catalog.open(wh)
    data = [Path(local_path(f.uri)) for f in cat.fragments("sessions")]
    pointer = Path(local_path(cat._load_iceberg("sessions").metadata_location))
    pointer.write_text("{ damaged")
    result = CliRunner().invoke(main, ["catalog", "clean", "-w", str(wh)])
    assert result.exit_code == 0, result.output
    assert "skipped the folder of table sessions: its metadata cannot be read" in result.output
    assert "removed 0 orphan file(s)" in result.output
    assert all(p.exists() for p in data)
