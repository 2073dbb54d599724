"""What-if at warehouse scale: replay a run's measured tasks on W simulated workers.

This machine has 2 cores; the warehouses the seed talks about have hundreds of nodes. A run's
task records (durations, rows, bytes sent through exchanges) are replayed on ``W`` workers of
``T`` threads each to predict the makespan at any ``W``. The model (docs/architecture/metrics.md):

* **Slots.** ``W x T`` identical slots; a task occupies one slot for its measured duration plus
  ``task_overhead_s`` (the scheduler's per-task cost, 2-3 ms on a Dask cluster).
* **Stage barrier.** A stage becomes *ready* when every task of every upstream stage has finished
  and their exchange output has crossed the network (Spark's stage barrier; Trino pipelines
  stages, so for Trino this is an upper bound). ``stage_deps`` maps a stage to its upstream
  stages; without it every stage depends on all lower-numbered stages.
* **Exchange.** The bytes ``B`` the upstream tasks sent are hash-partitioned over the ``W``
  workers; the fraction ``(W-1)/W`` crosses the network, each worker's link carrying
  ``bandwidth_bytes_per_s``. Time = max(``B (W-1)/W / (W bw)``, the uniform spread, and
  ``s B (W-1)/W / bw``, the link of the worker receiving the largest task, whose share ``s`` of
  the stage's input rows is measured). No overlap of network and compute is assumed.
  A *broadcast* exchange (``broadcast_stages``: a broadcast join's or cross join's build side)
  is different: every worker needs all ``B`` bytes, so its producing link carries
  ``B (W-1)`` and the term is ``B (W-1) / bw``, growing with ``W`` (no tree broadcast). A
  gather is the hash formula with one receiving task (``s = 1``).
  With ``fetch_per_task`` (the named-warehouse replay, :mod:`mpp.metrics.calibration`) a hash
  or gather exchange is charged to each consuming task instead: its share of ``B`` (by its
  input rows), remote part ``(W-1)/W``, over its node's link, added to its duration.
* **Task groups.** Tasks recorded under one stage with different names (an exchange's helper
  tasks, e.g. ``stage1-combine`` merging map outputs) run as a further barrier step after the
  stage's own tasks, with the exchange term applied between them; downstream stages wait for
  the last group. The per-stage timings merge the groups.
* **List scheduling.** Stages are taken in order of ready time; within a stage tasks go
  longest-processing-time first (LPT, Graham 1969: within 4/3 of optimal), or in record order,
  each to the slot that frees first, never before the stage is ready.

The prediction at ``W`` = the real worker count is the model's calibration check against the
measured wall time (:func:`measured_makespan`).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mpp import limits
from mpp.errors import KnobError
from mpp.metrics.records import TaskRecord
from mpp.metrics.skew import default_stage_deps, group_by_stage, task_groups

DEFAULT_BANDWIDTH = 1.25e9  # bytes/s: a 10 Gbit/s link per worker
WHATIF_WORKERS = (2, 8, 32, 128)  # the worker counts reports predict by default


class TaskOrder(enum.Enum):
    """How tasks of a stage are queued for the slots."""

    LPT = "lpt"  # longest first: the usual list-scheduling choice, robust to stragglers
    RECORD = "record"  # as recorded (partition order): what a FIFO scheduler does


@dataclass(frozen=True, slots=True)
class StageTiming:
    """When a stage ran in the simulated schedule (seconds from the start of the run)."""

    stage: int
    tasks: int
    ready: float  # upstream finished and its exchange bytes arrived
    exchange_s: float  # network time included in ``ready`` (fetched per task: in the tasks)
    start: float  # first task start
    finish: float  # last task finish
    longest_task_s: float  # a lower bound on the stage's span at any W
    longest_key: str = ""  # the key of the task the replay ran longest (the straggler)

    @property
    def span(self) -> float:
        """Seconds from ready to finish: what the stage adds to the critical path."""
        return self.finish - self.ready


@dataclass(frozen=True, slots=True)
class Prediction:
    """The simulated schedule's makespan, per-stage timings and critical path."""

    workers: int
    threads_per_worker: int
    makespan: float
    stages: tuple[StageTiming, ...]
    critical_path: tuple[int, ...]  # stages from first to last whose finish gated the next
    critical_stage: int | None  # the stage on the critical path with the longest span
    fixed_s: float = 0.0  # per-query cost outside the tasks' span, included in ``makespan``

    def stage(self, number: int) -> StageTiming:
        """The timing of stage ``number``."""
        for s in self.stages:
            if s.stage == number:
                return s
        raise KeyError(number)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "workers": self.workers, "threads_per_worker": self.threads_per_worker,
            "makespan_s": self.makespan, "fixed_s": self.fixed_s,
            "critical_path": list(self.critical_path),
            "critical_stage": self.critical_stage,
            "stages": [{"stage": s.stage, "tasks": s.tasks, "ready": s.ready,
                        "exchange_s": s.exchange_s, "start": s.start, "finish": s.finish,
                        "longest_task_s": s.longest_task_s, "longest_task": s.longest_key}
                       for s in self.stages],
        }


