"""Validate the what-if model across worker counts: run a scenario at each count, predict every
count from every other, and compare with what really ran.

The what-if model replays a run's measured tasks on W simulated workers. It fits the run it was
measured on by construction; whether it predicts *another* worker count is the real test. This
module runs the same scenario (same data, the same plans at every count) on a LocalCluster of
each worker count this machine allows, in interleaved passes (1, 2, 1, 2, ...: every count sees
the same background load), and for every ordered pair (measured at ``a``, predicted for ``b``)
prints the prediction error ``predicted(b from a) / wall(b) - 1`` per variant x query (the
median over the passes, each prediction compared with the run at ``b`` in the same pass), its
range and sign per pair, the run-to-run spread (the noise floor) and the load averages: a
systematic sign is a model bias (CPU contention, fixed costs taken as per-task).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpp.errors import MppError
from mpp.scenario.report import QueryRun, load_average, load_run, write_report
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


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """A validation's outcome: the median pass per worker count, the error table, and the run
    folder whose report.html / report.json carry the table (the last pass's)."""

    runs: dict[int, Sequence[QueryRun]]
    table: str
    report: Path | None


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
                                           r.predict_here(target).makespan,
                                           other.wall_median_s))
    return out


def paired_predictions(passes: dict[int, Sequence[Sequence[QueryRun]]]
                       ) -> list[CrossPrediction]:
    """Cross predictions within each interleaved pass (the runs at every count made one
    after the other, under the same background load), and per variant x query x count pair
    the one with the median error (the lower middle for an even count of passes)."""
    rounds = min(len(p) for p in passes.values())
    by_key: dict[tuple[str, str, int, int], list[CrossPrediction]] = {}
    for i in range(rounds):
        for p in cross_predictions({w: runs[i] for w, runs in passes.items()}):
            by_key.setdefault((p.variant, p.query, p.source, p.target), []).append(p)
    out = []
    for preds in by_key.values():
        preds.sort(key=lambda p: p.error)
        out.append(preds[(len(preds) - 1) // 2])
    return sorted(out, key=lambda p: (p.source, p.target))


def format_spread(passes: dict[int, Sequence[Sequence[QueryRun]]]) -> str:
    """The noise floor: per worker count, how much the same variant x query's wall time
    varied between passes ((max - min) / median, the median and the largest over the queries).
    A prediction cannot be closer than the measurement it is compared with repeats."""
    lines = []
    for w, runs in sorted(passes.items()):
        walls: dict[tuple[str, str], list[float]] = {}
        for rs in runs:
            for r in rs:
                walls.setdefault((r.variant, r.query), []).append(r.wall_median_s)
        spreads = sorted((max(v) - min(v)) / statistics.median(v)
                         for v in walls.values() if len(v) > 1 and statistics.median(v) > 0)
        if spreads:
            lines.append(f"run-to-run spread at {w} worker{'s' if w != 1 else ''} over "
                         f"{len(runs)} passes: median {statistics.median(spreads):.0%}, "
                         f"largest {spreads[-1]:.0%}")
    return "\n".join(lines)


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
                   repeats: int | None = None, warmup: int = 1, runs: int = 3) -> ModelCheck:
    """Run ``scenario`` on a LocalCluster of each count in ``worker_counts`` (1 thread each)
    and return the runs per count, the error table and the report that shows it.

    Each pass is a fresh LocalCluster, so the runs do not share warm workers; the data is the
    same cached warehouse. ``repeats`` (default: the scenario's) is the number of interleaved
    passes per count: the median pass of each variant x query is what is predicted from and
    compared with, so one disturbed pass does not pass for the model's error. ``warmup``
    untimed runs of each query come first in every pass (at least the scenario's own): a fresh
    worker process is slower in its first queries (its memory pool growing), and a fresh
    2-worker cluster has two processes to warm where 1 worker has one, which a model of warm
    workers would read as its error. ``runs`` timed runs of each query per pass: the median
    one (its wall time and its task records) stands for the pass, so that a run the machine
    slowed (its cores' speed varies from second to second) does not pass for the model's error.
    """
    from mpp.scenario.runner import run_scenario

    counts = sorted(set(worker_counts))
    if len(counts) < 2:
        raise MppError("validating the what-if model needs at least two worker counts, e.g. "
                       "--workers 1 --workers 2")
    if scenario.cluster.scheduler:
        raise MppError("validating the what-if model starts its own LocalClusters; the "
                       "scenario's [cluster] names a scheduler")
    scenario = same_plans(scenario, max(counts))
    load_before = load_average()
    transfer = transfer_cost(scenario)
    passes: dict[int, list[Sequence[QueryRun]]] = {w: [] for w in counts}
    last = None
    # Interleaved passes (1, 2, 1, 2, ...), one repeat each, rather than every repeat at one
    # count and then every repeat at the next: on a shared machine the other users' load
    # drifts over minutes, and a drift between two blocks of runs would pass for the model's
    # error at one count pair. Interleaved, every count sees the same background.
    for _ in range(repeats or scenario.repeats):
        for w in counts:
            cluster = dataclasses.replace(scenario.cluster, workers=w, threads_per_worker=1)
            sc = dataclasses.replace(scenario, cluster=cluster, repeats=runs,
                                     warmup=max(scenario.warmup, warmup))
            outcome = run_scenario(sc, out=Path(out) if out else None, cache=cache,
                                   progress=progress, echo=None,
                                   transfer_s_per_byte=transfer)
            passes[w].append(outcome.data.runs)
            last = outcome
    table = _tables(passes, f"load average (1, 5, 15 min) at the start {load_before}, at the "
                            f"end {load_average()}; {os.cpu_count()} cores; "
                            + transfer_line(transfer))
    if last is not None:  # the last run's report gets the table (report.html and .json)
        write_report(dataclasses.replace(last.data, model_check=table), last.folder)
    return ModelCheck({w: median_runs(p) for w, p in passes.items()}, table,
                      last.folder if last is not None else None)


def transfer_line(transfer: float | None) -> str:
    """The table's note of the price it charged for moving data between workers."""
    if not transfer:
        return "moving data between workers: not measured (no price charged)"
    return f"moving data between workers: {transfer * 1e9:.2f} ms of CPU per MB"


def transfer_cost(scenario: Scenario) -> float:
    """The workers' CPU per byte moved between two worker processes on this machine
    (:func:`mpp.execution.transfer.measure_transfer_cost`), measured once on a LocalCluster of
    two 1-thread workers of the scenario's memory limit, and passed to every pass: a 1-worker
    pass cannot measure it, and one price for all passes keeps them comparable."""
    from mpp.execution.cluster import Cluster
    from mpp.execution.transfer import measure_transfer_cost

    spec = dataclasses.replace(scenario.cluster, workers=2, threads_per_worker=1,
                               dashboard_address=None)
    with Cluster(spec) as cluster:
        return measure_transfer_cost(cluster.client)


def _tables(passes: dict[int, Sequence[Sequence[QueryRun]]], load: str) -> str:
    """The error tables, the run-to-run spread and the load line of a validation."""
    spread = format_spread(passes)
    return (format_table(paired_predictions(passes)) + "\n\n"
            + (spread + "\n" if spread else "") + load)


def revalidate(folder: str | os.PathLike[str]) -> ModelCheck:
    """The validation of runs already made (``mpp validate-model --from``): the run folders in
    ``folder`` (each with its report.json, e.g. an earlier validation's ``--out``) are read
    back, their task records replayed by today's model, and the tables recomputed, with no
    query run. The passes are the runs at each worker count in the order they started, so an
    interleaved validation's pairs are paired again as they ran."""
    passes, loads, cores = load_passes(folder)
    counts = sorted(passes)
    if len(counts) < 2:
        raise MppError(f"{folder}: the saved runs are at {len(counts)} worker count(s) "
                       f"({', '.join(map(str, counts)) or 'none'}); validating the what-if "
                       "model needs runs at two or more")
    load = (f"load average (1, 5, 15 min) at the end of the first run {loads[0]}, of the "
            f"last {loads[-1]}" if loads else "load average not recorded in these reports")
    prices = {r.metrics.get("transfer_s_per_byte") for p in passes.values() for rs in p
              for r in rs}
    table = _tables(passes, f"{load}; {cores} cores (recomputed from "
                            f"{sum(len(p) for p in passes.values())} saved runs in {folder}); "
                            + transfer_line(max(prices - {None}, default=None)))
    return ModelCheck({w: median_runs(p) for w, p in passes.items()}, table, None)


def load_passes(folder: str | os.PathLike[str]
                ) -> tuple[dict[int, list[Sequence[QueryRun]]], list[str], int | None]:
    """The saved runs in ``folder``'s run folders (``*/report.json``), per worker count in
    the order they started; the load averages the reports recorded, in that order; and the
    machine's cores. Every run must be of the same scenario on the same data.

    Raises:
        MppError: no reports, an unreadable one, or runs of different scenarios or data.
    """
    paths = sorted(Path(folder).glob("*/report.json"))
    if not paths:
        raise MppError(f"{folder}: no saved runs (run folders with a report.json) in it")
    saved = [load_run(path) for path in paths]
    kinds = sorted({(r.scenario, r.data_hash) for r in saved}, key=str)
    if len(kinds) > 1:
        raise MppError(f"{folder}: the saved runs are of {len(kinds)} scenarios or data sets "
                       f"({', '.join(f'{n} (data {h})' for n, h in kinds)}); keep one "
                       "scenario's runs in the folder")
    saved.sort(key=lambda r: r.started)  # stable: folder names break ties
    passes: dict[int, list[Sequence[QueryRun]]] = {}
    for run in saved:
        counts = {r.workers for r in run.runs if r.workers}
        if len(counts) == 1:
            passes.setdefault(counts.pop(), []).append(run.runs)
    envs = [r.environment for r in saved]
    loads = [e["load_average"] for e in envs if e.get("load_average")]
    return passes, loads, next((e["cpus"] for e in envs if e.get("cpus")), None)


def same_plans(scenario: Scenario, workers: int) -> Scenario:
    """``scenario`` with every variant planned for ``workers`` 1-thread workers (unless it, or
    the scenario's ``[warehouse]``, names a size): the plan, and so the tasks, must be the same
    at every count, or the check compares two plans instead of the model with the machine."""
    size = (("planning.workers", workers), ("planning.threads_per_worker", 1))
    variants = tuple(dataclasses.replace(v, settings=v.settings + tuple(
        (k, n) for k, n in size if k not in dict(v.settings))) for v in scenario.variants)
    return dataclasses.replace(scenario, variants=variants)


def median_runs(passes: Sequence[Sequence[QueryRun]]) -> list[QueryRun]:
    """Per variant x query, the pass with the median wall time (the lower middle for an even
    count), holding every pass's wall time with its own last (as a QueryRun's records are the
    last repeat's)."""
    by_key: dict[tuple[str, str], list[QueryRun]] = {}
    for runs in passes:
        for r in runs:
            by_key.setdefault((r.variant, r.query), []).append(r)
    out: list[QueryRun] = []
    for rs in by_key.values():
        walls = [r.wall_s[-1] for r in rs]
        chosen = walls.index(statistics.median_low(walls))
        walls.append(walls.pop(chosen))
        out.append(dataclasses.replace(rs[chosen], wall_s=tuple(walls)))
    return out
