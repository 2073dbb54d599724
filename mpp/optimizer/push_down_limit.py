"""Push LIMIT down: ORDER BY ... LIMIT becomes a top-N Sort, a plain LIMIT reaches the scan.

Follows DataFusion's ``push_down_limit``. Walking top-down, each Limit (``offset`` rows skipped,
then ``count`` kept: ``count + offset`` rows needed, or none for LIMIT 0):

* over a Sort: the Sort keeps only the rows needed (``Sort.fetch``, a top-N); the physical
  planner then sorts and cuts each task's rows before the gather and merges the survivors. With
  no offset the Limit is then redundant and goes.
* over a Project (row by row): the Limit moves below it, to continue downwards.
* over a Limit: the two merge into one (DataFusion's ``combine_limit``).
* over a Scan: the scan needs only that many rows that pass its predicates (``Scan.fetch``).
  The Limit stays above it: each scan task stops at ``fetch`` rows, and with no pushed
  predicates and known fragment row counts the planner reads only the first fragments that
  hold enough rows.
* over a LEFT join: a copy goes on the left side (every left row gives at least one output row,
  so the first ``count + offset`` left rows give enough); the Limit stays above the join. Over
  an inner join without keys or residual (a cross join) a copy goes on both sides.
* over anything that changes which rows exist (Filter, Aggregate, inner joins): it stops. Its
  inputs are still visited for Limits of their own (a subquery's).

Not yet (mpp has no such node): a Limit over UNION ALL would go on every branch, and over a
RIGHT join on the right side, as in DataFusion.

Example::

    Before:                                   After:
    Limit: 5                                  Sort: c DESC fetch=5
    └─ Sort: c DESC                           └─ Project: ...
       └─ Project: ...

>>> from mpp.logical.explain import explain_logical
>>> from mpp.config import PlannerContext, Settings
>>> from mpp.sql import bind
>>> from tests.fake_catalog import FakeCatalog
>>> ctx = PlannerContext(Settings())
>>> plan = bind("SELECT path FROM urls LIMIT 3", FakeCatalog())
>>> print(explain_logical(push_down_limit(plan.root, ctx)))
Project: urls.path AS path
└─ Limit: 3
   └─ Scan: urls [url_id, path, category] fetch=3

Used configurations:
    optimizer.push_down_limit (bool): switch off to keep every Limit where the query wrote it;
        the physical planner then sorts all rows in one task before cutting ORDER BY ... LIMIT.
"""

from __future__ import annotations

import dataclasses

from mpp.config import PlannerContext
from mpp.logical.nodes import Join, JoinKind, Limit, LogicalNode, Project, Scan, Sort
from mpp.optimizer.rule import with_inputs


def push_down_limit(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Turn Sort + Limit into a top-N Sort and move other Limits towards the scans."""
    return _visit(plan)


def _visit(node: LogicalNode) -> LogicalNode:
    # Push before descending, so a Limit moved below a node is met again further down.
    if isinstance(node, Limit):
        node = _push(node)
    return with_inputs(node, tuple(_visit(child) for child in node.inputs))


def _needed(limit: Limit) -> int:
    """Rows the input must supply: ``count + offset``, none for LIMIT 0."""
    return limit.count + limit.offset if limit.count else 0


def _at_most(fetch: int | None, needed: int) -> int:
    return needed if fetch is None else min(fetch, needed)


def _push(limit: Limit) -> LogicalNode:
    """``limit`` pushed one step (or merged, or absorbed); itself when it cannot move."""
    child, needed = limit.input, _needed(limit)
    if isinstance(child, Limit):
        return _push(_combine(limit, child))
    if isinstance(child, Project):
        return dataclasses.replace(child, input=dataclasses.replace(limit, input=child.input))
    if isinstance(child, Sort):
        sort = dataclasses.replace(child, fetch=_at_most(child.fetch, needed))
        if limit.offset == 0 and sort.fetch is not None and sort.fetch <= limit.count:
            return sort  # the top-N keeps exactly the rows the Limit would
        return dataclasses.replace(limit, input=sort)
    if isinstance(child, Scan):
        return dataclasses.replace(limit, input=dataclasses.replace(
            child, fetch=_at_most(child.fetch, needed)))
    if isinstance(child, Join):
        return dataclasses.replace(limit, input=_push_into_join(child, needed))
    return limit


def _combine(parent: Limit, child: Limit) -> Limit:
    """One Limit doing what ``parent`` over ``child`` does: skip both offsets; keep what is
    left of the child's rows after the parent's offset, at most the parent's count."""
    count = min(parent.count, max(0, child.count - parent.offset))
    return Limit(child.input, count, child.offset + parent.offset)


def _push_into_join(join: Join, needed: int) -> Join:
    """``join`` with a Limit of ``needed`` rows on each side that keeps enough rows."""
    cross = join.kind is JoinKind.INNER and not join.left_keys and join.residual is None
    left = join.kind is JoinKind.LEFT or cross
    return dataclasses.replace(
        join,
        left=_limited(join.left, needed) if left else join.left,
        right=_limited(join.right, needed) if cross else join.right,
    )


def _limited(node: LogicalNode, needed: int) -> LogicalNode:
    """``node`` under a Limit of ``needed`` rows, unless it already has one as small."""
    if isinstance(node, Limit) and node.offset == 0 and node.count <= needed:
        return node
    return Limit(node, needed)