def measured_makespan(records: Sequence[TaskRecord]) -> float:
    """Wall time the tasks of a run spanned: last stop minus first start (0 for no tasks)."""
    if not records:
        return 0.0
    return max(r.stop for r in records) - min(r.start for r in records)


def predict_makespan(records: Sequence[TaskRecord], workers: int, *,
                     stage_deps: Mapping[int, Collection[int]] | None = None,
                     bandwidth_bytes_per_s: float = DEFAULT_BANDWIDTH,
                     task_overhead_s: float = 0.0, threads_per_worker: int = 1,
                     order: TaskOrder = TaskOrder.LPT,
                     fixed_overhead_s: float = 0.0,
                     broadcast_stages: Collection[int] = (),
                     serial_s: float = 0.0, fetch_per_task: bool = False) -> Prediction:
    """Predict the makespan of a run's tasks on ``workers`` workers (see the module docstring).

    ``fixed_overhead_s`` is added once to the makespan: the per-query cost outside the tasks
    (building and submitting the graph, gathering the result), see :func:`measure_overheads`.
    ``broadcast_stages``: stages whose exchange is a broadcast (every worker gets all bytes).
    ``serial_s``: seconds of a serial dispatcher (the scheduler) every task needs before it can
    start, one task at a time over the whole run: tasks start no faster than one per
    ``serial_s`` however many slots there are (see :mod:`mpp.metrics.calibration`).
    ``fetch_per_task``: a hash or gather exchange's bytes are charged to the consuming tasks,
    each fetching its share of them (the stage's bytes x the task's share of its input rows,
    the remote part ``(W-1)/W``) over its node's link as part of its duration, instead of to
    the stage as a barrier before it (:func:`task_fetch_s`); a broadcast stays a barrier.

    Raises:
        KnobError: a non-positive worker/thread count or bandwidth, a negative overhead, a
            dependency on a stage without task records, or a dependency cycle.
    """
    _check_knobs(workers, threads_per_worker, bandwidth_bytes_per_s, task_overhead_s)
    for name, value in (("fixed_overhead_s", fixed_overhead_s), ("serial_s", serial_s)):
        if not value >= 0:
            raise KnobError(f"what-if {name} must be >= 0, got {value!r}")
    stages = {s: task_groups(recs) for s, recs in group_by_stage(records).items()}
    deps = _resolve_deps(stages, stage_deps)
    # Scheduling units: each task group of each stage. A stage's later groups (an exchange's
    # helper tasks) follow its earlier ones; its first group follows the upstream stages' last.
    units = {(s, k): g for s, groups in stages.items() for k, g in enumerate(groups)}
    unit_deps = {(s, k): ((s, k - 1),) if k else tuple((u, len(stages[u]) - 1) for u in deps[s])
                 for s, k in units}
    slots = [0.0] * (workers * threads_per_worker)  # a heap of the times slots become free
    dispatcher = [0.0, serial_s]  # when the serial dispatcher is next free, its cost per task
    timings: dict[tuple[int, int], StageTiming] = {}
    pending = set(units)
    while pending:
        # The eligible unit (all upstream done) that is ready first; ties by stage number.
        ready, unit, exchange = min(
            _ready_time(u, units, unit_deps[u], timings, workers, bandwidth_bytes_per_s,
                        frozenset(broadcast_stages), fetch_per_task)
            for u in pending if all(d in timings for d in unit_deps[u]))
        pending.discard(unit)
        fetch = (task_fetch_s(units[unit], [units[d] for d in unit_deps[unit]
                                            if d[0] not in broadcast_stages or d[0] == unit[0]],
                              workers, bandwidth_bytes_per_s)
                 if fetch_per_task else [0.0] * len(units[unit]))
        timings[unit] = _place_stage(unit[0], units[unit], slots, ready, exchange,
                                     task_overhead_s, order, dispatcher, fetch)
    prediction = _prediction(workers, threads_per_worker, _merge_groups(timings), deps)
    return replace(prediction, makespan=prediction.makespan + fixed_overhead_s,
                   fixed_s=fixed_overhead_s)


