"""``mpp bench skew``: what the hot day's straggler costs, per DISTINCT strategy.

The seed's Q1, ``SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date``, on a log
where day 13 carries 40% of the rows (default 100M rows in 1,000 fragments, the skew_distinct
scenario's data, generated once and cached by :func:`mpp.scenario.warehouse.prepare`). Each
``aggregate.distinct_strategy`` runs on the same LocalCluster; per strategy the benchmark reports:

* the real wall time on this machine (and the result checked against DuckDB);
* per stage: tasks, max/median task rows and the skew verdicts that tripped;
* the what-if makespan (:meth:`mpp.metrics.summary.QueryStats.predict`) at W = 2, the real
  worker count (beside the measured wall time, with the % difference: the model's check), and
  32 and 128 workers.

The hash exchanges use many buckets (``--hash-buckets``, default 128), as a warehouse with that
many slices would: the replay keeps the run's task count, so a 4-bucket run could never use
more than 4 workers in its final stage, whatever W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mpp.errors import KnobError
from mpp.execution.cluster import Cluster, ClusterSpec

SQL = "SELECT date, count(DISTINCT user_id) AS users FROM access_log GROUP BY date"
STRATEGIES = ("single_step", "pre_aggregate", "rewrite")
WORKERS = (2, 8, 32, 128)
# The stage whose tasks de-duplicate (date, user_id) in every strategy: single_step's and
# pre_aggregate's final stage, the rewrite's inner DISTINCT (its stage 3 only adds up one partial
# count per (task, date), a few thousand rows in all).
DISTINCT_STAGE = 2
AGREEMENT = 0.25  # the prediction at the real worker count must be within 25% of the wall time


@dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage of one run: its tasks, max/median task rows and the verdicts that tripped."""

    stage: int
    name: str
    tasks: int
    rows_max_over_median: float
    skewed_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StrategyRun:
    """One strategy's run: measured wall time, stages and the what-if predictions."""

    strategy: str
    wall_seconds: float
    real_workers: int
    predicted: dict[int, float]  # W -> predicted makespan (seconds)
    stages: tuple[StageFigures, ...]
    matches_duckdb: bool | None
    fixed_seconds: float = 0.0  # per-query overhead (graph submission, result) in every W

    @property
    def predicted_at_real(self) -> float:
        """The prediction at the real worker count."""
        return self.predicted[self.real_workers]

    @property
    def error(self) -> float:
        """(prediction - measured) / measured at the real worker count."""
        return (self.predicted_at_real - self.wall_seconds) / self.wall_seconds

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (infinite ratios become None)."""
        d = asdict(self)
        d["predicted"] = {str(w): s for w, s in self.predicted.items()}
        for st in d["stages"]:
            if not math.isfinite(st["rows_max_over_median"]):
                st["rows_max_over_median"] = None
        d["error_at_real_workers"] = self.error
        return d


def _figures(result: Any) -> tuple[StageFigures, ...]:
    return tuple(StageFigures(sk.stage, sk.name, sk.tasks, sk.rows.max_over_median,
                              tuple(v.name for v in sk.verdicts if v.tripped))
                 for sk in result.stats.skew().values())


def bench_skew(*, rows: int = 100_000_000, partitions: int = 1_000, workers: int = 2,
               threads: int = 1, hash_buckets: int = 128,
               strategies: Sequence[str] = STRATEGIES, predict_at: Sequence[int] = WORKERS,
               check: bool = True, cache: str | None = None,
               progress: bool = True) -> list[StrategyRun]:
    """Run Q1 once per strategy on one cluster (after a warm-up scan) and measure each."""
    import mpp
    from mpp.oracle import run_oracle
    from mpp.scenario.data import DataSpec
    from mpp.scenario.warehouse import prepare

    for s in strategies:
        if s not in STRATEGIES:
            raise KnobError(f"unknown strategy {s!r}; choose from {', '.join(STRATEGIES)}")
    if rows < partitions or partitions < 30:
        raise KnobError(f"--partitions must be between 30 (one day each at least) and --rows "
                        f"({rows:,}); got {partitions:,}")
    data = DataSpec(rows=rows, partitions=partitions, seed=13, days=30, users=1_000_000,
                    hot_day=13, hot_share=0.4)
    spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
    runs = []
    with Cluster(spec) as cluster:
        wh = prepare(data, cluster.client, cache=cache, progress=progress)
        expected = None
        with mpp.connect(wh.path, cluster=cluster,
                         settings={"execution.hash_buckets": hash_buckets}) as session:
            session.sql("SELECT count(*) FROM access_log")  # warm-up: imports, file handles
            if check:
                from mpp.bench.queries import _canonical

                expected = _canonical(run_oracle(SQL, session.catalog))
            for strategy in strategies:
                result = session.sql(SQL, settings={"aggregate.distinct_strategy": strategy})
                st = result.stats
                ws = sorted(set(predict_at) | {workers})
                # Other W: dedicated nodes; the real W: this machine, as it was measured.
                predictions = {**st.predict_many(ws), workers: st.predict_here(workers)}
                predicted = {w: p.makespan for w, p in predictions.items()}
                ok = None if expected is None else _canonical(result.to_arrow()) == expected
                runs.append(StrategyRun(strategy, st.wall_seconds, workers, predicted,
                                        _figures(result), ok,
                                        predictions[workers].fixed_s))
    return runs


def format_runs(runs: Sequence[StrategyRun], load: str = "") -> str:
    """The terminal table: one block per strategy."""
    lines = [f"Q1 {SQL}"] + ([f"load at start: {load}"] if load else [])
    for r in runs:
        same = {None: "not checked", True: "= DuckDB", False: "DIFFERS FROM DuckDB"}
        lines.append(f"\n{r.strategy}: wall {r.wall_seconds:.2f} s ({same[r.matches_duckdb]})")
        lines.append(f"  {'stage':<34} {'tasks':>6} {'rows max/med':>12}  verdicts")
        for s in r.stages:
            ratio = f"{s.rows_max_over_median:.2f}" if math.isfinite(s.rows_max_over_median) \
                else "inf"
            verdicts = ", ".join(s.skewed_by) or "balanced"
            lines.append(f"  {s.stage:>2} {s.name:<31} {s.tasks:>6} {ratio:>12}  {verdicts}")
        distinct = next((s for s in r.stages if s.stage == DISTINCT_STAGE), None)
        if distinct is not None:
            state = f"SKEWED ({', '.join(distinct.skewed_by)})" if distinct.skewed_by \
                else "balanced"
            lines.append(f"  distinct stage {DISTINCT_STAGE}: rows max/median "
                         f"{distinct.rows_max_over_median:.2f}, {state}")
        preds = "  ".join(f"W={w}: {t:.2f} s" for w, t in sorted(r.predicted.items()))
        lines.append(f"  predicted makespan  {preds}  (each includes {r.fixed_seconds:.2f} s "
                     "per-query overhead)")
        flag = "ok" if abs(r.error) <= AGREEMENT else f"MISSES the {AGREEMENT:.0%} bound"
        lines.append(f"  at the real W={r.real_workers}: predicted {r.predicted_at_real:.2f} s "
                     f"vs measured {r.wall_seconds:.2f} s ({r.error:+.1%}, {flag})")
    by = {r.strategy: r for r in runs}
    if "single_step" in by and "rewrite" in by:
        top = max(by["rewrite"].predicted)
        single, rewrite = by["single_step"], by["rewrite"]
        ratio = single.predicted[top] / max(rewrite.predicted[top], 1e-9)
        span = ((single.predicted[top] - single.fixed_seconds)
                / max(rewrite.predicted[top] - rewrite.fixed_seconds, 1e-9))
        lines.append(f"\nsingle_step / rewrite predicted makespan at W={top}: {ratio:.1f}x "
                     f"({span:.1f}x for the tasks' schedule alone, without the per-query "
                     "overhead both pay)")
    return "\n".join(lines)
