"""Push WHERE and ON conjuncts down towards the scans: shrink the fact table early.

The seed's advice ("reduce the rows of the fact table in a subquery, early") done by the
planner, so the plain query is as cheap as the hand-tuned one. Predicates are split into
conjuncts and each one travels down as far as it may:

* through a Project (column references are replaced by the projected expressions), a Sort,
  and into subqueries (they are Projects after binding);
* into every input of a UNION ALL (with each input's own column names, matched by position);
* below an Aggregate when it only reads group columns (a HAVING on a group key);
* below a Window when it only reads PARTITION BY columns (it keeps or drops whole partitions,
  so the other rows' window values do not change); any other stays above it;
* into the inputs of an inner join when it reads one side only (a WHERE conjunct or a conjunct
  of the ON residual); for a LEFT join, WHERE conjuncts only into the left (preserved) side, and
  ON conjuncts on the right side only into the right input (they decide matches, not rows);
  a RIGHT join mirrors that; a FULL join preserves both sides, so nothing passes it;
* an OR over both sides of a join stays above it, but where every branch has simple conjuncts
  (``column op literal``, IN, BETWEEN) on one side, their OR, which the OR implies, goes into
  that side as well (TPC-H Q7's two nations, Q19's three branches);
* into ``Scan.predicates`` when storage can apply it (``column op literal``, IN list, IS [NOT]
  NULL; BETWEEN is two comparisons), where Parquet/ORC and Iceberg also prune files with it.

What cannot enter a scan stays as a Filter just above it; what cannot pass a node (a Limit, a
predicate over both sides of a join) stays as a Filter above that node.

Example (the seed's "inefficient" query)::

    Before:                                         After:
    Filter: b.created_at = DATE '2017-01-01'        Join: inner on a.user_id = b.user_id
    └─ Join: inner on a.user_id = b.user_id         ├─ Scan: access_log AS a [...]
       ├─ Scan: access_log AS a [...]               └─ Scan: users AS b [...]
       └─ Scan: users AS b [...]                       filter=(created_at = DATE '2017-01-01')

>>> from mpp.logical.explain import explain_logical
>>> from mpp.config import PlannerContext, Settings
>>> from mpp.sql import bind
>>> from tests.fake_catalog import FakeCatalog
>>> plan = bind("SELECT user_id FROM access_log WHERE status = 404", FakeCatalog())
>>> print(explain_logical(pushdown_predicates(plan.root, PlannerContext(Settings()))))
Project: access_log.user_id AS user_id
└─ Scan: access_log [time, date, user_id, session_id, url_id, status, bytes] filter=(status = 404)

Used configurations:
    optimizer.pushdown_predicates (bool): switch the rule off to run filters where written.
"""

from __future__ import annotations

import dataclasses
from functools import singledispatch

from mpp.config import PlannerContext
from mpp.logical.expr import (
    Column,
    Expr,
    conjoin,
    conjuncts,
    disjuncts,
    factor_disjunction,
    replace_columns,
)
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    JoinKind,
    LogicalNode,
    Project,
    Scan,
    Sort,
    Union,
)
from mpp.logical.window import Window
from mpp.optimizer.predicates import to_column_predicate
from mpp.optimizer.rule import with_inputs


