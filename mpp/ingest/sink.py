"""The end of the path: micro-batches committed to an Iceberg table, each exactly once.

The interface is one method, ``Sink.commit(batch, batch_id, offsets)``: append ``batch`` (an
Arrow table) unless the batch with ``batch_id`` is already in the table. :class:`IcebergSink`
implements it on the warehouse's catalog through the same write path as SQL ``INSERT INTO``
(:mod:`mpp.write.insert`): ``Catalog.begin_append`` loads the table, the write stage's task
functions (``prepare`` -> ``measure`` -> ``plan_writes`` -> ``write``) write the files, here in
the consumer's process because the batch is already in its memory, and
``Catalog.commit_append`` commits ONE Iceberg snapshot, which fails if anyone else committed
in between. A failure before that commit removes the batch's files; the table is unchanged.

What makes a retry harmless is recorded in the same atomic commit, as table properties
(``mpp.ingest.<sink>.batches``: the IDs of the last ``remember`` batches;
``mpp.ingest.<sink>.offsets``: per ``topic/partition`` the next offset after everything
committed). So:

* a retried ``commit`` of a batch already committed (the consumer died after the Iceberg
  commit, before acknowledging the broker) is recognised and skipped;
* :meth:`IcebergSink.committed_offsets` tells a restarted consumer where the table is, and
  :class:`SinkEnd` drops redelivered records below those offsets before batching them: the
  table holds each message once even though the broker delivered it twice (the seed's
  de-duplication by offset).

(Iceberg can keep such keys in each snapshot's summary too; mpp's commit path sets table
properties in the snapshot's transaction, which is equally atomic, so the sink uses those.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa

from mpp.catalog import Catalog
from mpp.catalog.write import WriteTarget, WrittenFragment
from mpp.ingest.broker import Record
from mpp.ingest.messages import MESSAGE_SCHEMA, MalformedMessage, decode, to_table
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
                 remember: int = 1000, target_file_bytes: int = TARGET_FILE_BYTES) -> None:
        self.catalog, self.table, self.sink_id = catalog, table, sink_id
        self.remember, self.target_file_bytes = remember, target_file_bytes
        self.skipped = 0
        self.fail_task = -1  # fault injection (tests): this write task fails after its file

    @property
    def _batches_key(self) -> str:
        return f"mpp.ingest.{self.sink_id}.batches"

    @property
    def _offsets_key(self) -> str:
        return f"mpp.ingest.{self.sink_id}.offsets"

    def committed_batches(self) -> list[str]:
        """IDs of the last ``remember`` batches committed by this sink, oldest first."""
        return json.loads(self.catalog.properties(self.table).get(self._batches_key, "[]"))

    def committed_offsets(self) -> dict[str, int]:
        """Per ``"topic/partition"``, the next offset after everything committed."""
        return json.loads(self.catalog.properties(self.table).get(self._offsets_key, "{}"))

    def commit(self, batch: pa.Table, batch_id: str, offsets: Mapping[str, int]) -> bool:
        """Append ``batch`` in one snapshot with its ID and offsets; False if already there."""
        props = self.catalog.properties(self.table)
        batches = json.loads(props.get(self._batches_key, "[]"))
        if batch_id in batches:
            self.skipped += 1
            return False
        done = json.loads(props.get(self._offsets_key, "{}"))
        for k, v in offsets.items():
            done[k] = max(done.get(k, 0), int(v))
        batches = [*batches, batch_id][-self.remember:]
        info = self.catalog.table(self.table)
        target = self.catalog.begin_append(self.table, top_columns=_top_columns(info.schema))
        try:
            written = write_files(target, batch, self.target_file_bytes,
                                  f"ingest-{self.sink_id}-{batch_id}-write", self.fail_task)
            self.catalog.commit_append(target, written, properties={
                self._batches_key: json.dumps(batches),
                self._offsets_key: json.dumps(done, sort_keys=True)})
        except BaseException:
            self.catalog.abort_write(target)  # idempotent: commit_append aborts on its failures
            raise
        return True


def write_files(target: WriteTarget, batch: pa.Table, target_file_bytes: int, key: str,
                fail_task: int = -1) -> list[WrittenFragment]:
    """Write ``batch`` into files of ``target`` (begun with ``Catalog.begin_append``) with
    the write stage's task functions, in this process: files near ``target_file_bytes``,
    split by the table's partitioning. Nothing is committed."""
    names = [c for c in batch.column_names if c in target.schema.names]
    prepared = prepare(batch.select(names), names, target.schema, target.partition_by,
                       target.transforms)
    pieces = measure(prepared, 0, target.group_columns, target.format)
    tasks = plan_writes(pieces, target_file_bytes)
    payload = WritePayload(key, 0, "ingest-write", target, fail_task)
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


def dead_letter_sink(catalog: Catalog, table: str, *, sink_id: str = "ingest") -> IcebergSink:
    """An :class:`IcebergSink` on ``table``'s dead-letter table, created if missing."""
    name = dead_letter_table(table)
    ensure_table(catalog, name, DEAD_LETTER_SCHEMA)
    return IcebergSink(catalog, name, sink_id=sink_id)


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

    def __init__(self, sink: Sink, dead_letter: Sink | None = None) -> None:
        self.sink = sink
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
        rows: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        now = int(time.time() * 1e6)
        for r in fresh:
            try:
                rows.append(decode(r.value))
            except MalformedMessage as exc:
                dead.append({"raw": r.value, "reason": str(exc), "topic": r.topic,
                             "partition": r.partition, "offset": r.offset, "failed_at": now})
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
        batch = to_table(rows)  # + when it was received (kept by tables that have the column)
        batch = batch.append_column(pa.field("received_at", pa.timestamp("us")), pa.array(
            [now] * batch.num_rows, pa.int64()).cast(pa.timestamp("us")))
        self.sink.commit(batch, batch_id, offsets)
        for k, v in offsets.items():
            self.done[k] = max(self.done.get(k, 0), v)


def dead_table(rows: Sequence[Mapping]) -> pa.Table:
    """Dead letters (dicts, ``failed_at`` in µs) as a table of :data:`DEAD_LETTER_SCHEMA`."""
    return pa.table({f.name: pa.array([r[f.name] for r in rows],
                                      type=pa.int64() if f.name == "failed_at" else f.type)
                     .cast(f.type) for f in DEAD_LETTER_SCHEMA}, schema=DEAD_LETTER_SCHEMA)
