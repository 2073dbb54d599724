"""The end of the path: micro-batches committed to an Iceberg table, each exactly once.

The interface is one method, ``Sink.commit(batch, batch_id, offsets)``: append ``batch`` (an
Arrow table) unless the batch with ``batch_id`` is already in the table. :class:`IcebergSink`
implements it on the warehouse's catalog through the same write path as SQL ``INSERT INTO``
(:mod:`mpp.write.insert`): ``Catalog.begin_append`` loads the table, the write stage's task
functions (``prepare`` -> ``measure`` -> ``plan_writes`` -> ``write``) write the files, here in
the consumer's process because the batch is already in its memory, and
``Catalog.commit_append`` commits ONE Iceberg snapshot, which fails if anyone else committed
in between. A failure before that commit removes the batch's files; the table is unchanged.

What makes a retry harmless is recorded in the same atomic commit, in the new snapshot's
summary (pyiceberg's ``snapshot_properties``: ``mpp.ingest.<sink>.batch``, the batch's ID,
and ``mpp.ingest.<sink>.offsets``, per ``topic/partition`` the next offset after everything
committed), and as table properties (``mpp.ingest.<sink>.batches``: the IDs of the last
``remember`` batches, and the same offsets), which outlive ``expire_snapshots``. The sink
reads the snapshots' summaries first and the properties for what expired. So:

* a retried ``commit`` of a batch already committed (the consumer died after the Iceberg
  commit, before acknowledging the broker) is recognised and skipped;
* :meth:`IcebergSink.committed_offsets` tells a restarted consumer where the table is, and
  :class:`SinkEnd` drops redelivered records below those offsets before batching them: the
  table holds each message once even though the broker delivered it twice (the seed's
  de-duplication by offset).

"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import pyarrow as pa

from mpp.catalog import Catalog
from mpp.catalog.write import WriteTarget, WrittenFragment
from mpp.ingest.broker import Record
from mpp.ingest.messages import MESSAGE_SCHEMA
from mpp.ingest.tasks import BatchTasks, consume
from mpp.storage.base import StorageFormat
from mpp.write.ctas import top_value_columns
from mpp.write.sizing import plan_writes
from mpp.write.tasks import WritePayload, measure, prepare, range_args, write

TARGET_FILE_BYTES = 128 * 1024 * 1024


class Sink(Protocol):
    """Where consumers land their batches (idempotent by batch ID)."""

    def commit(self, batch: pa.Table, batch_id: str, offsets: Mapping[str, int]) -> bool:
        """Append ``batch`` once; False when ``batch_id`` was already committed.

        ``offsets``: per ``"topic/partition"`` the next offset after the batch's records.
        """
        ...

    def committed_offsets(self) -> dict[str, int]:
        """Per ``"topic/partition"``, the next offset after everything committed."""
        ...


def ensure_table(catalog: Catalog, name: str, schema: pa.Schema = MESSAGE_SCHEMA, *,
                 partitioning: Sequence[str] = ()) -> None:
    """Create the empty Iceberg table ``name`` if it does not exist, as ``CREATE TABLE``
    does (``partitioning``: Iceberg partition fields such as ``'day(event_time)'``)."""
    if name in catalog.tables():
        return
    target = catalog.begin_write(name, schema, StorageFormat.PARQUET,
                                 partitioning=tuple(partitioning),
                                 top_columns=_top_columns(schema))
    catalog.commit_write(target, [])


def _top_columns(schema: pa.Schema) -> tuple[str, ...]:
    # unique IDs never repeat: keeping their "most frequent values" would be wasted work
    return tuple(c for c in top_value_columns(schema) if c != "message_id")


class IcebergSink:
    """A :class:`Sink` appending to Iceberg table ``table`` (see the module docstring)."""

    def __init__(self, catalog: Catalog, table: str, *, sink_id: str = "ingest",
                 remember: int = 1000, target_file_bytes: int = TARGET_FILE_BYTES,
                 tasks: BatchTasks | None = None, task_kind: str = "write") -> None:
        self.catalog, self.table, self.sink_id = catalog, table, sink_id
        self.remember, self.target_file_bytes = remember, target_file_bytes
        self.tasks, self.task_kind = tasks, task_kind  # files written as cluster tasks
        self.skipped = 0
        self.fail_task = -1  # fault injection (tests): this write task fails after its file

    @property
    def _batches_key(self) -> str:
        return f"mpp.ingest.{self.sink_id}.batches"

    @property
    def _batch_key(self) -> str:  # in a snapshot's summary: that snapshot's batch
        return f"mpp.ingest.{self.sink_id}.batch"

    @property
    def _offsets_key(self) -> str:
        return f"mpp.ingest.{self.sink_id}.offsets"

    def _summaries(self) -> list[dict[str, str]]:
        """The summaries of the table's snapshots this sink committed, oldest first."""
        return [s["summary"] for s in self.catalog.snapshots(self.table)
                if self._batch_key in s["summary"]]

    def committed_batches(self) -> list[str]:
        """IDs of the batches committed by this sink, oldest first: every one whose snapshot
        the table still has (from the summaries), then (before them) the ones the table
        properties remember of snapshots since expired."""
        in_snapshots = [s[self._batch_key] for s in self._summaries()]
        seen = set(in_snapshots)
        remembered = json.loads(self.catalog.properties(self.table).get(self._batches_key,
                                                                        "[]"))
        return [b for b in remembered if b not in seen] + in_snapshots

    def committed_offsets(self) -> dict[str, int]:
        """Per ``"topic/partition"``, the next offset after everything committed: the latest
        snapshot summary's (the table property when those snapshots expired)."""
        summaries = self._summaries()
        if summaries:
            return json.loads(summaries[-1].get(self._offsets_key, "{}"))
        return json.loads(self.catalog.properties(self.table).get(self._offsets_key, "{}"))

    def commit(self, batch: pa.Table, batch_id: str, offsets: Mapping[str, int]) -> bool:
        """Append ``batch`` in one snapshot with its ID and offsets (in the snapshot summary
        and the table properties); False if already there."""
        committed = self.committed_batches()
        if batch_id in committed:
            self.skipped += 1
            return False
        done = self.committed_offsets()
        for k, v in offsets.items():
            done[k] = max(done.get(k, 0), int(v))
        batches = [*committed, batch_id][-self.remember:]
        info = self.catalog.table(self.table)
        target = self.catalog.begin_append(self.table, top_columns=_top_columns(info.schema))
        try:
            if self.tasks is None:
                written = write_files(target, batch, self.target_file_bytes,
                                      f"ingest-{self.sink_id}-{batch_id}-write", self.fail_task)
            else:  # the next ingest-write task: its records go with the run's
                written = self.tasks(self.task_kind, write_files, target, batch,
                                     self.target_file_bytes, self.tasks.query_id,
                                     self.fail_task, f"ingest-{self.task_kind}")
            offsets_text = json.dumps(done, sort_keys=True)
            self.catalog.commit_append(target, written, properties={
                self._batches_key: json.dumps(batches), self._offsets_key: offsets_text},
                snapshot_properties={self._batch_key: batch_id,
                                     self._offsets_key: offsets_text})
        except BaseException:
            self.catalog.abort_write(target)  # idempotent: commit_append aborts on its failures
            raise
        return True


