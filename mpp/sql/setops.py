"""Binding set operations: UNION [ALL], INTERSECT, EXCEPT, and ORDER BY / LIMIT over them.

Every set operation is built on one node, :class:`~mpp.logical.nodes.Union` (UNION ALL), as
Trino plans them:

* ``UNION ALL``: a Union of the branches (chains flatten into one n-ary Union);
* ``UNION`` (DISTINCT): an Aggregate grouping by every column over that Union;
* ``INTERSECT`` / ``EXCEPT`` (DISTINCT): each branch tagged with one marker column per branch
  (TRUE in its own, NULL in the others), a Union, an Aggregate counting each marker per row
  value, a Filter (INTERSECT: every count > 0; EXCEPT: the first > 0 and the second = 0), and a
  Project dropping the counts. Grouping treats NULLs as equal, as set operations must.
* ``INTERSECT ALL`` / ``EXCEPT ALL``: the same counts, then each row value repeated min(m, n)
  or m - n times (a Replicate node; Trino gets there with a row_number window instead).

Branches match by position. Each column gets the common super type of the branches' types
(Trino's rules, :func:`mpp.sql.types.common_type`); a branch whose type differs gets a cast.
Result column names are the first branch's. ORDER BY and LIMIT after the last branch apply to
the whole result (a parenthesised branch keeps its own); ORDER BY names output columns (by
name, position, or in an expression such as ``ORDER BY a + 1``).
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.errors import SqlError
from mpp.logical.expr import AggFunc, AggregateCall, Call, Column, Expr, Literal, SortKey, conjoin
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    LogicalNode,
    LogicalPlan,
    Project,
    Replicate,
    Sort,
    Union,
)
from mpp.sql.expressions import ExprBinder
from mpp.sql.parse import locate, unsupported
from mpp.sql.relations import unique_names
from mpp.sql.scope import Relation, Scope, ScopeColumn
from mpp.sql.types import coerce, common_type, type_name

if TYPE_CHECKING:
    from mpp.sql.bind import QueryBinder

SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)
_KEYWORDS = {exp.Union: TokenType.UNION, exp.Intersect: TokenType.INTERSECT,
             exp.Except: TokenType.EXCEPT}


def operation_name(node: exp.SetOperation) -> str:
    """``UNION ALL``, ``INTERSECT``, ... as written (DISTINCT is the default)."""
    word = type(node).__name__.upper()
    return word if node.args.get("distinct") else f"{word} ALL"


def bind_set_operation(qb: QueryBinder, node: exp.SetOperation) -> LogicalPlan:
    """The plan of ``node`` (with its CTEs, ORDER BY and LIMIT)."""
    _check(qb, node)
    qb.register_ctes(node)
    name = operation_name(node)
    left, right = qb.child().query(node.this), qb.child().query(node.expression)
    branches = _coerce(qb, node, name, [left.root, right.root])
    names = tuple(unique_names(list(left.output_names)))
    if isinstance(node, exp.Union):
        root: LogicalNode = Union(tuple(_flatten(branches, name)), names, name)
        if node.args.get("distinct"):
            root = Aggregate(root, _columns(root), (), ())
    else:
        root = _tagged(branches, names, name, intersect=isinstance(node, exp.Intersect),
                       distinct=bool(node.args.get("distinct")))
    return order_and_limit(qb, node, LogicalPlan(root, left.output_names))


def _check(qb: QueryBinder, node: exp.SetOperation) -> None:
    for key in ("by_name", "side", "kind", "on"):
        if node.args.get(key):
            raise unsupported(node, qb.sql, f"{operation_name(node)} {key.upper()}",
                              _KEYWORDS[type(node)])


def _columns(node: LogicalNode) -> tuple[Column, ...]:
    return tuple(Column(f.name, f.dtype) for f in node.schema)


def _branch_item(branch: exp.Expr, i: int) -> exp.Expr:
    """The select item at position ``i`` of a branch, to point errors at (else the branch)."""
    while isinstance(branch, exp.Subquery | exp.SetOperation):
        branch = branch.this
    items: list[exp.Expr] = branch.expressions if isinstance(branch, exp.Select) else []
    if i < len(items) and not any(isinstance(e, exp.Star) or isinstance(e.this, exp.Star)
                                  for e in items):
        return items[i]
    return branch


def _coerce(qb: QueryBinder, node: exp.SetOperation, name: str,
            roots: list[LogicalNode]) -> list[LogicalNode]:
    """The branches cast to each column's common super type (errors name position and types)."""
    widths = [len(r.schema) for r in roots]
    if len(set(widths)) > 1:
        raise SqlError(f"{name}: the branches have {widths[0]} and {widths[1]} columns; "
                       "each branch of a set operation needs the same number",
                       *locate(node.expression, qb.sql))
    targets: list[pa.DataType] = []
    for i, fields in enumerate(zip(*(r.schema for r in roots), strict=True)):
        common = reduce(lambda a, b: None if a is None else common_type(a, b),
                        (f.dtype for f in fields[1:]), fields[0].dtype)
        if common is None:
            types = " and ".join(type_name(f.dtype) for f in fields)
            raise SqlError(f"{name}: column {i + 1} has types {types}, which have no common "
                           "type", *locate(_branch_item(node.expression, i), qb.sql))
        targets.append(common)
    return [_cast(root, targets) for root in roots]


def _cast(root: LogicalNode, targets: list[pa.DataType]) -> LogicalNode:
    """``root`` with its columns cast to ``targets`` (a UNION ALL: each of its branches, so
    that it can still be flattened into the union above)."""
    if all(f.dtype == t for f, t in zip(root.schema, targets, strict=True)):
        return root
    if isinstance(root, Union) and root.operation == "UNION ALL":
        return Union(tuple(_cast(b, targets) for b in root.branches), root.names, root.operation)
    exprs = tuple(coerce(Column(f.name, f.dtype), t)
                  for f, t in zip(root.schema, targets, strict=True))
    return Project(root, exprs, root.field_names())


