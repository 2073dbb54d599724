"""Calibration: separate what a measured run's tasks did from what the machine added.

A task record's wall duration is the task's own work *plus* the time it waited (for a core,
for its process's other threads, for the scheduler). This module splits a run into parts
that scale differently with the workers (docs/architecture/whatif-model.md):

* **Task work** (scales with the slots): each task's CPU seconds (``TaskRecord.cpu_s``,
  ``time.thread_time`` around the task body), the same wherever it runs.
* **Per-task cost on the worker** (scales with the slots): ``task_s``, the worker processes'
  CPU beyond the task bodies (receiving, deserialising, fetching and sending data;
  ``QueryStats.worker_cpu_s``) per task.
* **Per-task serial cost** (does not scale): ``serial_s``, the scheduler's CPU seconds per
  task, one task at a time however many workers there are. On a LocalCluster the scheduler
  runs in the client process, so it is the client's CPU time during the query over the tasks
  (``QueryStats.client_cpu_s``).
* **Per-query fixed cost** (does not scale): wall time outside the tasks' span (graph
  submission, first-task latency, gathering the result).
* **Moving data between worker processes** (scales with the remote part of each exchange):
  ``transfer_s``, the workers' CPU per byte that crosses, measured on the machine
  (:mod:`mpp.execution.transfer`). A 1-worker run moves nothing between processes; with W
  workers the remote part ``(W-1)/W`` of every exchange hop crosses
  (:func:`~mpp.metrics.whatif.crossing_bytes`). It is taken out of the per-task worker cost
  and charged to the fetching task instead.

*On the machine the run was measured on* the scheduler shares the cores and the round trips
with the workers: a worker's next task waits while the scheduler handles the finished tasks
of all the slots, one at a time, so its CPU adds to the span instead of hiding behind the
tasks (at 1 worker by the round trip, at 2 on 2 cores because the workers' threads fill the
cores): a task holds its slot for its CPU, the per-task worker cost and ``slots x serial_s``
(with more task threads than cores, the CPU stretched by threads over cores).
What that leaves unexplained of the measured span (latency, or the overlap it does not have;
other users' load) is ``ratio``, the span over that replay, carried to the other worker
count (:func:`predict_calibrated`).

*On a named warehouse* every node and the scheduler have cores of their own, and the
warehouse runs the measured work in its own design (:func:`warehouse_tasks`): an exchange's
combine tasks, a device of the Dask graph that bounds its edges, are not run; their CPU is
done by the producers that partition their own output (each map task's share by the rows it
handed over). The scheduler's and the workers' costs are per task of the graph that ran,
the exchanges' unrecorded split tasks counted (``graph_tasks``), and charged per task the
warehouse schedules; each consuming task fetches its input over its node's link. Tasks run
for their CPU, cost and fetch while the scheduler dispatches, one task at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mpp.metrics.records import TaskRecord
from mpp.metrics.skew import group_by_stage, task_groups
from mpp.metrics.whatif import Prediction, crossing_bytes, measured_makespan, predict_makespan


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one measured run says about its work and the machine it ran on.

    Attributes:
        cores: cores of the machine the run shared (``os.cpu_count()`` of a LocalCluster's).
        stretch: the task bodies' wall seconds over their CPU seconds (>= 1): how long they
            waited for a core or for their process's other threads. A diagnostic: the
            replay runs tasks for their CPU seconds, and ``ratio`` covers the waiting.
        task_s: per-task cost on the worker beyond the task body, CPU seconds.
        serial_s: per-task serial cost (the scheduler), CPU seconds.
        fixed_s: per-query wall seconds outside the tasks' span.
        ratio: the tasks' measured span over their replay at the measured worker count on
            the measuring machine (:func:`shared_overhead`): what the CPU seconds do not
            explain (> 1: waiting; < 1: overlap the replay does not credit).
        tasks: the recorded tasks ``task_s`` and ``serial_s`` are per.
        graph_tasks: the tasks of the graph that ran: the recorded ones and the exchanges'
            split tasks, which leave no record but cost the scheduler and the workers as any
            other task (0: not known, taken as ``tasks``).
        transfer_s: CPU seconds a byte costs the workers to cross from one worker process to
            another (serialising, the copies through the socket, deserialising), measured
            on the run's cluster (:func:`mpp.execution.transfer.measure_transfer_cost`); 0:
            not measured. Kept out of ``task_s``: a 1-worker run moves nothing between
            processes, W workers move the remote part of every exchange.
    """

    cores: int
    stretch: float
    task_s: float
    serial_s: float
    fixed_s: float
    ratio: float = 1.0
    tasks: int = 0
    graph_tasks: int = 0
    transfer_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"cores": self.cores, "stretch": self.stretch, "task_s": self.task_s,
                "serial_s": self.serial_s, "fixed_s": self.fixed_s, "ratio": self.ratio,
                "tasks": self.tasks, "graph_tasks": self.graph_tasks,
                "transfer_s": self.transfer_s}

    def per_graph_task(self) -> tuple[float, float]:
        """(worker cost, scheduler cost) per task of the graph that ran: the measured CPU
        over every task, the unrecorded split tasks counted (what each task the warehouse
        schedules costs; :func:`predict_calibrated`)."""
        k = (self.tasks / self.graph_tasks if self.graph_tasks > self.tasks > 0 else 1.0)
        return self.task_s * k, self.serial_s * k


