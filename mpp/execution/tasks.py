"""The functions Dask runs on workers: a stage's pipeline for one partition, and combiners.

Each task measures itself into a :class:`~mpp.metrics.records.TaskRecord` kept in the worker's
buffer (:mod:`mpp.metrics.collector`). The payloads are the stage's operators without their
fragment lists, so a 1,000-task stage does not ship 1,000 fragment lists.
"""

from __future__ import annotations

import gc
import pickle
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mpp.execution import sizing
from mpp.logical.nodes import Field
from mpp.metrics.collector import at_drain, record, task_started, worker_address
from mpp.metrics.records import TaskRecord
from mpp.physical import join_table
from mpp.physical.operators.base import PhysicalOp, TaskContext, all_unreduced, concat
from mpp.physical.operators.exchange import BucketedTable, ExchangeExec
from mpp.physical.planner import Stage
from mpp.storage.base import Fragment

sizing.register()  # this module is what workers import to run tasks
at_drain(join_table.evict)  # a query's shared join tables go when its records are drained


_FROZEN = False


def freeze_imported() -> int:
    """Keep the objects this worker holds now (the imported libraries' modules, functions and
    classes: ~170,000 once the task code is imported) out of the cycle collector's full
    collections, and return how many were frozen (the first call only; later calls 0).

    Why: a full collection walks every tracked object, ~90 ms of CPU here, and it runs inside
    whichever task allocated when it came due: a 1 ms scan task then measured 90-140 ms
    (docs/architecture/whatif-model.md). Frozen, those objects are skipped (the collection
    took under 1 ms in a test); they are never freed, which is what imported code is anyway.
    :func:`mpp.session.preload` calls it on every worker after importing the task code.
    """
    global _FROZEN
    if _FROZEN:
        return 0
    gc.collect()  # what is already garbage is freed, not frozen
    gc.freeze()
    _FROZEN = True
    return gc.get_freeze_count()


def _strip(op: PhysicalOp) -> PhysicalOp:
    return op.transform_up(lambda o: o.without_fragments())


# Payloads this process has unpickled, by (query id, stage): a 1,000-task stage sends its
# payload with every task, and rebuilding the operator tree each time cost ~0.1 ms a task.
_PAYLOADS: OrderedDict[tuple[str, int], StagePayload] = OrderedDict()
_PAYLOADS_KEPT = 64


def _payload(key: tuple[str, int], blob: bytes) -> StagePayload:
    """The payload pickled as ``blob``, unpickled once per process (see ``__reduce__``)."""
    hit = _PAYLOADS.get(key)
    if hit is None:
        hit = _PAYLOADS[key] = StagePayload(*pickle.loads(blob))
        while len(_PAYLOADS) > _PAYLOADS_KEPT:
            _PAYLOADS.popitem(last=False)
    return hit


@dataclass(frozen=True, slots=True)
class StagePayload:
    """What every task of a stage needs: its operators, its exchange, its inputs' schemas."""

    query_id: str
    stage: int
    name: str
    root: PhysicalOp
    sink: ExchangeExec | None
    inputs: tuple[tuple[int, tuple[Field, ...]], ...]  # (exchange id, schema) per input
    _blob: list[bytes] = field(default_factory=list, init=False, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled once, sent with every task: the scheduler pickles each task it hands out.
        if not self._blob:
            self._blob.append(pickle.dumps(
                (self.query_id, self.stage, self.name, self.root, self.sink, self.inputs)))
        return _payload, ((self.query_id, self.stage), self._blob[0])

    @classmethod
    def of(cls, stage: Stage, query_id: str) -> StagePayload:
        """The payload of ``stage`` (fragment lists dropped)."""
        sink = _strip(stage.sink) if stage.sink is not None else None
        return cls(query_id, stage.id, stage.name, _strip(stage.root),
                   sink,  # type: ignore[arg-type]
                   tuple((ex.id, ex.schema) for ex in stage.exchanges))


@dataclass(frozen=True, slots=True)
class CombinePayload:
    """What an exchange's combine (hash) or collect (broadcast) task needs."""

    query_id: str
    stage: int
    name: str
    sink: ExchangeExec
    split: bool

    @classmethod
    def of(cls, stage: Stage, query_id: str, *, split: bool) -> CombinePayload:
        """The payload of ``stage``'s exchange tasks."""
        assert stage.sink is not None
        word = "combine" if split else "collect"
        return cls(query_id, stage.id, f"stage{stage.id}-{word}",
                   _strip(stage.sink), split)  # type: ignore[arg-type]


def run_stage_task(payload: StagePayload, partition: int,
                   fragments: tuple[tuple[Fragment, ...] | None, ...],
                   *inputs: pa.Table | list[pa.Table] | None) -> pa.Table | BucketedTable:
    """Run one partition of a stage: the fused pipeline (its scans read ``fragments``: this
    task's fragments per scan slot), then hand its output to the stage's exchange (cut into
    buckets here, or by the combine after merging: ``buckets_at_map``)."""
    task_started(payload.query_id)
    start, cpu = time.time(), time.thread_time()
    tctx = TaskContext(partition, fragments, query_id=payload.query_id)
    for (ex_id, schema), value in zip(payload.inputs, inputs, strict=True):
        if value is None:  # an exchange another input of a union reads, not this task
            continue
        tctx.inputs[ex_id] = concat(value, schema) if isinstance(value, list) else value
    out = payload.root.execute(tctx)
    sent = out.nbytes if payload.sink is not None else 0
    # The cut into buckets is the task's work too: measured with it (its time and CPU).
    handed = payload.sink.map_output(out) if payload.sink is not None else out
    record(TaskRecord(
        payload.query_id, payload.stage, payload.name, str((payload.name, partition)),
        partition, worker_address(), start, time.time(), rows_in=tctx.rows_in,
        rows_out=out.num_rows, bytes_read=tctx.bytes_read, bytes_sent=sent,
        hot_keys=tctx.hot_keys, join_rows=tctx.join_rows, join_builds=tctx.join_builds,
        cpu_s=time.thread_time() - cpu, partial_skipped=tctx.partial_skipped))
    return handed


def run_combine(payload: CombinePayload, index: int,
                maps: list[pa.Table] | list[BucketedTable]) -> pa.Table | BucketedTable:
    """Merge several producer tasks' outputs (partial aggregates merge here, so less crosses
    to the consumers); for a hash exchange, one bucketed table of them."""
    task_started(payload.query_id)
    start, cpu = time.time(), time.thread_time()
    sink = payload.sink
    rows_in = sum(int((m.table if isinstance(m, BucketedTable) else m).num_rows) for m in maps)
    # Outputs whose partial step stopped reducing are concatenated, not merged: bucketed by
    # their producer (a hash exchange) or tagged (a gather).
    skipped = 0
    if sink.input.merges:
        skipped = sum(1 for m in maps if isinstance(m, BucketedTable)) or (
            len(maps) if all_unreduced([m for m in maps if isinstance(m, pa.Table)]) else 0)
    out = sink.combine_buckets(maps) if payload.split else sink.combine(maps)
    table = out.table if isinstance(out, BucketedTable) else out
    record(TaskRecord(
        payload.query_id, payload.stage, payload.name, str((payload.name, index)), index,
        worker_address(), start, time.time(), rows_in=rows_in,
        rows_out=table.num_rows, bytes_sent=table.nbytes, cpu_s=time.thread_time() - cpu,
        partial_skipped=skipped))
    return out
