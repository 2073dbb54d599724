"""Bulk delivery on a schedule: files landed per period, loaded in chunks, de-duplicated by
(file, offset).

The seed's other way data reaches the warehouse: not message by message, but a file per
period (an hourly export, a nightly transfer) landed in a folder and loaded in batches. The
producers' planned messages are cut by send time into one Parquet file per ``every_s``
seconds (``landing/<period>.parquet``); each row landed is an attempt in the ledger,
acknowledged (the file is there). Two faults, seeded:

* ``redeliver``: the transfer of a file is retried and the file is delivered again, one
  period later, whole;
* ``crash_before_record``: the loader dies after a chunk was committed and before it recorded
  its progress in the file; the restarted loader reads that file again from offset 0.

The loader reads each delivered file in chunks of ``chunk_rows`` rows (one
``ingest-load`` task each on the cluster) and commits every chunk as one batch. A chunk is
named by (file, offset): with ``dedup = "offset"`` a chunk already loaded is skipped, by the
sink's batch IDs (recorded in the Iceberg snapshots, so they survive a restart) or, without
a table, by :class:`~mpp.ingest.consumer.OffsetDedup`; with ``"none"`` it is loaded again
(at-least-once: duplicates, no loss). The checker counts both against the ledger.

The schedule is simulated: periods follow each other without waiting, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mpp.ingest.consumer import OffsetDedup
from mpp.ingest.messages import MESSAGE_SCHEMA
from mpp.ingest.producers import Ledger
from mpp.ingest.sink import IcebergSink
from mpp.ingest.tasks import BatchTasks
from mpp.metrics.collector import record, worker_address
from mpp.metrics.records import TaskRecord

BULK_DEDUP = ("none", "offset")
MAX_RESTARTS = 10  # loader restarts per delivered file (a crash rate near 1 must still end)


@dataclass(frozen=True)
class BulkSpec:
    """The ``[ingest.bulk]`` section (see docs/scenario-reference.md)."""

    every_s: float = 0.5  # one landed file per this many seconds of (simulated) send time
    chunk_rows: int = 500  # rows per loaded chunk: one committed batch
    redeliver: float = 0.0  # probability a file is delivered a second time
    crash_before_record: float = 0.0  # per chunk: the loader dies before recording it
    seed: int = 0
    dedup: tuple[str, ...] = BULK_DEDUP


@dataclass
class BulkCounts:
    """What the loader did."""

    files: int = 0  # landed
    deliveries: int = 0  # files delivered (a redelivered file twice)
    chunks: int = 0  # chunks read
    loaded: int = 0  # chunks committed
    skipped: int = 0  # chunks recognised by (file, offset) and not loaded again
    restarts: int = 0  # loader crashes before recording a chunk


def land(planned: pa.Table, folder: Path, every_s: float, ledger: Ledger
         ) -> list[tuple[int, Path]]:
    """Write ``planned`` (producers' messages with ``send_at``) as one Parquet file per
    ``every_s`` seconds of send time into ``folder``; every row is an acknowledged attempt in
    ``ledger``. Returns (period, file) in period order."""
    folder.mkdir(parents=True, exist_ok=True)
    send_us = pc.cast(planned["send_at"], pa.int64()).to_numpy()
    period = send_us // max(1, int(every_s * 1_000_000))
    out = []
    for p in np.unique(period):
        rows = planned.filter(pa.array(period == p)).select(MESSAGE_SCHEMA.names)
        path = folder / f"{int(p)}.parquet"
        pq.write_table(rows.cast(MESSAGE_SCHEMA), path)
        now = time.time_ns()
        for mid, prod, seq in zip(rows["message_id"].to_pylist(), rows["producer"].to_pylist(),
                                  rows["seq"].to_pylist(), strict=True):
            ledger.attempt(mid, prod, seq, True, now)
        out.append((int(p), path))
    return out


def load_chunk(query_id: str, key: str, path: str, offset: int, rows: int,
               received_us: int) -> pa.Table:
    """Rows ``offset`` .. ``offset + rows`` of landed file ``path``, with ``received_at``
    (an ``ingest-load`` task)."""
    start, cpu = time.time(), time.thread_time()
    table = pq.read_table(path).slice(offset, rows)
    table = table.append_column(pa.field("received_at", pa.timestamp("us")), pa.array(
        [received_us] * table.num_rows, pa.int64()).cast(pa.timestamp("us")))
    if query_id:
        record(TaskRecord(query_id, 0, "ingest-load", key, offset, worker_address(), start,
                          time.time(), rows_in=table.num_rows, rows_out=table.num_rows,
                          cpu_s=time.thread_time() - cpu))
    return table


def run_bulk(planned: pa.Table, spec: BulkSpec, dedup: str, folder: Path, ledger: Ledger, *,
             sink: IcebergSink | None, tasks: BatchTasks | None,
             end: Callable[[pa.Table], None],
             on_delivery: Callable[[BulkCounts], None] | None = None) -> BulkCounts:
    """Land ``planned`` on the schedule and load it chunk by chunk into ``sink`` (and
    ``end``, which sees every chunk committed: the in-memory end of the path)."""
    if dedup not in BULK_DEDUP:
        raise ValueError(f"unknown bulk de-duplication {dedup!r} (known: none, offset)")
    gen = np.random.default_rng(spec.seed)
    counts = BulkCounts()
    landed = land(planned, folder, spec.every_s, ledger)
    counts.files = len(landed)
    deliveries = [(p, 0, path) for p, path in landed]  # (period, order, file)
    deliveries += [(p + 1, 1, path) for p, path in landed
                   if spec.redeliver > 0 and gen.random() < spec.redeliver]
    seen = OffsetDedup()
    loads = 0
    for _, _, path in sorted(deliveries):
        counts.deliveries += 1
        n = pq.read_metadata(path).num_rows
        name = f"landing/{path.name}"
        restarts = 0
        offset = 0
        while offset < n:
            counts.chunks += 1
            chunk_id = f"{name}:{offset}"
            if dedup == "offset" and (  # loaded before: not read again
                    chunk_id in sink.committed_batches() if sink is not None
                    else not seen.admit(name, offset)):
                counts.skipped += 1
                offset += spec.chunk_rows
                continue
            now = int(time.time() * 1e6)
            args = (str(path), offset, spec.chunk_rows, now)
            if tasks is None:
                batch = load_chunk("", "", *args)
            else:
                key = tasks.key("load", tasks.counts["load"])
                batch = tasks("load", load_chunk, tasks.query_id, key, *args)
            loads += 1
            batch_id = chunk_id if dedup == "offset" else f"{chunk_id}#{loads}"
            if sink is not None:
                sink.commit(batch, batch_id, {name: offset + batch.num_rows})
            counts.loaded += 1
            end(batch)
            if (restarts < MAX_RESTARTS and spec.crash_before_record > 0
                    and gen.random() < spec.crash_before_record):
                counts.restarts += 1  # progress in this file lost: read it again from 0
                restarts += 1
                offset = 0
                continue
            offset += spec.chunk_rows
        if on_delivery is not None:
            on_delivery(counts)
    return counts


def parse_bulk(p: Any, t: dict[str, Any], path: str) -> BulkSpec:
    """Validate an ``[ingest.bulk]`` table (``p``: :class:`mpp.scenario.validate.Problems`)."""
    from mpp.scenario.validate import join

    d = BulkSpec()
    p.unknown_keys(t, ("every_s", "chunk_rows", "redeliver", "crash_before_record", "seed",
                       "dedup"), path)
    every = p.get(t, "every_s", float, path, default=d.every_s)
    if every is not None and every <= 0:
        p.add(join(path, "every_s"), f"must be positive, got {every}.")
        every = None
    ints: dict[str, Any] = {"every_s": every if every is not None else d.every_s}
    for key, low in (("chunk_rows", 1), ("seed", 0)):
        v = p.get(t, key, int, path, default=getattr(d, key))
        if v is not None and v < low:
            p.add(join(path, key), f"must be at least {low}, got {v}.")
        ints[key] = v if v is not None else getattr(d, key)
    probs = {}
    for key in ("redeliver", "crash_before_record"):
        v = p.get(t, key, float, path, default=getattr(d, key))
        if v is not None and not 0.0 <= v <= 1.0:
            p.add(join(path, key), f"a probability is between 0 and 1, got {v}.")
            v = None
        probs[key] = v if v is not None else getattr(d, key)
    dedup = []
    for i, s in enumerate(p.get(t, "dedup", list, path, default=list(d.dedup)) or []):
        if s not in BULK_DEDUP:
            p.add(join(join(path, "dedup"), i), f"unknown bulk de-duplication {s!r}.",
                  "Known: none (at-least-once), offset (by (file, offset)).")
        else:
            dedup.append(s)
    return BulkSpec(dedup=tuple(dedup), **ints, **probs)