def pushdown_predicates(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Move every filter conjunct as close to (or into) the scans as it may go."""
    return _push(plan, [])


def _above(node: LogicalNode, preds: list[Expr]) -> LogicalNode:
    """``node`` under a Filter of ``preds`` (no Filter when there are none)."""
    predicate = conjoin(list(dict.fromkeys(preds)))
    return node if predicate is None else Filter(node, predicate)


@singledispatch
def _push(node: LogicalNode, preds: list[Expr]) -> LogicalNode:
    """Default (Limit and unknown nodes): predicates stop here; inputs start afresh."""
    return _above(with_inputs(node, tuple(_push(c, []) for c in node.inputs)), preds)


@_push.register
def _filter(node: Filter, preds: list[Expr]) -> LogicalNode:
    # The Filter dissolves: its conjuncts continue down with the ones from above.
    return _push(node.input, preds + conjuncts(node.predicate))


@_push.register
def _project(node: Project, preds: list[Expr]) -> LogicalNode:
    mapping = dict(zip(node.names, node.exprs, strict=True))
    below = [replace_columns(p, mapping) for p in preds]
    return dataclasses.replace(node, input=_push(node.input, below))


@_push.register
def _sort(node: Sort, preds: list[Expr]) -> LogicalNode:
    if node.fetch is not None:  # a top-N chose its rows: filtering first would change them
        return _above(dataclasses.replace(node, input=_push(node.input, [])), preds)
    return dataclasses.replace(node, input=_push(node.input, preds))


@_push.register
def _union(node: Union, preds: list[Expr]) -> LogicalNode:
    # A row passes the union's filter iff it passes it in its input: each input gets the
    # predicates with the union's column names replaced by its own (matched by position).
    branches = []
    for branch in node.branches:
        mapping: dict[str, Expr] = {n: Column(f.name, f.dtype)
                                    for n, f in zip(node.names, branch.schema, strict=True)}
        branches.append(_push(branch, [replace_columns(p, mapping) for p in preds]))
    return node.with_inputs(tuple(branches))


@_push.register
def _aggregate(node: Aggregate, preds: list[Expr]) -> LogicalNode:
    groups = {c.name for c in node.group_by}
    # Only a conjunct on group keys selects whole groups; a global aggregate keeps its one row.
    down = [p for p in preds if groups and p.columns() and p.columns() <= groups]
    stay = [p for p in preds if p not in down]
    return _above(dataclasses.replace(node, input=_push(node.input, down)), stay)


@_push.register
def _window(node: Window, preds: list[Expr]) -> LogicalNode:
    keys = {c.name for c in node.partition_by}
    down = [p for p in preds if p.columns() and p.columns() <= keys]
    stay = [p for p in preds if p not in down]
    return _above(dataclasses.replace(node, input=_push(node.input, down)), stay)


def _route(preds: list[Expr], left: set[str], right: set[str], *, to_left_ok: bool,
           to_right_ok: bool) -> tuple[list[Expr], list[Expr], list[Expr]]:
    """Split ``preds`` into (left-only, right-only, the rest), where each move is allowed."""
    to_left: list[Expr] = []
    to_right: list[Expr] = []
    rest: list[Expr] = []
    for p in preds:
        cols = p.columns()
        if to_left_ok and cols and cols <= left:
            to_left.append(p)
        elif to_right_ok and cols and cols <= right:
            to_right.append(p)
        else:
            rest.append(p)
            for side, ok, out in ((left, to_left_ok, to_left), (right, to_right_ok, to_right)):
                implied = _implied(p, side) if ok else None
                if implied is not None:
                    out.append(implied)
    return to_left, to_right, rest


def _implied(pred: Expr, side: set[str]) -> Expr | None:
    """A predicate on ``side``'s columns alone that ``pred`` (an OR over both sides) implies,
    or None: the OR of each branch's simple conjuncts on that side, when every branch has one.

    TPC-H Q7's ``(n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY'
    AND n2.n_name = 'FRANCE')`` implies ``n1.n_name = 'FRANCE' OR n1.n_name = 'GERMANY'``
    (and the same of n2), which filters each nation before the joins instead of the joined
    rows after them; Q19's three branches give lineitem and part their own filters. Wherever
    the OR is true some branch is, and so is its part here; where this is false or NULL, every
    branch is too and the OR is not true: the original, which stays above, decides every row
    the same. Only conjuncts storage could apply (``column op literal``, IN, BETWEEN) are
    taken, as they cannot fail on rows the original would never have evaluated them on.
    """
    terms = disjuncts(pred)
    if len(terms) < 2:
        return None
    parts = []
    for term in terms:
        mine = [c for c in conjuncts(term) if c.columns() and c.columns() <= side
                and to_column_predicate(c, {n: n for n in c.columns()}) is not None]
        if not mine:
            return None
        parts.append(conjoin(mine))
    return factor_disjunction(parts)


@_push.register
def _join(node: Join, preds: list[Expr]) -> LogicalNode:
    left, right = set(node.left.field_names()), set(node.right.field_names())
    # Sides whose every row the join keeps (NULL-extended when unmatched).
    # (An anti join keeps the left rows that match nothing: like a LEFT join's.)
    keeps_left = node.kind in (JoinKind.LEFT, JoinKind.FULL, JoinKind.ANTI)
    keeps_right = node.kind in (JoinKind.RIGHT, JoinKind.FULL)
    # WHERE conjuncts filter the join's output rows: below an outer join only into a preserved
    # side (a test of the other side must still see the NULLs of unmatched rows).
    where_left, where_right, stay = _route(preds, left, right, to_left_ok=not keeps_right,
                                           to_right_ok=not keeps_left)
    # ON conjuncts decide which pairs match: one on the non-preserved side may filter that
    # input, but one on a preserved side may not drop its rows (they are kept, NULL-extended).
    on_left, on_right, residual = _route(conjuncts(node.residual), left, right,
                                         to_left_ok=not keeps_left, to_right_ok=not keeps_right)
    joined = dataclasses.replace(node, left=_push(node.left, where_left + on_left),
                                 right=_push(node.right, where_right + on_right),
                                 residual=conjoin(residual))
    return _above(joined, stay)


@_push.register
def _scan(node: Scan, preds: list[Expr]) -> LogicalNode:
    if node.fetch is not None:  # its fetch counts rows passing its predicates: keep them so
        return _above(node, preds)
    columns = {f"{node.alias}.{c}": c for c in node.table.schema.names}
    pushed = dict.fromkeys(node.predicates)  # ordered, and no quadratic membership test
    rest: list[Expr] = []
    for p in preds:
        cp = to_column_predicate(p, columns)
        if cp is None:
            rest.append(p)
        else:
            pushed.setdefault(cp)
    return _above(dataclasses.replace(node, predicates=tuple(pushed)), rest)
