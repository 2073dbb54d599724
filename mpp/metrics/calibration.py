"""Calibration: separate what a measured run's tasks did from what the machine added.

A task record's wall duration is the task's own work *plus* the time it waited for a core:
on a shared 2-core machine, a 2-worker run's tasks are slower than a 1-worker run's, and a
replay that takes durations as given carries that contention to every worker count it
predicts. This module splits a run into parts that scale differently
(docs/architecture/whatif-model.md):

* **Task work** (scales with the slots): each task's CPU seconds (``TaskRecord.cpu_s``,
  ``time.thread_time`` around the task body), the same wherever it runs.
* **Per-task overhead on the worker** (scales with the slots): ``task_s`` seconds between
  task bodies: the worker processes' CPU beyond the task bodies (receiving, deserialising,
  fetching and sending data; ``QueryStats.worker_cpu_s``) per task, plus a per-task latency
  fitted so that the replay at the measured worker count spans what the tasks spanned.
* **Per-task serial cost** (does not scale): ``serial_s``, the scheduler's CPU seconds per
  task, one task at a time however many workers there are. On a LocalCluster the scheduler
  runs in the client process, so it is the client's CPU time during the query over the tasks
  (``QueryStats.client_cpu_s``).
* **Per-query fixed cost** (does not scale): wall time outside the tasks' span (graph
  submission, first-task latency, gathering the result).
* **Contention** (depends on the machine): ``stretch``, the tasks' wall over CPU seconds. On
  one machine of ``C`` cores shared by the run's own ``rho`` busy threads (its CPU seconds
  over its span) and ``B`` other runnable threads, ``stretch = max(1, (B + rho) / C)``; ``B``
  is inferred from the measured stretch, and at another worker count ``rho`` changes with the
  replayed span (a fixed point). On a named warehouse every node has its own cores: no stretch.

All work, overhead and serial costs are replayed at the target's stretch
(:func:`predict_calibrated`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mpp.metrics.records import TaskRecord
from mpp.metrics.whatif import Prediction, measured_makespan, predict_makespan

_FIT_STEPS = 40  # bisection steps: 2^-40 of the span is far below a clock's resolution
_FIXED_POINT_STEPS = 12
_SLACK = 0.01  # relative differences below this are clock noise, not contention


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one measured run says about its work and the machine it ran on.

    Attributes:
        cores: cores of the machine the run shared (``os.cpu_count()`` of a LocalCluster's).
        stretch: the task bodies' wall seconds over their CPU seconds (>= 1).
        serial_stretch: the serial dispatcher's wall seconds over its CPU seconds (>= 1):
            how long the scheduler, one thread always ready to run, waited for a core.
        task_s: per-task overhead on the worker, CPU seconds (plus a fitted latency when the
            serial cost is unknown).
        serial_s: per-task serial cost (the scheduler), CPU seconds.
        fixed_s: per-query wall seconds outside the tasks' span, at ``serial_stretch``.
        own_cpu_s: the run's own CPU seconds: task bodies, overheads and serial costs.
        background: other runnable threads on the machine's cores, inferred from
            ``serial_stretch``.
    """

    cores: int
    stretch: float
    serial_stretch: float
    task_s: float
    serial_s: float
    fixed_s: float
    own_cpu_s: float
    background: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"cores": self.cores, "stretch": self.stretch,
                "serial_stretch": self.serial_stretch, "task_s": self.task_s,
                "serial_s": self.serial_s, "fixed_s": self.fixed_s,
                "own_cpu_s": self.own_cpu_s, "background": self.background}


def task_cpu(r: TaskRecord) -> float:
    """A task's CPU seconds (its wall duration when not measured, e.g. an old report)."""
    return r.duration if r.cpu_s is None else min(r.cpu_s, r.duration) or r.duration


def stretched(records: Sequence[TaskRecord], stretch: float) -> list[TaskRecord]:
    """The records with each task's duration set to its CPU seconds times ``stretch``."""
    return [replace(r, stop=r.start + task_cpu(r) * stretch) for r in records]


