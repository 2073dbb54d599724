"""Keep only the best N rows per partition before a window's exchange (top-N per group).

``WHERE rn <= N`` over ``rn = row_number() OVER (PARTITION BY k ORDER BY t)`` (also ``rn < N``,
``rn = N``, ``N >= rn``, and rank / dense_rank) needs only the rows ranked at most N in each
partition. No row ranked beyond N in its own task's share of a partition can rank within N in
the whole partition (the rows before it in its task are before it in the partition too), so
each task may drop them before the hash exchange: the Window gets ``topn``, and the physical
planner puts a partial top-N per partition key in the producing stage (and in the exchange's
combiners). The Filter stays: it still decides which rows are output.

Applies when the Filter sits right above the Window (through renaming Projects), the Window
has an ORDER BY, and every call of the Window is a ranking function (dropping rows would change
a sum or lag over the same window).

Example::

    Before:                                     After:
    Filter: _w0 <= 3                            Filter: _w0 <= 3
    └─ Window: partition by k; order by t;      └─ Window: partition by k; order by t;
       row_number() AS _w0                         row_number() AS _w0; top-N: _w0 <= 3 ...

>>> from mpp.logical.explain import explain_logical
>>> from mpp.config import PlannerContext, Settings
>>> from mpp.sql import bind
>>> from tests.fake_catalog import FakeCatalog
>>> plan = bind("SELECT * FROM (SELECT date, row_number() OVER (PARTITION BY date ORDER BY "
...             "time) rn FROM access_log) t WHERE rn = 1", FakeCatalog())
>>> text = explain_logical(push_down_topn_per_group(plan.root, PlannerContext(Settings())))
>>> print(text.splitlines()[3].split("; ", 2)[2])
row_number() AS _w0; top-N: _w0 <= 1 per partition

Used configurations:
    optimizer.push_down_topn_per_group (bool): switch off to exchange every row of the window.
"""

from __future__ import annotations

import dataclasses

from mpp.config import PlannerContext
from mpp.logical.expr import Call, Column, Expr, Literal, conjuncts
from mpp.logical.nodes import Filter, LogicalNode, Project
from mpp.logical.window import RANKING, TopN, Window
from mpp.optimizer.rule import transform_up

_KEEPS_AT_MOST = ("<=", "<", "=")  # rn op N
_FLIP = {">=": "<=", ">": "<", "=": "="}  # N op rn, as rn op' N


def push_down_topn_per_group(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Mark Windows whose ranking output is filtered to ``<= N`` with ``topn``."""
    return transform_up(plan, _visit)


def _visit(node: LogicalNode) -> LogicalNode:
    if not isinstance(node, Filter):
        return node
    names = {n: n for n in node.input.field_names()}  # filter's column -> the Window's
    path: list[Project] = []
    below = node.input
    while isinstance(below, Project):
        rename = {n: e.name for e, n in zip(below.exprs, below.names, strict=True)
                  if isinstance(e, Column)}
        names = {k: rename[v] for k, v in names.items() if v in rename}
        path.append(below)
        below = below.input
    if (not isinstance(below, Window) or not below.order_by
            or not all(c.func in RANKING for c in below.calls)):
        return node
    best = below.topn
    for part in conjuncts(node.predicate):
        hit = _limit(part)
        target = names.get(hit[0]) if hit is not None else None
        if hit is None or target not in below.names:
            continue
        if best is None or hit[1] < best.n:
            best = TopN(below.names.index(target), hit[1])  # type: ignore[arg-type]
    if best is below.topn:
        return node
    rebuilt: LogicalNode = dataclasses.replace(below, topn=best)
    for project in reversed(path):
        rebuilt = dataclasses.replace(project, input=rebuilt)
    return dataclasses.replace(node, input=rebuilt)


def _limit(expr: Expr) -> tuple[str, int] | None:
    """(column, N) if ``expr`` keeps only values of ``column`` at most N."""
    if not (isinstance(expr, Call) and len(expr.args) == 2):
        return None
    column, constant = expr.args
    op = expr.op
    if isinstance(constant, Column) and not isinstance(column, Column):  # N >= rn
        column, constant = constant, column
        op = _FLIP.get(op, "")
    if op not in _KEEPS_AT_MOST:
        return None
    value = _integer(constant)
    if not isinstance(column, Column) or value is None:
        return None
    return column.name, max(0, value - 1 if op == "<" else value)


def _integer(expr: Expr) -> int | None:
    if isinstance(expr, Call) and expr.op == "cast" and len(expr.args) == 1:
        expr = expr.args[0]
    if isinstance(expr, Literal) and isinstance(expr.value, int) \
            and not isinstance(expr.value, bool):
        return expr.value
    return None
