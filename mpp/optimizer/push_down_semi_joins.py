"""Move a semi or anti join (IN / EXISTS subqueries) below the inner joins, to the relation
whose columns it tests.

The binder puts ``x IN (SELECT ...)`` above the whole FROM clause, so the subquery filters
rows only after every inner join has run. A semi or anti join keeps or drops each left row by
the values of its left keys (and residual) alone: when all the left columns it reads come from
one input of an inner join below it, filtering that input first drops the same combined rows,
and the inner join then joins fewer. TPC-H Q18's ``o_orderkey IN (orders of over 300 units)``
keeps 57 of 1.5M orders: applied to ``orders`` before the join with ``lineitem`` (6M rows),
that join builds on 57 rows instead of 1.5M. NOT IN's null-aware anti join moves too: its
outcome for a row depends on that row's key and the whole subquery only.

Only a subquery small enough to broadcast (its estimated bytes at most
``optimizer.broadcast_threshold_bytes``, or a NOT IN, which is always broadcast) moves: it is
then a cheap filter in the scan's own stage. A large one would need the relation hash-exchanged
before the inner joins have cut it down (TPC-H Q21's EXISTS over ``lineitem``: 3x slower
moved), so it stays where it was.

It moves through INNER joins (CROSS ones too), and through Projects that only select columns
(passing the ones it reads unrenamed, as reorder_joins' column-order Project does), and nothing
else (an outer join's NULL-extended
rows would be tested differently), as far down as it can go, one join at a time.

Example::

    Before:                                     After:
    Join: semi on orders.k = _sq0.value         Join: inner on lineitem.k = orders.k
    ├─ Join: inner on lineitem.k = orders.k     ├─ Scan: lineitem
    │  ├─ Scan: lineitem                        └─ Join: semi on orders.k = _sq0.value
    │  └─ Scan: orders                             ├─ Scan: orders
    └─ <subquery>                                  └─ <subquery>

Used configurations:
    optimizer.push_down_semi_joins (bool): switch off to apply subqueries above the FROM
    clause's joins, where the query wrote them.
    optimizer.broadcast_threshold_bytes (int): the largest subquery (estimated) that moves.
"""

from __future__ import annotations

import dataclasses

from mpp.config import PlannerContext
from mpp.logical.expr import Column
from mpp.logical.nodes import Join, JoinKind, LogicalNode, Project
from mpp.optimizer.estimate import estimate
from mpp.optimizer.rule import transform_up


def push_down_semi_joins(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Move every broadcast-sized semi and anti join below the inner joins that do not
    supply its columns."""
    threshold = int(ctx.settings["optimizer.broadcast_threshold_bytes"])

    def visit(node: LogicalNode) -> LogicalNode:
        if (isinstance(node, Join) and node.kind.filters_left
                and (node.null_aware or estimate(node.right).bytes <= threshold)):
            return _push(node)
        return node

    return transform_up(plan, visit)


def _push(node: Join) -> LogicalNode:
    below = node.left
    right_names = set(node.right.field_names())
    needed = {c.name for c in node.left_keys}
    if node.residual is not None:
        needed |= node.residual.columns() - right_names
    if isinstance(below, Project) and _passes(below, needed):  # reorder_joins' column order
        return dataclasses.replace(below, input=_push(dataclasses.replace(node,
                                                                           left=below.input)))
    if not (isinstance(below, Join) and below.kind is JoinKind.INNER):
        return node
    for side in ("left", "right"):
        child = getattr(below, side)
        if needed <= set(child.field_names()):
            pushed = _push(dataclasses.replace(node, left=child))
            return dataclasses.replace(below, **{side: pushed})
    return node


def _passes(project: Project, names: set[str]) -> bool:
    """Whether ``project`` only selects columns, passing each of ``names`` unrenamed."""
    if not all(isinstance(e, Column) for e in project.exprs):
        return False
    kept = {n for e, n in zip(project.exprs, project.names, strict=True)
            if isinstance(e, Column) and e.name == n}
    return names <= kept
