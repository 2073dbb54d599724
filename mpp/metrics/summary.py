"""Per-stage summaries of a query's task records, and the statistics a Result carries.

A stage runs one group of pipeline tasks (``stage1-scan-filter-partial-agg``) and, when it ends
in a hash exchange or a broadcast, a group of exchange tasks (``stage1-combine``,
``stage1-collect``). Each group is summarised separately: task count, rows, bytes read, bytes
handed to the exchange, task time min / median / max, max/median rows (the skew ratio) and the
slowest task with the key values it held.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mpp.metrics.calibration import Calibration, calibrate, predict_calibrated
from mpp.metrics.records import TaskRecord
from mpp.metrics.skew import StageSkew, skew_by_stage, skew_options
from mpp.metrics.whatif import (
    WHATIF_WORKERS,
    Overheads,
    Prediction,
    measure_overheads,
    predict_makespan,
    worker_lanes,
)
from mpp.text import plural

if TYPE_CHECKING:
    from mpp.physical.planner import PhysicalPlan


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """What one task group (one Dask key prefix) of one stage did."""

    stage: int
    name: str
    tasks: int
    rows_in: int
    rows_out: int
    bytes_read: int
    bytes_sent: int
    time_min: float
    time_median: float
    time_max: float
    rows_max: int
    rows_median: float
    slowest_key: str
    slowest_partition: int
    slowest_worker: str
    slowest_hot_keys: tuple[tuple[Any, int], ...]
    join_rows: tuple[int, int] = (0, 0)  # rows into hash joins (left, right), all tasks
    join_builds: int = 0  # hash tables built for the joins, all tasks
    partial_skipped: int = 0  # tasks whose partial step (or combine's merge) was skipped

    @property
    def skew(self) -> float:
        """max / median rows in per task (1.0 = perfectly even)."""
        if self.rows_median <= 0:
            return 1.0 if self.rows_max == 0 else float("inf")
        return self.rows_max / self.rows_median


def summarize_group(records: Sequence[TaskRecord]) -> GroupSummary:
    """Summarise the records of one task group (all with the same ``name``)."""
    times = [r.duration for r in records]
    rows = [r.rows_in for r in records]
    slowest = max(records, key=lambda r: r.duration)
    return GroupSummary(
        stage=records[0].stage, name=records[0].name, tasks=len(records),
        rows_in=sum(rows), rows_out=sum(r.rows_out for r in records),
        bytes_read=sum(r.bytes_read for r in records),
        bytes_sent=sum(r.bytes_sent for r in records),
        time_min=min(times), time_median=statistics.median(times), time_max=max(times),
        rows_max=max(rows), rows_median=statistics.median(rows),
        slowest_key=slowest.key, slowest_partition=slowest.partition,
        slowest_worker=slowest.worker,
        slowest_hot_keys=slowest.hot_keys,
        join_rows=(sum(r.join_rows[0] for r in records), sum(r.join_rows[1] for r in records)),
        join_builds=sum(r.join_builds for r in records),
        partial_skipped=sum(1 for r in records if r.partial_skipped),
    )


def summarize(records: Sequence[TaskRecord]) -> dict[int, list[GroupSummary]]:
    """Group summaries per stage number, each stage's groups in first-seen name order."""
    groups: dict[tuple[int, str], list[TaskRecord]] = {}
    for r in sorted(records, key=lambda r: (r.stage, r.start)):
        groups.setdefault((r.stage, r.name), []).append(r)
    out: dict[int, list[GroupSummary]] = {}
    for (stage, _), recs in groups.items():
        out.setdefault(stage, []).append(summarize_group(recs))
    return out


