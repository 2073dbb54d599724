"""Evaluating a scenario's expectations against the measured runs.

Each :class:`~mpp.scenario.checks.Expectation` applies to every run (variant x query) it selects;
a stage selector ``"all"`` expands to every stage. The figures come from the runs' task records
only: stage metrics from :meth:`StageSkew.metrics`, ``wall_s`` from the repeats' wall times,
``predicted_makespan_s`` from the what-if replay, ``tasks`` / ``bytes_*`` summed over tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mpp.scenario.checks import Expectation
from mpp.scenario.report import CheckResult, QueryRun
from mpp.scenario.spec import WhatIf


def evaluate(expectations: Sequence[Expectation], runs: Sequence[QueryRun],
             whatif: WhatIf | None = None) -> tuple[CheckResult, ...]:
    """One CheckResult per expectation x selected run x selected stage.

    An expectation that selects nothing (no such stage in a run, say) fails: a check that
    silently checks nothing would hide a broken scenario.
    """
    del whatif  # the runs carry the what-if options they were predicted with
    results: list[CheckResult] = []
    for e in expectations:
        found = list(_results(e, runs))
        results.extend(found or [CheckResult(e.label(), False,
                                             f"FAILED: {e.label()}: no run or stage matched")])
    return tuple(results)


def _results(e: Expectation, runs: Sequence[QueryRun]) -> Iterator[CheckResult]:
    for run in runs:
        if (e.variant and run.variant != e.variant) or (e.query and run.query != e.query):
            continue
        base = None
        if e.relative_to:
            base = next((r for r in runs if r.variant == e.relative_to and r.query == run.query),
                        None)
            if base is None:
                continue
        for stage in _stages(e, run):
            actual = figure(e, run, stage)
            if base is not None:
                denominator = figure(e, base, _same_stage(e, base, stage))
                actual = actual / denominator if denominator else float("inf")
            ok, message = e.check(actual)
            scope = f"[{run.variant}/{run.query}" + (f" stage {stage}]" if stage is not None
                                                     else "]")
            yield CheckResult(e.label(), ok, f"{message} {scope}")


def _stages(e: Expectation, run: QueryRun) -> list[int | None]:
    if e.stage is None:
        return [None]
    if e.stage == "all":
        return list(run.skew)
    if e.stage == "final":
        return [max(run.skew)] if run.skew else []
    return [e.stage] if e.stage in run.skew else []


def _same_stage(e: Expectation, base: QueryRun, stage: int | None) -> int | None:
    """The stage of the reference variant to compare with: "final" maps to its own final."""
    if e.stage == "final" and base.skew:
        return max(base.skew)
    return stage


def figure(e: Expectation, run: QueryRun, stage: int | None) -> float:
    """The measured value of ``e.metric`` for ``run`` (and ``stage``, for stage metrics)."""
    if stage is not None:
        return run.skew[stage].metrics()[e.metric]
    if e.metric == "wall_s":
        return run.wall_median_s
    if e.metric == "predicted_makespan_s":
        assert e.workers is not None  # the spec requires it
        return run.predict(e.workers).makespan
    if e.metric == "tasks":
        return float(len(run.records))
    return float(sum(getattr(r, e.metric) for r in run.records))  # bytes_read, bytes_sent
