"""Small-file compaction: micro-batch files rewritten per partition in one overwrite snapshot,
by ``ALTER TABLE ... EXECUTE optimize`` on the cluster.

The table's rows before and after are read by DuckDB over the table's files (mpp.oracle) and
must be the same; file counts come from the catalog.
"""

from __future__ import annotations

from collections import Counter

import pytest

from mpp.catalog import Catalog
from mpp.config import Settings
from mpp.ingest.compact import compact
from mpp.ingest.messages import MESSAGE_SCHEMA
from mpp.ingest.producers import Producer, plan_all
from mpp.ingest.sink import IcebergSink, ensure_table
from mpp.oracle import run_oracle
from mpp.session import Session
from tests.compare import assert_same_rows

COLUMNS = ", ".join(MESSAGE_SCHEMA.names)


@pytest.fixture
def micro_batched(tmp_path, cluster):
    """A table partitioned by day, fed by 12 micro-batches (several files each), and a
    session on its warehouse."""
    cat = Catalog.open(tmp_path / "wh", create=True)
    ensure_table(cat, "events", partitioning=("day(event_time)",))
    planned = plan_all([Producer("web", 0, seed=1, rate=0.01),
                        Producer("device", 0, seed=1, rate=0.01)], 300)
    rows = planned.select(MESSAGE_SCHEMA.names).cast(MESSAGE_SCHEMA)
    sink = IcebergSink(cat, "events")
    for i in range(12):
        sink.commit(rows.slice(i * 50, 50), f"b{i}", {"events/0": (i + 1) * 50})
    with Session(Catalog.open(cat.warehouse), cluster, Settings()) as session:
        yield cat, rows, session


def test_compaction_rewrites_small_files_per_partition_in_one_snapshot(micro_batched):
    cat, rows, session = micro_batched
    before = run_oracle(f"SELECT {COLUMNS} FROM events", Catalog.open(cat.warehouse))
    files_before = len(cat.fragments("events"))
    days = {f.partition for f in cat.fragments("events")}
    assert files_before > 2 * len(days)  # many files per day
    snapshots = len(cat.snapshots("events"))
    props = cat.properties("events")
    done = compact(session, "events")
    assert done.statement.startswith('ALTER TABLE "events" EXECUTE optimize(')
    assert done.files_before == files_before and done.rewritten == files_before
    assert done.files_after == len(days) == done.written  # one file per day
    assert done.rows == rows.num_rows
    again = Catalog.open(cat.warehouse)
    snaps = again.snapshots("events")
    assert len(snaps) == snapshots + 1 and snaps[-1]["operation"] == "overwrite"
    assert len(again.fragments("events")) == len(days)
    assert_same_rows(run_oracle(f"SELECT {COLUMNS} FROM events", again), before)
    assert_same_rows(before, rows)
    for key in ("mpp.ingest.ingest.batches", "mpp.ingest.ingest.offsets"):
        assert again.properties("events")[key] == props[key]  # the sink's record is kept
    # the sink goes on appending after the compaction, and a retried batch is still skipped
    sink = IcebergSink(again, "events")
    assert not sink.commit(rows.slice(0, 50), "b0", {"events/0": 50})
    assert sink.committed_batches() == [f"b{i}" for i in range(12)]
    assert sink.committed_offsets() == {"events/0": 600}


def test_nothing_small_nothing_rewritten(micro_batched):
    cat, _, session = micro_batched
    compact(session, "events")
    cat.refresh("events")
    snapshots = len(cat.snapshots("events"))
    done = compact(session, "events")  # one file per day: no partition has two small files
    assert done.rewritten == 0 and done.snapshot_id is None
    assert len(cat.snapshots("events")) == snapshots


def test_only_files_below_the_threshold_are_rewritten(micro_batched):
    cat, _, session = micro_batched
    frags = cat.fragments("events")
    cut = sorted(f.size_bytes for f in frags)[len(frags) // 2]
    small = Counter(f.partition for f in frags if f.size_bytes < cut)
    expected = sum(n for n in small.values() if n > 1)
    done = compact(session, "events", small_file_bytes=cut)
    assert 0 < done.rewritten == expected < done.files_before
    assert done.files_after == done.files_before - done.rewritten + done.written
