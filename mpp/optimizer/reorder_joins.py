"""Turn WHERE equalities into join keys and choose the order of inner joins from statistics.

``FROM a, b, c WHERE a.k = b.k AND b.j = c.j`` binds into cross products under a Filter. This
rule takes each *join group* (a tree of INNER joins, with the Filters between them) apart into
its relations (the leaves, in FROM order) and its predicates (Filter conjuncts, join keys and
residuals), then builds a left-deep tree again, greedily, as Trino's ReorderJoins does without
cost-based enumeration:

1. Start with the relation with the most estimated rows (ties: FROM order): it becomes the
   probe side, so under a broadcast join the biggest table never moves.
2. Add, one at a time, the relation connected to the joined ones by an equality whose join has
   the fewest estimated rows (ties: fewer rows of the relation, then FROM order). The
   equalities between the two become the join's keys (an expression is computed by a Project
   below the join); a relation connected to nothing comes last, smallest first, as a cross join.
3. Every other predicate over several relations becomes the residual of the first join that
   has all its columns (evaluated on the matched pairs); one over no column stays above.

Estimates come from :mod:`mpp.optimizer.estimate` (catalog statistics and pushed predicates),
so the rule runs after ``pushdown_predicates``. The order is deterministic. A group of one
join that already has keys is left alone (``choose_join_strategy`` picks its build side). A
Project restores the group's column order. Switched off, the keys are still taken from WHERE,
and the relations keep their FROM order except that a relation not connected by an equality
to the ones before it waits for the first one that is (Trino's
``join_reordering_strategy=ELIMINATE_CROSS_JOINS``): a comma join never becomes a cross
product only because of how FROM lists its tables.

Example (the Filter over a cross join becomes a keyed join, access_log first; the middle
Project restores the FROM order of the columns and is pruned later)::

    Before:                                          After:
    Filter: a.user_id = u.user_id                    Join: inner on a.user_id = u.user_id
    └─ Join: cross                                   ├─ Scan: access_log AS a [...]
       ├─ Scan: users AS u [...]                     └─ Scan: users AS u [...]
       └─ Scan: access_log AS a [...]

>>> from mpp.logical.explain import explain_logical
>>> from mpp.config import PlannerContext, Settings
>>> from mpp.sql import bind
>>> from tests.fake_catalog import FakeCatalog
>>> plan = bind("SELECT u.country FROM users u, access_log a WHERE a.user_id = u.user_id",
...             FakeCatalog())
>>> print(explain_logical(reorder_joins(plan.root, PlannerContext(Settings()))))
Project: u.country AS country
└─ Project: u.user_id, u.created_at, u.country, u.plan, a.time, a.date, a.user_id, a.session_id, a.url_id, a.status, a.bytes
   └─ Join: inner on a.user_id = u.user_id, strategy=auto
      ├─ Scan: access_log AS a [time, date, user_id, session_id, url_id, status, bytes]
      └─ Scan: users AS u [user_id, created_at, country, plan]

Used configurations:
    optimizer.reorder_joins (bool): switch the rule off to join in FROM order (cross
        joins eliminated).
"""

from __future__ import annotations

import itertools

import pyarrow as pa

from mpp.config import PlannerContext
from mpp.logical.expr import Call, Column, Expr, conjoin, conjuncts, equality_sides
from mpp.logical.nodes import (
    Filter,
    Join,
    JoinKind,
    JoinStrategy,
    LogicalNode,
    Project,
    key_columns,
)
from mpp.optimizer.estimate import estimate
from mpp.optimizer.rule import with_inputs


