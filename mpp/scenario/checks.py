"""The ``[checks]`` section of a scenario: the DuckDB oracle switch and metric expectations."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from mpp import limits
from mpp.errors import suggest
from mpp.metrics.skew import SKEW_METRICS
from mpp.scenario.validate import Problems, join

# Query-level metrics an expectation may test without a stage (stage metrics: SKEW_METRICS).
QUERY_METRICS = ("wall_s", "predicted_makespan_s", "tasks", "bytes_read", "bytes_sent")
STAGE_SELECTORS = ("final", "all")


class Op(enum.Enum):
    """A comparison an expectation makes: ``actual <op> value``."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="

    @property
    def fn(self) -> Callable[[float, float], bool]:
        """The comparison function."""
        return {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
                "==": operator.eq, "!=": operator.ne}[self.value]


@dataclass(frozen=True, slots=True)
class Expectation:
    """A check on a measured figure: ``metric <op> value`` for matching variants and queries.

    ``stage`` selects a stage for stage metrics: a stage number, ``"final"`` (the highest-numbered
    stage, the one that produces the result) or ``"all"`` (every stage must pass). ``workers``
    is the what-if worker count of ``predicted_makespan_s``. With ``relative_to`` the figure is
    divided by the same figure of that variant before comparing (a ratio).
    """

    metric: str
    op: Op
    value: float
    stage: int | str | None = None
    variant: str | None = None
    query: str | None = None
    workers: int | None = None
    relative_to: str | None = None

    def label(self) -> str:
        """Which check this is, in words: ``rewrite/q1 stage final max_over_median_rows <= 1.5``."""
        scope = f"{self.variant or '*'}/{self.query or '*'}"
        where = f" stage {self.stage}" if self.stage is not None else ""
        at = f"@{self.workers}" if self.workers else ""
        rel = f" / {self.relative_to}" if self.relative_to else ""
        return f"{scope}{where} {self.metric}{at}{rel} {self.op.value} {self.value:g}"

    def check(self, actual: float) -> tuple[bool, str]:
        """(passed, message); the message says by how much a failed check missed."""
        ok = self.op.fn(actual, self.value)
        if ok:
            return True, f"ok: {self.label()} (actual {actual:.4g})"
        return False, f"FAILED: {self.label()}: actual {actual:.4g}, off by {abs(actual - self.value):.4g}"


@dataclass(frozen=True, slots=True)
class Checks:
    """Result checks: every variant equals DuckDB (``oracle``) plus metric expectations."""

    oracle: bool = True
    expect: tuple[Expectation, ...] = ()


def parse_checks(p: Problems, t: dict[str, Any], variants: Collection[str],
                 queries: Collection[str]) -> Checks:
    """Validate ``[checks]``; expectations may only name variants and queries that exist."""
    p.unknown_keys(t, ("oracle", "expect"), "checks")
    oracle = p.get(t, "oracle", bool, "checks", default=True)
    expect = tuple(e for where, e_t in p.tables(t, "expect", "checks")
                   if (e := _expectation(p, e_t, where, variants, queries)) is not None)
    return Checks(oracle=oracle, expect=expect)


_EXPECT_KEYS = ("metric", "op", "value", "stage", "variant", "query", "workers", "relative_to")


def _expectation(p: Problems, t: dict[str, Any], where: str, variants: Collection[str],
                 queries: Collection[str]) -> Expectation | None:
    before = len(p.items)
    p.unknown_keys(t, _EXPECT_KEYS, where)
    metric = p.get(t, "metric", str, where)
    op_text = p.get(t, "op", str, where)
    value = p.get(t, "value", (float, bool), where)
    stage = _stage(p, t, where)
    if isinstance(metric, str):
        _check_metric(p, metric, stage, t, where)
    ops = [o.value for o in Op]
    if isinstance(op_text, str) and op_text not in ops:
        p.add(join(where, "op"), f"unknown comparison {op_text!r}.", f"Expected one of {' '.join(ops)}.")
    names = {"variant": variants, "query": queries, "relative_to": variants}
    found = {key: p.get(t, key, str, where, default=None) for key in names}
    for key, name in found.items():
        if name is not None and name not in names[key]:
            p.add(join(where, key), f"no {'variant' if key != 'query' else 'query'} named {name!r}.",
                  suggest(name, names[key]) or f"Known: {', '.join(sorted(set(names[key])))}.")
    workers = p.get(t, "workers", int, where, default=None)
    if len(p.items) > before:
        return None
    return Expectation(metric=metric, op=Op(op_text), value=float(value), stage=stage,
                       variant=found["variant"], query=found["query"], workers=workers,
                       relative_to=found["relative_to"])


def _stage(p: Problems, t: dict[str, Any], where: str) -> int | str | None:
    stage = p.get(t, "stage", (int, str), where, default=None)
    if isinstance(stage, str) and stage not in STAGE_SELECTORS:
        p.add(join(where, "stage"), f"unknown stage selector {stage!r}.",
              'Use a stage number, "final" or "all".')
    if isinstance(stage, int) and stage < 0:
        p.add(join(where, "stage"), f"stage numbers are >= 0, got {stage}.")
    return stage


def _check_metric(p: Problems, metric: str, stage: Any, t: dict[str, Any], where: str) -> None:
    known = SKEW_METRICS if stage is not None else QUERY_METRICS
    if metric not in known:
        other = QUERY_METRICS if stage is not None else SKEW_METRICS
        if metric in other:
            hint = ("It is a query metric: remove stage." if stage is not None
                    else 'It is a stage metric: add stage = "final" (or a number, or "all").')
        else:
            hint = suggest(metric, (*SKEW_METRICS, *QUERY_METRICS)) or \
                "docs/scenario-reference.md lists the metrics."
        p.add(join(where, "metric"), f"unknown {'stage' if stage is not None else 'query'} "
              f"metric {metric!r}.", hint)
    needs_workers = metric == "predicted_makespan_s"
    workers = t.get("workers")
    if needs_workers and "workers" not in t:
        p.add(join(where, "workers"), "predicted_makespan_s needs the what-if worker count.",
              "Add workers = 128 (for example).")
    elif not needs_workers and "workers" in t:
        p.add(join(where, "workers"), "only applies to metric predicted_makespan_s.")
    elif isinstance(workers, int) and not isinstance(workers, bool) and \
            limits.WHATIF_WORKERS.problem(workers):
        p.add(join(where, "workers"), f"{limits.WHATIF_WORKERS.problem(workers)}.")
