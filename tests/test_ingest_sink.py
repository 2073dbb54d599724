"""The Iceberg sink: batches committed through INSERT's write path, each exactly once.

What the table holds is read by DuckDB over the table's files (mpp.oracle) and compared with
what the producers planned, so no expected row is typed by hand.
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mpp.catalog import Catalog
from mpp.errors import StorageError
from mpp.ingest.broker import EmbeddedBroker, Record
from mpp.ingest.consumer import Consumer, ConsumerFaults, DeliveryMode
from mpp.ingest.messages import MESSAGE_SCHEMA, encode
from mpp.ingest.producers import Ledger, Producer, plan_all, send
from mpp.ingest.sink import (
    DEAD_LETTER_SCHEMA,
    IcebergSink,
    SinkEnd,
    batch_id_of,
    dead_letter_sink,
    ensure_table,
)
from mpp.oracle import run_oracle
from mpp.storage.files import local_path
from tests.compare import assert_same_rows

COLUMNS = ", ".join(MESSAGE_SCHEMA.names)


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog.open(tmp_path / "wh", create=True)
    ensure_table(cat, "events", partitioning=("day(event_time)",))
    return cat


def _content(catalog, table="events"):
    return run_oracle(f"SELECT {COLUMNS} FROM {table}", Catalog.open(catalog.warehouse))


def _messages(planned):
    return planned.select(MESSAGE_SCHEMA.names).cast(MESSAGE_SCHEMA)


def test_a_batch_is_one_snapshot_and_a_retry_is_skipped(catalog):
    batch = _messages(Producer("web", 0, seed=1).plan(300))
    sink = IcebergSink(catalog, "events")
    before = len(catalog.snapshots("events"))
    assert sink.commit(batch, "b1", {"events/0": 300})
    assert not sink.commit(batch, "b1", {"events/0": 300})  # the same batch again
    assert sink.skipped == 1
    assert len(catalog.snapshots("events")) == before + 1
    assert sink.committed_batches() == ["b1"] and sink.committed_offsets() == {"events/0": 300}
    assert_same_rows(_content(catalog), batch)
    # a new process sees the same: the IDs and offsets are in the table
    again = IcebergSink(Catalog.open(catalog.warehouse), "events")
    assert not again.commit(batch, "b1", {"events/0": 300})


def test_the_batch_id_and_offsets_are_in_the_snapshot_summary(catalog):
    planned = _messages(Producer("device", 0, seed=3).plan(200))
    sink = IcebergSink(catalog, "events", remember=1)  # the properties keep only the last ID
    assert sink.commit(planned.slice(0, 100), "b1", {"events/0": 100})
    assert sink.commit(planned.slice(100), "b2", {"events/0": 200, "events/1": 7})
    fresh = Catalog.open(catalog.warehouse)
    snaps = [s["summary"] for s in fresh.snapshots("events")][-2:]
    assert [s["mpp.ingest.ingest.batch"] for s in snaps] == ["b1", "b2"]
    assert [json.loads(s["mpp.ingest.ingest.offsets"]) for s in snaps] == [
        {"events/0": 100}, {"events/0": 200, "events/1": 7}]
    assert json.loads(fresh.properties("events")["mpp.ingest.ingest.batches"]) == ["b2"]
    # the retry of b1 is recognised from its snapshot, past what the properties remember
    again = IcebergSink(fresh, "events", remember=1)
    assert again.committed_batches() == ["b1", "b2"]
    assert not again.commit(planned.slice(0, 100), "b1", {"events/0": 100})
    assert again.committed_offsets() == {"events/0": 200, "events/1": 7}
    assert_same_rows(_content(catalog), planned)


def test_a_failure_between_writing_files_and_committing_changes_nothing(catalog):
    batch = _messages(Producer("mobile", 0, seed=2).plan(200))
    sink = IcebergSink(catalog, "events")
    root = local_path(catalog.table("events").location)
    files_before = sorted(p.name for p in Path(root).rglob("*.parquet"))
    sink.fail_task = 0  # the write task fails after writing its file
    with pytest.raises(StorageError, match="injected failure"):
        sink.commit(batch, "b1", {"events/0": 200})
    assert _content(catalog).num_rows == 0 and sink.committed_batches() == []
    files_after = sorted(p.name for p in Path(root).rglob("*.parquet"))
    assert files_after == files_before  # the batch's files were removed
    sink.fail_task = -1
    assert sink.commit(batch, "b1", {"events/0": 200})  # the retry lands once
    assert_same_rows(_content(catalog), batch)


@pytest.mark.parametrize("crash", ["crash_before_commit", "crash_after_commit"])
def test_exactly_once_into_iceberg_across_consumer_crashes(catalog, crash):
    producers = [Producer("web", 0, seed=3), Producer("device", 0, seed=3)]
    planned = plan_all(producers, 120)
    broker = EmbeddedBroker()
    broker.create_topic("events", 2)
    ledger = Ledger()
    send(planned, broker, "events", ledger)
    sink = IcebergSink(catalog, "events")
    end = SinkEnd(sink)
    consumer = Consumer(broker, "sink", "events", "c0", DeliveryMode.AT_LEAST_ONCE, end,
                        faults=ConsumerFaults(seed=4, **{crash: 0.4}), max_records=40)
    while broker.lag("sink", "events"):
        consumer.step()
    crashes = consumer.counts.crashes_before_commit + consumer.counts.crashes_after_commit
    assert crashes > 0
    if crash == "crash_before_commit":  # committed to Iceberg, not to the broker: redelivered
        assert end.dropped > 0
    assert_same_rows(_content(catalog), _messages(planned))
    offsets = sink.committed_offsets()
    assert offsets == {f"events/{p}": e for p, e in enumerate(broker.end_offsets("events"))}
    # a restarted consumer with a fresh end resumes where the table is: nothing added
    fresh = SinkEnd(IcebergSink(Catalog.open(catalog.warehouse), "events"))
    broker.subscribe("other", "events", "x")
    fresh(broker.poll("other", "events", "x", 1000))
    assert fresh.dropped == 240
    assert_same_rows(_content(catalog), _messages(planned))


def test_malformed_messages_go_to_dead_letters_and_the_rest_lands(catalog):
    good = Producer("device", 1, seed=5).plan(10)
    rows = good.set_column(3, "event_time", pc.cast(good["event_time"], pa.int64())) \
        .drop_columns(["send_at"]).to_pylist()
    values = [encode(r, 0) for r in rows]
    values.insert(3, b"{not json")
    values.insert(7, b'{"producer": "x"}')
    records = [Record("events", 0, i, "k", v, "") for i, v in enumerate(values)]
    end = SinkEnd(IcebergSink(catalog, "events"))
    end(records)
    assert [d["offset"] for d in end.dead_letters] == [3, 7]
    assert "not JSON" in end.dead_letters[0]["reason"]
    assert "missing field(s): message_id, seq" in end.dead_letters[1]["reason"]
    assert_same_rows(_content(catalog), _messages(good))


def test_malformed_messages_land_in_the_dead_letter_table_and_the_pipeline_goes_on(catalog):
    planned = Producer("web", 0, seed=7).plan(60)
    broker = EmbeddedBroker()
    broker.create_topic("events", 2)
    ledger = Ledger()
    send(planned.slice(0, 30), broker, "events", ledger)
    bad = [b"{not json", b'{"producer": "x"}', b"[1, 2]"]
    for i, v in enumerate(bad):
        assert broker.publish("events", f"k{i}", v, f"bad-{i}")
    send(planned.slice(30), broker, "events", ledger)
    sink = IcebergSink(catalog, "events")
    end = SinkEnd(sink, dead_letter_sink(catalog, "events"))
    consumer = Consumer(broker, "sink", "events", "c0", DeliveryMode.AT_LEAST_ONCE, end,
                        faults=ConsumerFaults(seed=8, crash_before_commit=0.3), max_records=7)
    while broker.lag("sink", "events"):
        consumer.step()
    assert consumer.counts.crashes_before_commit > 0  # redeliveries: dead letters once each
    assert_same_rows(_content(catalog), _messages(planned))  # every good message, once
    got = run_oracle('SELECT reason, topic, "partition", "offset" FROM events_dead_letter',
                     Catalog.open(catalog.warehouse))
    assert got.num_rows == 3
    # the payloads as received, bytes for bytes (the oracle reads binary columns as text)
    files = Catalog.open(catalog.warehouse).fragments("events_dead_letter")
    stored_rows = pa.concat_tables(pq.read_table(local_path(f.uri)) for f in files)
    reasons = dict(zip(stored_rows["raw"].to_pylist(), stored_rows["reason"].to_pylist(),
                       strict=True))
    assert sorted(reasons) == sorted(bad)
    assert reasons[b"{not json"].startswith("not JSON")
    assert reasons[b"[1, 2]"] == "not a JSON object"
    assert "missing field(s)" in reasons[b'{"producer": "x"}']
    where = {(r["topic"], r["partition"], r["offset"]) for r in got.to_pylist()}
    broker.subscribe("audit", "events", "a")
    stored = {(r.topic, r.partition, r.offset) for r in broker.poll("audit", "events", "a", 1000)
              if r.message_id.startswith("bad-")}
    assert where == stored
    assert catalog.table("events_dead_letter").schema.names == DEAD_LETTER_SCHEMA.names


def test_two_groups_route_one_topic_into_two_tables(catalog):
    ensure_table(catalog, "events_copy")
    planned = Producer("web", 2, seed=6).plan(80)
    broker = EmbeddedBroker()
    broker.create_topic("events", 3)
    send(planned, broker, "events", Ledger())
    for group, table in (("g1", "events"), ("g2", "events_copy")):
        c = Consumer(broker, group, "events", "c0", DeliveryMode.AT_LEAST_ONCE,
                     SinkEnd(IcebergSink(catalog, table, sink_id=group)))
        while broker.lag(group, "events"):
            c.step()
        assert_same_rows(_content(catalog, table), _messages(planned))


def test_batch_id_names_where_the_records_are():
    recs = [Record("t", p, o, "", b"", "") for p, o in [(0, 5), (1, 2), (0, 7), (1, 3)]]
    assert batch_id_of(recs) == "t/0:5-7,t/1:2-3"
    assert batch_id_of(list(reversed(recs))) == batch_id_of(recs)