def write_files(target: WriteTarget, batch: pa.Table, target_file_bytes: int, key: str,
                fail_task: int = -1, name: str = "ingest-write") -> list[WrittenFragment]:
    """Write ``batch`` into files of ``target`` (begun with ``Catalog.begin_append``) with
    the write stage's task functions, in the calling process (a pipeline's ``ingest-write``
    task): files near ``target_file_bytes``, split by the table's partitioning; each file's
    task record goes under query id ``key``, task group ``name``. Nothing is committed."""
    names = [c for c in batch.column_names if c in target.schema.names]
    prepared = prepare(batch.select(names), names, target.schema, target.partition_by,
                       target.transforms)
    pieces = measure(prepared, 0, target.group_columns, target.format)
    tasks = plan_writes(pieces, target_file_bytes)
    payload = WritePayload(key, 0, name, target, fail_task)
    return [write(payload, t.index, range_args([prepared], t.ranges)) for t in tasks]


def batch_id_of(records: Sequence[Record]) -> str:
    """A batch's ID from where its records are stored: the same records, the same ID."""
    spans: dict[tuple[str, int], list[int]] = {}
    for r in records:
        s = spans.setdefault((r.topic, r.partition), [r.offset, r.offset])
        s[0], s[1] = min(s[0], r.offset), max(s[1], r.offset)
    return ",".join(f"{t}/{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(spans.items()))


DEAD_LETTER_SCHEMA = pa.schema([
    ("raw", pa.binary()),
    ("reason", pa.string()),
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("failed_at", pa.timestamp("us")),
])
"""A row of a dead-letter table: the payload as received, why it was refused, where it was
stored in the broker, and when the consumer refused it."""


def dead_letter_table(table: str) -> str:
    """The name of ``table``'s dead-letter table: ``<table>_dead_letter``."""
    return f"{table}_dead_letter"


def dead_letter_sink(catalog: Catalog, table: str, *, sink_id: str = "ingest",
                     tasks: BatchTasks | None = None) -> IcebergSink:
    """An :class:`IcebergSink` on ``table``'s dead-letter table, created if missing (with
    ``tasks``, its files are written as ``ingest-deadletter`` tasks)."""
    name = dead_letter_table(table)
    ensure_table(catalog, name, DEAD_LETTER_SCHEMA)
    return IcebergSink(catalog, name, sink_id=sink_id, tasks=tasks, task_kind="deadletter")


class SinkEnd:
    """The end of a consumer's path: decode records, drop those the table already has
    (below the sink's committed offsets), and commit each polled batch to ``sink``.

    A record whose payload is not a message is refused with its reason and the pipeline goes
    on: it is kept in :attr:`dead_letters` and, with a ``dead_letter`` sink (see
    :func:`dead_letter_sink`), committed there first, through the same write path, under the
    batch's ID and offsets. A redelivered batch whose dead letters were committed but whose
    good rows were not finds them below the dead-letter sink's offsets: they are not written
    twice.
    """

    def __init__(self, sink: Sink, dead_letter: Sink | None = None, *,
                 tasks: BatchTasks | None = None) -> None:
        self.sink, self.tasks = sink, tasks  # tasks: decode as ingest-consume tasks
        self.dead_letter = dead_letter
        self.done = sink.committed_offsets()
        self.dead_done = dead_letter.committed_offsets() if dead_letter is not None else {}
        self.dead_letters: list[dict] = []
        self.dropped = 0

    def __call__(self, records: Sequence[Record]) -> None:
        fresh = [r for r in records if r.offset >= self.done.get(f"{r.topic}/{r.partition}", 0)]
        self.dropped += len(records) - len(fresh)
        if not fresh:
            return
        now = int(time.time() * 1e6)
        batch, refused = consume(self.tasks, fresh, now)
        dead = [{"raw": fresh[i].value, "reason": why, "topic": fresh[i].topic,
                 "partition": fresh[i].partition, "offset": fresh[i].offset, "failed_at": now}
                for i, why in refused]
        offsets: dict[str, int] = {}
        for r in fresh:
            key = f"{r.topic}/{r.partition}"
            offsets[key] = max(offsets.get(key, 0), r.offset + 1)
        batch_id = batch_id_of(fresh)
        new_dead = [d for d in dead
                    if d["offset"] >= self.dead_done.get(f"{d['topic']}/{d['partition']}", 0)]
        self.dead_letters.extend(new_dead)
        if self.dead_letter is not None and new_dead:
            self.dead_letter.commit(dead_table(new_dead), batch_id, offsets)
            for k, v in offsets.items():
                self.dead_done[k] = max(self.dead_done.get(k, 0), v)
        self.sink.commit(batch, batch_id, offsets)
        for k, v in offsets.items():
            self.done[k] = max(self.done.get(k, 0), v)


def dead_table(rows: Sequence[Mapping]) -> pa.Table:
    """Dead letters (dicts, ``failed_at`` in µs) as a table of :data:`DEAD_LETTER_SCHEMA`."""
    return pa.table({f.name: pa.array([r[f.name] for r in rows],
                                      type=pa.int64() if f.name == "failed_at" else f.type)
                     .cast(f.type) for f in DEAD_LETTER_SCHEMA}, schema=DEAD_LETTER_SCHEMA)