def calibrate(records: Sequence[TaskRecord], wall_s: float, *, workers: int, cores: int,
              client_cpu_s: float | None = None, worker_cpu_s: float | None = None,
              **replay: Any) -> Calibration:
    """Calibrate on a run of ``workers`` workers on a machine of ``cores`` cores.

    ``client_cpu_s`` / ``worker_cpu_s``: the CPU seconds the client process (with a
    LocalCluster's scheduler) and the worker processes used during the query
    (``QueryStats``). ``replay`` goes to :func:`~mpp.metrics.whatif.predict_makespan`
    (stage_deps, threads_per_worker, bandwidth, broadcast_stages).

    The slots' work (task CPU and the per-task worker CPU) is stretched as the task bodies
    were. What it leaves of the tasks' span is the serial dispatcher waiting for a core: its
    stretch is the one that makes the replay at ``workers`` span what the tasks spanned. With
    no serial cost measured, the rest is fitted as a per-task latency instead; when the
    measured costs alone already exceed the span, they are scaled down to fit.
    """
    cpu = sum(task_cpu(r) for r in records)
    wall = sum(r.duration for r in records)
    stretch = max(1.0, wall / cpu) if cpu > 0 else 1.0
    n = len(records)
    span = measured_makespan(records)
    serial = (client_cpu_s or 0.0) / n if n else 0.0
    around = max(0.0, (worker_cpu_s or 0.0) - cpu) / n if n else 0.0
    recs = stretched(records, stretch)

    def replayed(task: float, serial_wall: float) -> float:
        return predict_makespan(recs, workers, task_overhead_s=task * stretch,
                                serial_s=serial_wall, **replay).makespan

    serial_stretch, latency = stretch, 0.0
    base = replayed(around, serial * stretch) if n else 0.0
    if base < span:
        if serial > 0:  # the dispatcher waited longer for a core than the task bodies did
            top = span / serial  # the dispatcher alone would span more than the tasks
            serial_stretch = stretch + _bisect(
                lambda x: replayed(around, serial * (stretch + x)) < span, top)
        else:
            latency = _bisect(lambda t: replayed(around + t, 0.0) < span, span)
    elif base > span * (1 + _SLACK):  # within the slack: a rounding, not a contradiction
        k = _bisect(lambda k: replayed(around * k, serial * k * stretch) < span, 1.0)
        serial, around = serial * k, around * k
    own = ((client_cpu_s or 0.0) + worker_cpu_s if worker_cpu_s is not None
           else cpu + n * (around + serial))
    rho = own / span if span > 0 else 0.0
    contended = serial_stretch > 1 + _SLACK
    background = max(0.0, serial_stretch * cores - rho) if contended else 0.0
    return Calibration(cores, stretch, serial_stretch, around + latency, serial,
                       max(0.0, wall_s - span), own, background)


def predict_calibrated(records: Sequence[TaskRecord], workers: int, cal: Calibration, *,
                       shared_cores: int | None = None, background: float | None = None,
                       **replay: Any) -> Prediction:
    """Replay ``records`` on ``workers`` workers with the costs ``cal`` separated.

    ``shared_cores``: the cores all workers share (the measuring machine's, to predict another
    worker count on it; ``background`` defaults to the one measured); None: each worker has
    cores of its own and nothing else runs there (a named warehouse), so nothing is stretched.
    """
    bg = cal.background if background is None else background

    def at(factor: float) -> Prediction:
        body = max(1.0, cal.stretch * factor)
        return predict_makespan(stretched(records, body), workers,
                                task_overhead_s=cal.task_s * body,
                                serial_s=cal.serial_s * cal.serial_stretch * factor, **replay)

    if shared_cores is None:  # every stretch back to 1
        factor = 1.0 / cal.serial_stretch
        pred = at(factor)
    else:
        # The machine's pressure depends on the run's own busy threads, which depend on its
        # span: a fixed point, from the measured run's pressure.
        factor, pred = 1.0, at(1.0)
        for _ in range(_FIXED_POINT_STEPS):
            rho = cal.own_cpu_s / pred.makespan if pred.makespan > 0 else 0.0
            new = max(1.0, (bg + rho) / shared_cores) / cal.serial_stretch
            if abs(new - factor) < 1e-4:
                break
            factor = (factor + new) / 2  # damped: the span shrinks as the pressure grows
            pred = at(factor)
    fixed = cal.fixed_s * factor
    return replace(pred, makespan=pred.makespan + fixed, fixed_s=fixed)


def _bisect(below: Any, high: float) -> float:
    """The smallest x in [0, high] with ``below(x)`` false (``below`` is monotone)."""
    low = 0.0
    for _ in range(_FIT_STEPS):
        mid = (low + high) / 2
        low, high = (mid, high) if below(mid) else (low, mid)
    return high