def _flatten(branches: list[LogicalNode], name: str) -> list[LogicalNode]:
    """UNION ALL chains as one n-ary Union: a branch that is itself a UNION ALL is spliced."""
    if name != "UNION ALL":
        return branches
    out: list[LogicalNode] = []
    for b in branches:
        out += list(b.branches) if isinstance(b, Union) and b.operation == name else [b]
    return out


def _tagged(branches: list[LogicalNode], names: tuple[str, ...], name: str, *,
            intersect: bool, distinct: bool) -> LogicalNode:
    """INTERSECT / EXCEPT: tagged branches, a Union, counts per branch, then a Filter
    (DISTINCT) or a Replicate of each row value min(m, n) (INTERSECT ALL) or m - n (EXCEPT
    ALL) times."""
    markers = [f"_in{j + 1}" for j in range(len(branches))]
    tagged = []
    for i, branch in enumerate(branches):
        own = branch.field_names()
        tags = tuple(Literal(True if j == i else None, pa.bool_()) for j in range(len(markers)))
        tagged.append(Project(branch, _columns(branch) + tags,
                              tuple(unique_names(list(own) + markers))))
    union_names = tuple(unique_names(list(names) + markers))
    union = Union(tuple(tagged), union_names, name)
    data = tuple(Column(f.name, f.dtype) for f in union.schema[:len(names)])
    flags = union.schema[len(names):]
    counts = tuple(unique_names(list(union_names) + [f"_rows{j + 1}" for j in range(len(flags))])
                   [len(union_names):])
    agg = Aggregate(union, data,
                    tuple(AggregateCall(AggFunc.COUNT, Column(f.name, f.dtype), False, pa.int64())
                          for f in flags), counts)
    out = tuple(c.name for c in data)
    if not distinct:
        m, n = (Column(c, pa.int64()) for c in counts)
        times = (Call("case", (Call("<", (m, n), pa.bool_()), m, n), pa.int64(), (("else", True),))
                 if intersect else Call("-", (m, n), pa.int64()))
        times_name = unique_names(list(out) + ["_times"])[-1]
        project = Project(agg, data + (times,), out + (times_name,))
        return Project(Replicate(project, Column(times_name, pa.int64())), data, out)
    present = [_compare(">", c) for c in counts]
    keep = present if intersect else [present[0], _compare("=", counts[1])]
    predicate = conjoin(keep)
    assert predicate is not None
    return Project(Filter(agg, predicate), data, out)


def _compare(op: str, count: str) -> Expr:
    return Call(op, (Column(count, pa.int64()), Literal(0, pa.int64())), pa.bool_())


def order_and_limit(qb: QueryBinder, node: exp.Expr, plan: LogicalPlan) -> LogicalPlan:
    """ORDER BY and LIMIT/OFFSET written after a set operation (or a parenthesised query):
    they sort and cut the whole result. Keys are output columns, by name or position."""
    order = node.args.get("order")
    root = plan.root
    if order is not None:
        fields = root.schema
        keys = []
        hidden: list[tuple[Expr, str]] = []  # ORDER BY expressions over the output columns
        for ordered in order.expressions:
            i = _output_position(qb, ordered.this, plan)
            if i is None:
                expr = _output_scope_binder(qb, plan).bind(ordered.this)
                name = unique_names([f.name for f in fields] + [h for _, h in hidden]
                                    + [f"_o{len(hidden)}"])[-1]
                hidden.append((expr, name))
                column = Column(name, expr.dtype)
            else:
                column = Column(fields[i].name, fields[i].dtype)
            keys.append(SortKey(column, not ordered.args.get("desc"),
                                bool(ordered.args.get("nulls_first"))))
        if hidden:
            root = Project(root, _columns(root) + tuple(e for e, _ in hidden),
                           root.field_names() + tuple(n for _, n in hidden))
        root = Sort(root, tuple(keys))
        if hidden:
            root = Project(root, tuple(Column(f.name, f.dtype) for f in fields),
                           tuple(f.name for f in fields))
    root = qb.limit(node, root)
    return LogicalPlan(root, plan.output_names)


def _output_scope_binder(qb: QueryBinder, plan: LogicalPlan) -> ExprBinder:
    """Binds ORDER BY expressions over a set operation's output columns (bare names only)."""
    columns = tuple(ScopeColumn(n, f.name, f.dtype)
                    for n, f in zip(plan.output_names, plan.root.schema, strict=True))
    return ExprBinder(Scope((Relation("", columns),)), qb.sql, "ORDER BY")


def _output_position(qb: QueryBinder, key: exp.Expr, plan: LogicalPlan) -> int | None:
    """The output column an ORDER BY key names (by position or name); None for an expression."""
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        pos = int(key.this)
        if not 1 <= pos <= len(plan.output_names):
            raise SqlError(f"ORDER BY position {pos} is not in the select list "
                           f"(1..{len(plan.output_names)})", *locate(key, qb.sql))
        return pos - 1
    if isinstance(key, exp.Column) and not key.table and isinstance(key.this, exp.Identifier):
        wanted = key.name if key.this.args.get("quoted") else key.name.lower()
        hits = [i for i, n in enumerate(plan.output_names) if n.lower() == wanted.lower()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SqlError(f"ORDER BY {key.name!r} is ambiguous: several output columns have "
                           "that name", *locate(key, qb.sql))
        raise SqlError(f"ORDER BY {key.name!r}: not an output column of the set operation "
                       f"(columns: {', '.join(plan.output_names)})", *locate(key, qb.sql))
    return None