def task_cpu(r: TaskRecord) -> float:
    """A task's CPU seconds (its wall duration when not measured, e.g. an old report)."""
    return r.duration if r.cpu_s is None else min(r.cpu_s, r.duration) or r.duration


def stretched(records: Sequence[TaskRecord], stretch: float) -> list[TaskRecord]:
    """The records with each task's duration set to its CPU seconds times ``stretch``."""
    return [replace(r, stop=r.start + task_cpu(r) * stretch) for r in records]


def shared_stretch(cal: Calibration, workers: int, threads_per_worker: int = 1) -> float:
    """How much longer the workers' CPU takes on the measuring machine at ``workers``
    workers: 1 while there is a core per task thread, else the task threads share the cores
    (more workers than cores do not run faster than the cores)."""
    return max(1.0, workers * threads_per_worker / cal.cores) if cal.cores > 0 else 1.0


def shared_overhead(cal: Calibration, workers: int, threads_per_worker: int = 1) -> float:
    """Seconds a task holds its slot beyond its CPU on the measuring machine, at ``workers``
    workers: its cost on the worker (stretched as its CPU, :func:`shared_stretch`), and the
    scheduler's serial cost for every slot's task (the slot's next task waits while the
    scheduler handles them one at a time)."""
    slots = workers * threads_per_worker
    return cal.task_s * shared_stretch(cal, workers, threads_per_worker) + slots * cal.serial_s


def calibrate(records: Sequence[TaskRecord], wall_s: float, *, workers: int, cores: int,
              client_cpu_s: float | None = None, worker_cpu_s: float | None = None,
              graph_tasks: int | None = None, transfer_s: float = 0.0,
              **replay: Any) -> Calibration:
    """Calibrate on a run of ``workers`` workers on a machine of ``cores`` cores.

    ``client_cpu_s`` / ``worker_cpu_s``: the CPU seconds the client process (with a
    LocalCluster's scheduler) and the worker processes used during the query
    (``QueryStats``); unmeasured, they count as none, and ``ratio`` takes up what they cost.
    ``graph_tasks``: the tasks of the graph that ran, split tasks included (None: only the
    recorded ones are known). ``transfer_s``: the workers' CPU seconds per byte that crosses
    between worker processes (0: not measured); the bytes that crossed in this run
    (:func:`~mpp.metrics.whatif.crossing_bytes` at ``workers``) are taken out of the per-task
    worker cost at that price, and the replay charges them per worker count instead.
    ``replay`` goes to :func:`~mpp.metrics.whatif.predict_makespan`
    (stage_deps, threads_per_worker, bandwidth, broadcast_stages).
    """
    n = len(records)
    cpu = sum(task_cpu(r) for r in records)
    wall = sum(r.duration for r in records)
    span = measured_makespan(records)
    moved = transfer_s * crossing_bytes(records, workers, **replay) if n else 0.0
    cal = Calibration(cores, max(1.0, wall / cpu) if cpu > 0 else 1.0,
                      max(0.0, (worker_cpu_s or 0.0) - cpu - moved) / n if n else 0.0,
                      (client_cpu_s or 0.0) / n if n else 0.0, max(0.0, wall_s - span),
                      tasks=n, graph_tasks=max(n, graph_tasks or 0), transfer_s=transfer_s)
    here = _shared(records, workers, cal, replay).makespan if n else 0.0
    return replace(cal, ratio=span / here if here > 0 and span > 0 else 1.0)


