"""Validate the what-if model across worker counts: run a scenario at each count, predict every
count from every other, and compare with what really ran.

The what-if model replays a run's measured tasks on W simulated workers. It fits the run it was
measured on by construction; whether it predicts *another* worker count is the real test. This
module runs the same scenario (same data, same plans' SQL) on a LocalCluster of each worker count
this machine allows, and for every ordered pair (measured at ``a``, predicted for ``b``) prints the
prediction error ``predicted(b from a) / wall(b) - 1`` per variant x query, and its range and
sign per pair: a systematic sign is a model bias (CPU contention, fixed costs taken as per-task).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpp.errors import MppError
from mpp.scenario.report import QueryRun
from mpp.scenario.spec import Scenario


@dataclass(frozen=True, slots=True)
class CrossPrediction:
    """One prediction of one run's wall time at ``target`` workers from the run at ``source``."""

    variant: str
    query: str
    source: int
    target: int
    predicted_s: float
    measured_s: float

    @property
    def error(self) -> float:
        """predicted / measured - 1 (positive: the model over-predicts)."""
        return self.predicted_s / self.measured_s - 1.0


def cross_predictions(runs: dict[int, Sequence[QueryRun]]) -> list[CrossPrediction]:
    """Every (source, target) pair of worker counts, every variant x query run at both."""
    out: list[CrossPrediction] = []
    for source, measured in sorted(runs.items()):
        for target, actual in sorted(runs.items()):
            if source == target:
                continue
            by_key = {(r.variant, r.query): r for r in actual}
            for r in measured:
                other = by_key.get((r.variant, r.query))
                if other is None or not r.records or other.wall_median_s <= 0:
                    continue
                out.append(CrossPrediction(r.variant, r.query, source, target,
                                           r.predict(target).makespan, other.wall_median_s))
    return out


def format_table(preds: Sequence[CrossPrediction]) -> str:
    """The per-pair error table (range and direction), then every prediction."""
    lines = ["| predicted from | predicted for | error range | direction |",
             "| --- | --- | --- | --- |"]
    pairs = sorted({(p.source, p.target) for p in preds})
    for source, target in pairs:
        errs = [p.error for p in preds if (p.source, p.target) == (source, target)]
        lo, hi = min(errs), max(errs)
        direction = ("always over" if lo > 0 else "always under" if hi < 0 else "mixed")
        lines.append(f"| {source} worker{'s' if source != 1 else ''} | {target} "
                     f"worker{'s' if target != 1 else ''} | {lo:+.0%} to {hi:+.0%} | "
                     f"{direction} |")
    lines += ["", "| variant | query | from | for | predicted s | measured s | error |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {p.variant} | {p.query} | {p.source} | {p.target} | {p.predicted_s:.3f} | "
              f"{p.measured_s:.3f} | {p.error:+.1%} |" for p in preds]
    return "\n".join(lines)


def validate_model(scenario: Scenario, worker_counts: Sequence[int], *,
                   out: str | os.PathLike[str] | None = None,
                   cache: str | os.PathLike[str] | None = None,
                   progress: bool = True,
                   repeats: int | None = None) -> tuple[dict[int, Sequence[QueryRun]], str]:
    """Run ``scenario`` on a LocalCluster of each count in ``worker_counts`` (1 thread each)
    and return the runs per count and the error table.

    Each count is a fresh LocalCluster, so the runs do not share warm workers; the data is the
    same cached warehouse. ``repeats`` overrides the scenario's: the median repeat is what
    is predicted from and compared with, so a first query's warm-up (imports on fresh workers)
    does not pass for the model's error.
    """
    from mpp.scenario.runner import run_scenario

    counts = sorted(set(worker_counts))
    if len(counts) < 2:
        raise MppError("validating the what-if model needs at least two worker counts, e.g. "
                       "--workers 1 --workers 2")
    if scenario.cluster.scheduler:
        raise MppError("validating the what-if model starts its own LocalClusters; the "
                       "scenario's [cluster] names a scheduler")
    runs: dict[int, Sequence[QueryRun]] = {}
    for w in counts:
        cluster = dataclasses.replace(scenario.cluster, workers=w, threads_per_worker=1)
        sc = dataclasses.replace(scenario, cluster=cluster,
                                 repeats=repeats or scenario.repeats)
        outcome = run_scenario(sc, out=Path(out) if out else None, cache=cache,
                               progress=progress, echo=None)
        runs[w] = outcome.data.runs
    return runs, format_table(cross_predictions(runs))