@dataclass(frozen=True, slots=True)
class Overheads:
    """Costs a run paid beyond its measured task bodies, measured from the run itself.

    ``task_s``: the mean idle gap between consecutive tasks of the same stage on one worker
    thread (scheduler round trip, input fetch, deserialisation, and contention); gaps across a
    stage boundary are left out, as those are barrier waits the replay reproduces on its own.
    ``fixed_s``: the wall time outside the tasks' span (building and submitting the graph,
    gathering the result).
    """

    task_s: float
    fixed_s: float


def worker_lanes(records: Sequence[TaskRecord]) -> list[str]:
    """A lane per worker thread for each record: the first lane of its worker that is free."""
    lanes: dict[str, list[float]] = {}
    out: dict[int, str] = {}
    for i in sorted(range(len(records)), key=lambda i: (records[i].start, i)):
        r = records[i]
        ends = lanes.setdefault(r.worker, [])
        lane = next((k for k, end in enumerate(ends) if end <= r.start), len(ends))
        if lane == len(ends):
            ends.append(r.stop)
        ends[lane] = r.stop
        out[i] = f"{r.worker} #{lane}"
    return [out[i] for i in range(len(records))]


def measure_overheads(records: Sequence[TaskRecord], wall_s: float | None = None) -> Overheads:
    """The per-task and per-query overheads of a measured run (see :class:`Overheads`)."""
    by_lane: dict[str, list[TaskRecord]] = {}
    for lane, r in zip(worker_lanes(records), records, strict=True):
        by_lane.setdefault(lane, []).append(r)
    gaps: list[float] = []
    for rs in by_lane.values():
        rs.sort(key=lambda r: r.start)
        gaps.extend(max(0.0, b.start - a.stop) for a, b in itertools.pairwise(rs)
                    if a.stage == b.stage)
    task_s = statistics.fmean(gaps) if gaps else 0.0
    fixed_s = max(0.0, wall_s - measured_makespan(records)) if wall_s is not None else 0.0
    return Overheads(task_s, fixed_s)


def calibrate_overhead(records: Sequence[TaskRecord], workers: int, target_s: float,
                       **kwargs: Any) -> float:
    """The per-task overhead that makes the prediction at ``workers`` reach ``target_s``.

    A fitted alternative to :func:`measure_overheads` (0 when the replay alone already reaches
    the target). Found by bisection; ``kwargs`` go to :func:`predict_makespan`.
    """
    def at(overhead: float) -> float:
        return predict_makespan(records, workers, task_overhead_s=overhead, **kwargs).makespan

    if not records or at(0.0) >= target_s:
        return 0.0
    low, high = 0.0, target_s  # one task per slot with this overhead already exceeds it
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if at(mid) < target_s else (low, mid)
    return high


def predict_many(records: Sequence[TaskRecord], workers: Sequence[int] = WHATIF_WORKERS,
                 **kwargs: Any) -> dict[int, Prediction]:
    """:func:`predict_makespan` at each worker count in ``workers``."""
    return {w: predict_makespan(records, w, **kwargs) for w in workers}