def reorder_joins(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Rebuild every join group with keys from its predicates, in greedy estimated order."""
    return _rewrite(plan, itertools.count(), reorder=True)


def join_keys_in_from_order(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """The rule switched off: WHERE equalities still become join keys, in FROM order with
    cross joins eliminated."""
    return _rewrite(plan, itertools.count(), reorder=False)


def _in_group(node: LogicalNode) -> bool:
    """Whether ``node`` belongs to a join group (an AUTO inner join, or a Filter over one)."""
    if isinstance(node, Filter):
        return _in_group(node.input)
    return (isinstance(node, Join) and node.kind is JoinKind.INNER
            and node.strategy is JoinStrategy.AUTO)


def _rewrite(node: LogicalNode, counter: itertools.count[int], *, reorder: bool) -> LogicalNode:
    if not _in_group(node):
        return with_inputs(node, tuple(_rewrite(c, counter, reorder=reorder)
                                       for c in node.inputs))
    leaves: list[LogicalNode] = []
    preds: list[Expr] = []
    _collect(node, leaves, preds)
    top = node
    while isinstance(top, Filter):
        top = top.input
    if len(leaves) == 2 and isinstance(top, Join) and top.left_keys:
        return with_inputs(node, tuple(_rewrite(c, counter, reorder=reorder)
                                       for c in node.inputs))
    leaves = [_rewrite(leaf, counter, reorder=reorder) for leaf in leaves]
    tree = _build(leaves, preds, counter, reorder)
    cols = tuple(Column(f.name, f.dtype) for f in node.schema)
    if tree.schema == node.schema:
        return tree
    return Project(tree, cols, tuple(c.name for c in cols))


def _collect(node: LogicalNode, leaves: list[LogicalNode], preds: list[Expr]) -> None:
    """The group's relations (left to right) and predicates."""
    if isinstance(node, Filter) and _in_group(node):
        preds += conjuncts(node.predicate)
        _collect(node.input, leaves, preds)
    elif isinstance(node, Join) and _in_group(node):
        preds += [Call("=", (lk, rk), pa.bool_()) for lk, rk in zip(node.left_keys,
                                                                  node.right_keys, strict=True)]
        preds += conjuncts(node.residual)
        _collect(node.left, leaves, preds)
        _collect(node.right, leaves, preds)
    else:
        leaves.append(node)


def _join(left: LogicalNode, right: LogicalNode, preds: list[Expr],
          counter: itertools.count[int]) -> tuple[Join, list[Expr]]:
    """Join ``left`` and ``right`` on the predicates they make evaluable; return the rest."""
    lf, rf = set(left.field_names()), set(right.field_names())
    pairs: list[tuple[Expr, Expr]] = []
    residual: list[Expr] = []
    rest: list[Expr] = []
    for p in preds:
        cols = p.columns()
        pair = equality_sides(p, lf, rf)
        if pair is not None:
            pairs.append(pair)
        elif cols and cols <= lf | rf and not cols <= lf and not cols <= rf:
            residual.append(p)
        else:
            rest.append(p)
    taken = lf | rf

    def fresh() -> str:  # computed keys' names, unique among both sides' fields
        return next(n for n in (f"_jk{i}" for i in counter) if n not in taken)

    left, lkeys = key_columns(left, [a for a, _ in pairs], fresh)
    right, rkeys = key_columns(right, [b for _, b in pairs], fresh)
    return Join(left, right, JoinKind.INNER, lkeys, rkeys, conjoin(residual)), rest


def _build(leaves: list[LogicalNode], preds: list[Expr], counter: itertools.count[int],
           reorder: bool) -> LogicalNode:
    """A left-deep tree over ``leaves`` (greedy order, or FROM order without needless cross
    joins when not ``reorder``)."""
    rows = [estimate(leaf).rows for leaf in leaves]
    remaining = list(range(len(leaves)))
    first = max(remaining, key=lambda i: (rows[i], -i)) if reorder else 0
    remaining.remove(first)
    tree, preds = _filtered(leaves[first], preds)
    while remaining:
        nxt = (_next if reorder else _next_connected)(tree, leaves, rows, remaining, preds)
        remaining.remove(nxt)
        right, preds = _filtered(leaves[nxt], preds)
        tree, preds = _join(tree, right, preds, counter)
    return Filter(tree, conjoin(preds)) if preds else tree  # type: ignore[arg-type]


def _filtered(leaf: LogicalNode, preds: list[Expr]) -> tuple[LogicalNode, list[Expr]]:
    """``leaf`` under the predicates over its columns alone (pushdown switched off)."""
    fields = set(leaf.field_names())
    own = [p for p in preds if p.columns() and p.columns() <= fields]
    rest = [p for p in preds if p not in own]
    return (Filter(leaf, conjoin(own)) if own else leaf), rest  # type: ignore[arg-type]


def _connected(tree: LogicalNode, leaf: LogicalNode, preds: list[Expr]) -> bool:
    """Whether an equality of ``preds`` joins ``tree`` with ``leaf`` (a key for their join)."""
    fields, leaf_fields = set(tree.field_names()), set(leaf.field_names())
    return any(equality_sides(p, fields, leaf_fields) for p in preds)


def _next_connected(tree: LogicalNode, leaves: list[LogicalNode], rows: list[float],
                    remaining: list[int], preds: list[Expr]) -> int:
    """The rule switched off: the first relation in FROM order connected by an equality to
    the joined ones, else the first one left (a cross join), as Trino's
    ``join_reordering_strategy=ELIMINATE_CROSS_JOINS`` orders them."""
    return next((i for i in remaining if _connected(tree, leaves[i], preds)), remaining[0])


def _next(tree: LogicalNode, leaves: list[LogicalNode], rows: list[float],
          remaining: list[int], preds: list[Expr]) -> int:
    """The relation to join next: connected by an equality, smallest estimated join first."""
    scored = []
    for i in remaining:
        if _connected(tree, leaves[i], preds):
            joined, _ = _join(tree, leaves[i], preds, itertools.count())
            scored.append((0, estimate(joined).rows, rows[i], i))
        else:
            scored.append((1, 0.0, rows[i], i))
    return min(scored)[3]


__all__ = ["join_keys_in_from_order", "reorder_joins"]