@dataclass(frozen=True, slots=True)
class QueryStats:
    """The measurements of one executed query.

    Attributes:
        query_id: unique id of the run (also in every task record).
        wall_seconds: from submitting the graph to having the result (client side).
        plan: the PhysicalPlan that was executed.
        tasks: one record per task that reported (pipeline and exchange tasks).
        stages: per-stage group summaries (see :func:`summarize`).
        client_cpu_s: CPU seconds this process used while the query ran (submitting the
            graph, gathering the result and, on a LocalCluster, the scheduler, which runs in
            this process): the query's serial, per-query cost the what-if model keeps apart
            from the tasks' (None when not measured).
        worker_cpu_s: CPU seconds the worker processes used from their first task of the
            query to the collection of its records: task bodies plus the per-task work around
            them (receiving tasks, fetching and sending data); None when not measured.
    """

    query_id: str
    wall_seconds: float
    plan: PhysicalPlan
    tasks: list[TaskRecord] = field(default_factory=list)
    stages: dict[int, list[GroupSummary]] = field(default_factory=dict)
    client_cpu_s: float | None = None
    worker_cpu_s: float | None = None

    @property
    def rows_read(self) -> int:
        """Rows scanned from storage (rows_in of scan stages' pipeline tasks)."""
        scans = {s.name for s in self.plan.stages if s.scans}
        return sum(r.rows_in for r in self.tasks if r.name in scans)

    @property
    def bytes_read(self) -> int:
        """Bytes read from storage over all tasks."""
        return sum(r.bytes_read for r in self.tasks)

    @property
    def bytes_exchanged(self) -> int:
        """Bytes pipeline tasks handed to exchanges (each row counted once)."""
        return sum(g.bytes_sent for gs in self.stages.values() for g in gs
                   if g.name == self.plan.stage(g.stage).name)

    @property
    def stage_deps(self) -> dict[int, tuple[int, ...]]:
        """Each recorded stage's upstream stages (the exchanges it reads), from the plan."""
        recorded = {r.stage for r in self.tasks}
        return {s.id: tuple(sorted({e.id for e in s.exchanges} & recorded))
                for s in self.plan.stages if s.id in recorded}

    def skew(self, **rules: Any) -> dict[int, StageSkew]:
        """Per-stage skew statistics and verdicts (:func:`mpp.metrics.skew.skew_by_stage`).

        The verdicts' knobs come from the settings the plan was made with
        (``metrics.spark_skew_threshold_bytes``); ``rules`` override them, e.g.
        ``spark_threshold_bytes``.
        """
        if not self.tasks:
            return {}
        rules = {**skew_options(self.plan.settings), **rules}
        return skew_by_stage(self.tasks, stage_deps=self.stage_deps, **rules)

    @property
    def graph_tasks(self) -> int:
        """Tasks of the Dask graph that ran: one per stage task, and each exchange's combine
        (or collect) and split tasks, as :meth:`PhysicalPlan.exchange_tasks` counts them
        (split tasks leave no record, but cost the scheduler and the workers)."""
        return sum(s.tasks + sum(self.plan.exchange_tasks(s)) for s in self.plan.stages)

    def overheads(self) -> Overheads:
        """The run's measured per-task and per-query overheads (beyond the task bodies)."""
        return measure_overheads(self.tasks, self.wall_seconds)

    @property
    def threads_per_worker(self) -> int:
        """Task slots per worker the run used (most tasks one worker ran at once)."""
        lanes: dict[str, set[str]] = {}
        for lane, r in zip(worker_lanes(self.tasks), self.tasks, strict=True):
            lanes.setdefault(r.worker, set()).add(lane)
        return max((len(v) for v in lanes.values()), default=1)

    def calibration(self) -> Calibration | None:
        """The run's costs separated (:func:`mpp.metrics.calibration.calibrate`), or None when
        its records carry no CPU times."""
        if not self.tasks or any(r.cpu_s is None for r in self.tasks):
            return None
        workers = len({r.worker for r in self.tasks})
        return calibrate(self.tasks, self.wall_seconds, workers=workers,
                         cores=os.cpu_count() or 1, client_cpu_s=self.client_cpu_s,
                         worker_cpu_s=self.worker_cpu_s, graph_tasks=self.graph_tasks,
                         **self._replay_options())

    def _replay_options(self) -> dict[str, Any]:
        broadcast = {st.id for st in self.plan.stages
                     if st.sink is not None and st.sink.kind.value == "broadcast"}
        return {"stage_deps": self.stage_deps, "broadcast_stages": broadcast,
                "threads_per_worker": self.threads_per_worker}

    def predict(self, workers: int, **options: Any) -> Prediction:
        """Predicted makespan of this run's tasks on a warehouse of ``workers`` nodes.

        Replays the records with the plan's stage dependencies and broadcast exchanges and
        this run's threads per worker: calibrated (:meth:`calibration`: task CPU, per-task and
        serial costs, the fixed cost, without this machine's contention) when the records
        carry CPU times and ``options`` set no overhead, else the durations as measured plus
        the measured overheads (per task and per query). ``options`` override any keyword
        argument of :func:`mpp.metrics.whatif.predict_makespan`.
        """
        kwargs = {**self._replay_options(), **options}
        cal = None if {"task_overhead_s", "fixed_overhead_s"} & set(options) else (
            self.calibration())
        if cal is not None:
            return predict_calibrated(self.tasks, workers, cal, **kwargs)
        over = self.overheads()
        return predict_makespan(self.tasks, workers, **{"task_overhead_s": over.task_s,
                                                        "fixed_overhead_s": over.fixed_s,
                                                        **kwargs})

    def predict_here(self, workers: int) -> Prediction:
        """Predicted makespan of this run's tasks on ``workers`` workers of this machine (its
        cores shared by them and by the other load measured during the run); the calibration
        check at the real worker count. Without CPU times in the records: :meth:`predict`."""
        cal = self.calibration()
        if cal is None:
            return self.predict(workers)
        return predict_calibrated(self.tasks, workers, cal, shared_cores=cal.cores,
                                  **self._replay_options())

    def predict_many(self, workers: Sequence[int] = WHATIF_WORKERS,
                     **options: Any) -> dict[int, Prediction]:
        """:meth:`predict` at each worker count in ``workers``."""
        return {w: self.predict(w, **options) for w in workers}


def time_profile(stats: QueryStats, threads: int) -> str:
    """Where a query's wall time went: busy task seconds per task group against the
    ``threads`` x wall seconds the cluster had; the rest is scheduling, transfer and idle."""
    capacity = stats.wall_seconds * max(1, threads)
    groups = [g for gs in stats.stages.values() for g in gs]
    spent = {g.name: sum(r.duration for r in stats.tasks if r.name == g.name) for g in groups}
    busy = sum(spent.values())
    parts = ", ".join(f"{g.name} {spent[g.name]:.2f} s ({plural(g.tasks, 'task')}, median "
                      f"{g.time_median * 1000:.1f} ms)" for g in groups)
    share = busy / capacity if capacity else 0.0
    return (f"tasks busy {busy:.2f} s of {capacity:.2f} thread-s ({share:.0%}); {parts}; "
            f"scheduling/transfer/idle {capacity - busy:.2f} thread-s")
