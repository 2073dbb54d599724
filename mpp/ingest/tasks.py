"""The consumers' per-batch work as named tasks on the Dask cluster, so the dashboard shows it.

A pipeline's broker and its consumers' poll / commit loop stay in the driving process (the
embedded broker is an object there; a real broker's client connection too): the order of
polls, offset commits, crashes and Iceberg commits is what the delivery semantics are made
of, and it stays exactly as it is without tasks. The work each polled batch costs runs on the
cluster instead, one task at a time, waited for before the consumer goes on:

* ``ingest-consume-<token>-<n>``: batch ``n``'s payloads decoded into an Arrow table
  (:func:`decode_batch`), the malformed ones set apart with their reasons;
* ``ingest-load-<token>-<n>``: a bulk run's chunk ``n`` read from its landed file
  (:func:`mpp.ingest.bulk.load_chunk`);
* ``ingest-write-<token>-<n>``: the write stage's task functions on that table (files near
  the target size, split by partition: :func:`mpp.ingest.sink.write_files`); a dead-letter
  table's files are ``ingest-deadletter-<token>-<n>``.

The keys follow the query stages' pattern (``stage3-write-<token>-<i>``): the dashboard's task
stream and progress bars group them as ``ingest-consume``, ``ingest-load``, ``ingest-write``
and ``ingest-deadletter``. ``<token>`` is one run's, ``<n>`` counts that kind of task in the run.
Each task also records a :class:`~mpp.metrics.records.TaskRecord` under the run's
:attr:`BatchTasks.query_id` (:func:`mpp.metrics.collector.collect` gathers them). Without a
client (a pipeline counted in memory) the same functions run in this process.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyarrow as pa
from dask.base import tokenize

from mpp.ingest.broker import Record
from mpp.ingest.messages import MalformedMessage, decode, to_table
from mpp.metrics.collector import collect, record, worker_address
from mpp.metrics.records import TaskRecord

T = TypeVar("T")

KINDS = ("consume", "load", "write", "deadletter")
"""The task groups a pipeline puts on the cluster (the second word of their keys)."""


class BatchTasks:
    """Runs a pipeline's per-batch functions as named Dask tasks (or here, without a client).

    ``label`` names the run in the records' query id (``ingest-<label>-<8 hex>``)."""

    def __init__(self, client: Any | None, label: str = "run") -> None:
        self.client = client
        self.query_id = f"ingest-{label}-{uuid.uuid4().hex[:8]}"
        self.token = str(tokenize(self.query_id))[:8]
        self.counts: Counter[str] = Counter()

    def key(self, kind: str, n: int) -> str:
        """The Dask key of the ``n``-th task of ``kind`` in this run."""
        return f"ingest-{kind}-{self.token}-{n}"

    def __call__(self, kind: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` as the next task of ``kind``; its result (its exception re-raised)."""
        if kind not in KINDS:
            raise ValueError(f"unknown ingest task kind {kind!r} (known: {', '.join(KINDS)})")
        n = self.counts[kind]
        self.counts[kind] += 1
        if self.client is None:
            return fn(*args)
        future = self.client.submit(fn, *args, key=self.key(kind, n), pure=False)
        try:
            return future.result()
        finally:
            future.release()

    def records(self) -> list[TaskRecord]:
        """The run's task records so far, taken from the workers (each is returned once)."""
        if self.client is None:
            from mpp.metrics.collector import drain

            return drain(self.query_id)
        return collect(self.client, self.query_id)


def decode_batch(query_id: str, key: str, values: Sequence[bytes],
                 received_us: int) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Decode one batch's payloads: a table of the messages (with ``received_at``) and, per
    malformed payload, its position in ``values`` and the reason (the dead letters)."""
    start, cpu = time.time(), time.thread_time()
    rows: list[dict[str, Any]] = []
    dead: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        try:
            rows.append(decode(v))
        except MalformedMessage as exc:
            dead.append((i, str(exc)))
    batch = to_table(rows)  # + when it was received (kept by tables that have the column)
    batch = batch.append_column(pa.field("received_at", pa.timestamp("us")), pa.array(
        [received_us] * batch.num_rows, pa.int64()).cast(pa.timestamp("us")))
    if query_id:  # a run's task (an empty id: decoded in the driver, nothing to report)
        record(TaskRecord(query_id, 0, "ingest-consume", key, 0, worker_address(), start,
                          time.time(), rows_in=len(values), rows_out=batch.num_rows,
                          bytes_read=sum(len(v) for v in values),
                          cpu_s=time.thread_time() - cpu))
    return batch, dead


def consume(tasks: BatchTasks | None, records: Sequence[Record],
            received_us: int) -> tuple[pa.Table, list[tuple[int, str]]]:
    """:func:`decode_batch` on ``records`` as the next ``ingest-consume`` task of ``tasks``
    (in this process when ``tasks`` is None)."""
    values = [r.value for r in records]
    if tasks is None:
        return decode_batch("", "", values, received_us)
    key = tasks.key("consume", tasks.counts["consume"])
    return tasks("consume", decode_batch, tasks.query_id, key, values, received_us)