def predict_calibrated(records: Sequence[TaskRecord], workers: int, cal: Calibration, *,
                       shared_cores: int | None = None, **replay: Any) -> Prediction:
    """Replay ``records`` on ``workers`` workers with the costs ``cal`` separated.

    ``shared_cores``: the cores of one machine that the workers and the scheduler share, as
    on the measuring machine (its ``cal.cores``, to predict another worker count on it): each
    task holds its slot for :func:`shared_overhead` beyond its CPU, and the whole replay is
    scaled by the measured ``ratio``. None: a warehouse whose nodes and scheduler have cores
    of their own and nothing else running, running the work as a warehouse does
    (:func:`warehouse_tasks`): each task holds its slot for its CPU, the workers' cost per
    graph task and its input's fetch over its node's link, while the scheduler dispatches one
    task every scheduler cost per graph task (dispatches overlapping running tasks); nothing
    is stretched.
    """
    if shared_cores is None:
        task_s, serial_s = cal.per_graph_task()
        pred = predict_makespan(warehouse_tasks(records), workers, task_overhead_s=task_s,
                                serial_s=serial_s, fetch_per_task=True, **replay)
    else:
        pred = _scaled(_shared(records, workers, replace(cal, cores=shared_cores), replay),
                       cal.ratio)
    return replace(pred, makespan=pred.makespan + cal.fixed_s, fixed_s=cal.fixed_s)


def warehouse_tasks(records: Sequence[TaskRecord]) -> list[TaskRecord]:
    """The tasks a warehouse runs for the measured work: each stage's own tasks, running for
    their CPU seconds, with the CPU of the exchange helper tasks recorded under the stage
    (``stageN-combine``, ``stageN-collect``) folded into them, each its share by the rows it
    handed to the exchange (all equal when none).

    Why: a combine task merges many producers' outputs and cuts them into buckets so that
    the Dask graph has M + 2CN edges instead of M x N; at many buckets one combine may merge
    every producer (at 1,000 maps and 2,048 buckets, one task merging all rows). A warehouse
    has no such task: each producer partitions its own output (Trino's
    PartitionedOutputOperator, Spark's shuffle write) and the consumers fetch from all of
    them. The helpers' bytes are not carried: the producers' own bytes are what crosses.
    """
    out: list[TaskRecord] = []
    for recs in group_by_stage(stretched(records, 1.0)).values():
        own, *helpers = task_groups(recs)
        extra = sum(task_cpu(r) for group in helpers for r in group)
        rows = sum(r.rows_out for r in own)
        for r in own:
            add = extra * (r.rows_out / rows if rows else 1 / len(own))
            out.append(replace(r, stop=r.stop + add, cpu_s=task_cpu(r) + add))
    return out


def _shared(records: Sequence[TaskRecord], workers: int, cal: Calibration,
            replay: dict[str, Any]) -> Prediction:
    """The replay on the measuring machine, before the measured ratio."""
    threads = replay.get("threads_per_worker", 1)
    if cal.transfer_s > 0:  # the bytes that cross cost the fetching task the CPU measured
        replay = {**replay, "bandwidth_bytes_per_s": 1 / cal.transfer_s, "fetch_per_task": True}
    return predict_makespan(stretched(records, shared_stretch(cal, workers, threads)), workers,
                            task_overhead_s=shared_overhead(cal, workers, threads), **replay)


def _scaled(pred: Prediction, k: float) -> Prediction:
    """``pred`` with every time multiplied by ``k``."""
    stages = tuple(replace(s, ready=s.ready * k, exchange_s=s.exchange_s * k, start=s.start * k,
                           finish=s.finish * k, longest_task_s=s.longest_task_s * k)
                   for s in pred.stages)
    return replace(pred, makespan=pred.makespan * k, stages=stages, fixed_s=pred.fixed_s * k)