def _check_knobs(workers: int, threads: int, bandwidth: float, overhead: float) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise KnobError(f"what-if workers must be a positive integer, got {workers!r}")
    if limits.WHATIF_WORKERS.problem(workers):
        raise KnobError(f"what-if workers {limits.WHATIF_WORKERS.problem(workers)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise KnobError(f"what-if threads_per_worker must be a positive integer, got {threads!r}")
    if not bandwidth > 0:
        raise KnobError(f"what-if bandwidth_bytes_per_s must be > 0, got {bandwidth!r}")
    if not overhead >= 0:
        raise KnobError(f"what-if task_overhead_s must be >= 0, got {overhead!r}")


def _resolve_deps(groups: Mapping[int, object],
                  stage_deps: Mapping[int, Collection[int]] | None) -> dict[int, tuple[int, ...]]:
    """Upstream stages of every recorded stage, checked for unknown stages and cycles."""
    if stage_deps is None:
        return default_stage_deps(groups)
    deps = {s: tuple(sorted(set(stage_deps.get(s, ())))) for s in groups}
    for s, ups in deps.items():
        missing = [u for u in ups if u not in groups]
        if missing:
            raise KnobError(f"what-if stage_deps: stage {s} depends on stage(s) {missing} "
                            f"with no task records (recorded stages: {sorted(groups)})")
    done: set[int] = set()
    while len(done) < len(deps):
        free = [s for s, ups in deps.items() if s not in done and set(ups) <= done]
        if not free:
            cycle = sorted(set(deps) - done)
            raise KnobError(f"what-if stage_deps has a cycle among stages {cycle}")
        done.update(free)
    return deps


def crossing_bytes(records: Sequence[TaskRecord], workers: int, *,
                   stage_deps: Mapping[int, Collection[int]] | None = None,
                   broadcast_stages: Collection[int] = (), **_: Any) -> float:
    """Bytes that cross between worker processes when ``records`` run on ``workers`` workers,
    hop by hop as the replay charges them (:func:`predict_makespan` with ``fetch_per_task``):
    a stage's tasks hand their output to its exchange's helper tasks (combine, collect) and
    those to the consuming stage, and of each hop the remote part ``(W-1)/W`` crosses; a
    broadcast's output goes to the ``W-1`` other workers whole. What the final stage hands to
    the client is left out (it crosses at every worker count). The replay's other keywords
    are accepted and ignored."""
    stages = {s: task_groups(recs) for s, recs in group_by_stage(records).items()}
    deps = _resolve_deps(stages, stage_deps)
    remote = (workers - 1) / workers
    total = 0.0
    for s, groups in stages.items():
        # within the stage: each helper group fetches the group before it
        total += sum(r.bytes_sent for g in groups[:-1] for r in g) * remote
        for u in deps[s]:  # from the upstream stages' last groups
            sent = sum(r.bytes_sent for r in stages[u][-1])
            total += sent * ((workers - 1) if u in broadcast_stages else remote)
    return total


def task_fetch_s(consumers: Sequence[TaskRecord], producers: Sequence[Sequence[TaskRecord]],
                 workers: int, bandwidth: float) -> list[float]:
    """Seconds each consumer task spends fetching its input over its node's link: the bytes
    the ``producers`` sent, split over the consumers by their share of the input rows (all
    equal when none were counted), the remote part ``(W-1)/W`` of it at ``bandwidth`` bytes
    per second. A node's link is taken to serve one fetching task at a time at full speed
    (right when one task's input dominates, as a hot key's does)."""
    sent = sum(r.bytes_sent for group in producers for r in group)
    rows = [r.rows_in for r in consumers]
    total = sum(rows)
    shares = [n / total for n in rows] if total else [1 / len(rows)] * len(rows) if rows else []
    return [sent * s * (workers - 1) / workers / bandwidth for s in shares]


def _ready_time(unit: tuple[int, int], units: Mapping[tuple[int, int], Sequence[TaskRecord]],
                ups: Sequence[tuple[int, int]], timings: Mapping[tuple[int, int], StageTiming],
                workers: int, bandwidth: float, broadcast: frozenset[int] = frozenset(),
                fetch_per_task: bool = False) -> tuple[float, tuple[int, int], float]:
    """(ready time, unit, exchange seconds): upstream finish plus the network term (only a
    broadcast's with ``fetch_per_task``: the consumer tasks carry the rest)."""
    if not ups:
        return 0.0, unit, 0.0
    upstream_done = max(timings[u].finish for u in ups)
    sent = (0 if fetch_per_task else
            sum(r.bytes_sent for u in ups if u[0] not in broadcast for r in units[u]))
    remote = sent * (workers - 1) / workers  # the local share never crosses the network
    uniform = remote / (workers * bandwidth)
    rows = [r.rows_in for r in units[unit]]
    share = max(rows) / sum(rows) if sum(rows) else 0.0
    # A broadcast's bytes go to each of the other W-1 workers over the producer's link.
    copied = sum(r.bytes_sent for u in ups if u[0] in broadcast for r in units[u])
    exchange = max(uniform, share * remote / bandwidth) + copied * (workers - 1) / bandwidth
    return upstream_done + exchange, unit, exchange


def _place_stage(stage: int, recs: Sequence[TaskRecord], slots: list[float], ready: float,
                 exchange: float, overhead: float, order: TaskOrder,
                 dispatcher: list[float], fetch: Sequence[float]) -> StageTiming:
    """List-schedule one stage's tasks onto the slot heap; return its timing.

    ``dispatcher`` is [when the serial dispatcher is next free, its seconds per task]: a
    task starts no earlier than its dispatch, and dispatches are one at a time. ``fetch``:
    each task's seconds fetching its input, added to its duration."""
    durations = []
    for r, f in zip(recs, fetch, strict=True):
        if r.stop < r.start:
            raise ValueError(f"task {r.key} stops ({r.stop}) before it starts ({r.start})")
        durations.append((r.duration + overhead + f, r.key))
    if order is TaskOrder.LPT:
        durations.sort(key=lambda dk: dk[0], reverse=True)  # stable: ties in record order
    first_start, finish = float("inf"), ready
    for d, _ in durations:
        slot = heapq.heappop(slots)
        if dispatcher[1]:  # dispatches overlap running tasks (a worker queues the next one)
            dispatcher[0] = max(dispatcher[0], ready) + dispatcher[1]
        start = max(slot, ready, dispatcher[0])
        heapq.heappush(slots, start + d)
        first_start, finish = min(first_start, start), max(finish, start + d)
    longest, key = max(durations, key=lambda dk: dk[0])
    return StageTiming(stage, len(recs), ready, exchange, first_start, finish,
                       longest, key)


def _merge_groups(timings: Mapping[tuple[int, int], StageTiming]) -> dict[int, StageTiming]:
    """One timing per stage from the timings of its task groups."""
    by_stage: dict[int, list[StageTiming]] = {}
    for (stage, _), t in sorted(timings.items()):
        by_stage.setdefault(stage, []).append(t)
    out = {}
    for s, ts in by_stage.items():
        longest = max(ts, key=lambda t: t.longest_task_s)
        out[s] = StageTiming(s, sum(t.tasks for t in ts), ts[0].ready,
                             sum(t.exchange_s for t in ts), min(t.start for t in ts),
                             max(t.finish for t in ts), longest.longest_task_s,
                             longest.longest_key)
    return out


def _prediction(workers: int, threads: int, timings: Mapping[int, StageTiming],
                deps: Mapping[int, Sequence[int]]) -> Prediction:
    """Assemble the prediction and walk the critical path back from the last stage."""
    ordered = tuple(sorted(timings.values(), key=lambda t: t.stage))
    if not ordered:
        return Prediction(workers, threads, 0.0, (), (), None)
    last = max(ordered, key=lambda t: (t.finish, t.stage))
    path = [last.stage]
    while deps[path[-1]]:
        path.append(max(deps[path[-1]], key=lambda u: (timings[u].finish, u)))
    path.reverse()
    critical = max(path, key=lambda s: (timings[s].span, -s))
    return Prediction(workers, threads, last.finish, ordered, tuple(path), critical)
