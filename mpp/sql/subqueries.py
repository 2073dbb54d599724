"""Subqueries in WHERE and HAVING, planned as joins (never run once per row).

* ``x IN (subquery)`` / ``EXISTS (subquery)`` as a WHERE condition (a top-level AND term): a
  left SEMI join of the FROM rows with the subquery's rows; ``NOT IN`` / ``NOT EXISTS``: an
  ANTI join. ``NOT IN`` follows Trino's NULL rules (a null-aware anti join, broadcast).
* A correlated EXISTS / IN (the subquery's WHERE names columns of the outer query) is
  decorrelated: each correlated equality ``outer = inner`` becomes a join key pair, every other
  correlated condition (``l3.l_suppkey <> l1.l_suppkey``) the join's residual.
* A scalar subquery ``(SELECT ...)`` in an expression: uncorrelated, it becomes a one-row
  global aggregate (count, value) cross-joined to the rows (broadcast), with a check that
  raises Trino's "Scalar sub-query has returned multiple rows"; no rows give NULL. Correlated
  (an aggregate whose WHERE equates inner and outer columns), it becomes an aggregate grouped
  by the inner correlation columns, LEFT-joined on them (a group that does not exist: NULL;
  a bare count(): 0).

Anything else (IN under OR, a correlated count(), ...) is refused with an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.errors import SqlError, UnknownColumnError
from mpp.logical.expr import AggFunc, AggregateCall, Call, Column, Expr, Literal, conjoin
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    JoinKind,
    Limit,
    LogicalNode,
    Project,
    key_columns,
)
from mpp.sql import types as T
from mpp.sql.expressions import ExprBinder, contains_aggregate
from mpp.sql.parse import locate, unsupported
from mpp.sql.relations import bind_from
from mpp.sql.scope import Relation, Scope, ScopeColumn

if TYPE_CHECKING:
    from mpp.sql.bind import QueryBinder


def conjuncts_of(node: exp.Expr) -> list[exp.Expr]:
    """The terms of a chain of ANDs (parentheses removed)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return [t for part in node.flatten(unnest=False) for t in conjuncts_of(part)]
    return [node]


def has_subquery(node: exp.Expr) -> bool:
    """True if ``node`` contains a subquery (IN, EXISTS or scalar)."""
    return any(isinstance(n, (exp.Subquery, exp.Exists)) for n in node.walk())


@dataclass(frozen=True, slots=True)
class CorrelatedScope:
    """A subquery's scope: its own relations first, then the outer query's (a name the
    subquery does not have refers to the outer query, as in SQL)."""

    inner: Scope
    outer: Scope

    @property
    def relations(self) -> tuple[Relation, ...]:
        """Every relation in reach, inner first."""
        return self.inner.relations + self.outer.relations

    def relation(self, alias: str) -> Relation | None:
        """The relation called ``alias``: the subquery's own, else the outer query's."""
        return self.inner.relation(alias) or self.outer.relation(alias)

    def candidates(self) -> list[str]:
        """Every name a column reference could use here."""
        return self.inner.candidates() + self.outer.candidates()

    def resolve(self, name: str, table: str | None, where: tuple[int, int]) -> Column:
        """``[table.]name`` in the subquery, else in the outer query."""
        try:
            return self.inner.resolve(name, table, where)
        except UnknownColumnError:
            return self.outer.resolve(name, table, where)


def plan_where(qb: QueryBinder, condition: exp.Expr, source: LogicalNode,
               scope: Scope) -> LogicalNode:
    """``source`` filtered by a WHERE ``condition`` that may hold subqueries."""
    return plan_conditions(qb, conjuncts_of(condition), source, scope)


def plan_conditions(qb: QueryBinder, conjuncts: list[exp.Expr], source: LogicalNode,
                    scope: Scope) -> LogicalNode:
    """``source`` filtered by every one of ``conjuncts``, in three layers, bottom-up:

    1. the conjuncts without a subquery, as one Filter directly above the FROM relation (so
       that its comma joins and the WHERE equalities between them form one join group that
       ``reorder_joins``, or its FROM-order fallback, turns into equi joins even when
       ``pushdown_predicates`` is switched off: with the Filter above a semi join instead,
       the comma joins would stay cross products);
    2. IN / EXISTS terms, as semi and anti joins;
    3. the conjuncts with scalar subqueries: the subqueries joined in as columns, then one
       Filter.

    Every layer only removes rows, so the order does not change the result.
    """
    plain: list[exp.Expr] = []
    tests: list[tuple[bool, exp.Expr | None, exp.Expr, exp.Expr]] = []
    scalar: list[exp.Expr] = []
    for c in conjuncts:
        test = _subquery_test(c)
        if test is not None:
            tests.append(test)
        else:
            (scalar if has_subquery(c) else plain).append(c)
    if plain:
        binder = ExprBinder(scope, qb.sql, "WHERE")
        source = Filter(source, conjoin([binder.predicate(c) for c in plain]))  # type: ignore[arg-type]
    for test in tests:
        source = _semi_or_anti(qb, source, scope, *test)
    if not scalar:
        return source
    binder = ExprBinder(scope, qb.sql, "WHERE")
    for c in scalar:
        source = join_scalars(qb, c, source, scope, binder)
    return Filter(source, conjoin([binder.predicate(c) for c in scalar]))  # type: ignore[arg-type]


def join_scalars(qb: QueryBinder, node: exp.Expr, source: LogicalNode, scope: Scope,
                 binder: ExprBinder) -> LogicalNode:
    """``source`` with one column per scalar subquery in ``node``; ``binder`` learns them."""
    for sub in _scalar_subqueries(node):
        source, column = _scalar(qb, source, scope, sub)
        binder.scalars[id(sub)] = column
    return source


def having_scalars(qb: QueryBinder, node: exp.Expr, scope: Scope,
                   binder: ExprBinder) -> list[LogicalNode]:
    """The one-row plans of the (uncorrelated) scalar subqueries of HAVING or of an
    aggregation's select list, to be cross-joined above the Aggregate (:func:`cross_join_all`); ``binder`` learns them."""
    rights = []
    for sub in _scalar_subqueries(node):
        if _correlation(qb, sub, scope) is not None:
            raise unsupported(sub, qb.sql, "correlated scalar subquery in "
                                           f"{binder.clause} of an aggregation",
                              TokenType.SELECT)
        right, column = _uncorrelated_scalar(qb, sub)
        binder.scalars[id(sub)] = column
        rights.append(right)
    return rights


def cross_join_all(qb: QueryBinder, source: LogicalNode,
                   rights: list[LogicalNode]) -> LogicalNode:
    """``source`` cross-joined with each one-row plan of ``rights``."""
    for right in rights:
        source = _join(qb, source, right, JoinKind.INNER, [], [], [])
    return source


def _scalar_subqueries(node: exp.Expr) -> list[exp.Subquery]:
    found = []
    for n in node.walk(prune=lambda n: isinstance(n, (exp.Subquery, exp.Exists))):
        if isinstance(n, exp.Subquery) and not (isinstance(n.parent, exp.In)
                                                and n.arg_key == "query"):
            found.append(n)
    return found


def _subquery_test(node: exp.Expr) -> tuple[bool, exp.Expr | None, exp.Expr, exp.Expr] | None:
    """(negated, IN's value or None for EXISTS, the subquery, the node) of an IN / EXISTS
    term, else None."""
    negated = False
    inner = node
    while isinstance(inner, (exp.Not, exp.Paren)):
        negated ^= isinstance(inner, exp.Not)
        inner = inner.this
    if isinstance(inner, exp.Exists):
        return negated, None, inner.this, inner
    if isinstance(inner, exp.In) and inner.args.get("query") is not None:
        return negated, inner.this, inner.args["query"], inner
    return None


def _select_of(sub: exp.Expr) -> exp.Expr:
    while isinstance(sub, exp.Subquery) and not sub.args.get("order") \
            and not sub.args.get("limit") and not sub.args.get("offset"):
        sub = sub.this
    return sub


@dataclass
class _Correlation:
    binder: QueryBinder  # the subquery's binder
    source: LogicalNode  # its FROM
    scope: Scope
    local: list[exp.Expr]  # its own WHERE terms
    correlated: list[exp.Expr]  # WHERE terms that name outer columns


def _correlation(qb: QueryBinder, sub: exp.Expr, outer: Scope) -> _Correlation | None:
    """The subquery's FROM and WHERE split by correlation; None if it names no outer column
    in its WHERE (then it is bound as a query of its own)."""
    select = _select_of(sub)
    if not isinstance(select, exp.Select) or select.args.get("where") is None:
        return None
    saved = dict(qb.cte_uses)
    child = qb.child()
    child.register_ctes(select)
    source, scope = bind_from(child, select)
    local: list[exp.Expr] = []
    correlated: list[exp.Expr] = []
    for c in conjuncts_of(select.args["where"].this):
        (correlated if _names_outer(c, scope, outer, qb.sql) else local).append(c)
    if not correlated:
        qb.cte_uses.clear()
        qb.cte_uses.update(saved)  # it is bound again, as a query of its own
        return None
    return _Correlation(child, source, scope, local, correlated)


def _columns(node: exp.Expr) -> list[exp.Column]:
    return [n for n in node.walk(prune=lambda n: isinstance(n, (exp.Subquery, exp.Select))
                                 and n is not node)
            if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star)]


def _in_scope(col: exp.Column, scope: Scope, sql: str) -> bool:
    try:
        scope.resolve(col.name, col.table or None, locate(col, sql))
        return True
    except UnknownColumnError:
        return False


def _names_outer(node: exp.Expr, inner: Scope, outer: Scope, sql: str) -> bool:
    """True if ``node`` names a column the subquery lacks but the outer query has."""
    return any(not _in_scope(c, inner, sql) and _in_scope(c, outer, sql)
               for c in _columns(node))


def _side(node: exp.Expr, inner: Scope, sql: str) -> str:
    """"inner", "outer" or "mixed": whose columns ``node`` reads."""
    where = {_in_scope(c, inner, sql) for c in _columns(node)}
    return "inner" if where == {True} else "outer" if where == {False} else "mixed"


def _disjoint(qb: QueryBinder, node: LogicalNode, scope: Scope,
              taken: set[str]) -> tuple[LogicalNode, Scope]:
    """``node`` with its fields renamed apart from ``taken`` (the outer query's fields: the
    same table in both queries), and ``scope`` following the renaming."""
    names = node.field_names()
    if not taken & set(names):
        return node, scope
    prefix = qb.fresh("_sq") + "."
    cols = tuple(Column(f.name, f.dtype) for f in node.schema)
    renamed = Project(node, cols, tuple(prefix + n for n in names))
    relations = tuple(Relation(r.alias, tuple(
        ScopeColumn(c.name, prefix + c.field, c.dtype, c.hidden) for c in r.columns))
        for r in scope.relations)
    return renamed, Scope(relations)


def _key_pair(left: Expr, right: Expr, node: exp.Expr, sql: str) -> tuple[Expr, Expr]:
    common = T.comparison_type(left, right)
    if common is None:
        raise SqlError(f"cannot compare {left.dtype} with {right.dtype}", *locate(node, sql))
    return T.coerce(left, common), T.coerce(right, common)


def _join(qb: QueryBinder, source: LogicalNode, right: LogicalNode, kind: JoinKind,
          lks: list[Expr], rks: list[Expr], residual: list[Expr],
          null_aware: bool = False) -> LogicalNode:
    source, lkeys = key_columns(source, lks, lambda: qb.fresh("_key"))
    right, rkeys = key_columns(right, rks, lambda: qb.fresh("_key"))
    return Join(source, right, kind, lkeys, rkeys, conjoin(residual), null_aware=null_aware)


def _one_column(qb: QueryBinder, sub: exp.Expr, root: LogicalNode, what: str
                ) -> tuple[LogicalNode, Column]:
    """The subquery's single result column, renamed apart (an error if it has several)."""
    if len(root.schema) != 1:
        raise SqlError(f"{what} must return one column, not {len(root.schema)}",
                       *locate(sub, qb.sql, TokenType.SELECT))
    field = root.schema[0]
    name = qb.fresh("_sq") + ".value"
    return Project(root, (Column(field.name, field.dtype),), (name,)), Column(name, field.dtype)


def _semi_or_anti(qb: QueryBinder, source: LogicalNode, scope: Scope, negated: bool,
                  value_node: exp.Expr | None, sub: exp.Expr, node: exp.Expr) -> LogicalNode:
    """``source`` semi- (anti-) joined with the rows of an IN / EXISTS subquery."""
    what = "IN (subquery)" if value_node is not None else "EXISTS (subquery)"
    kind = JoinKind.ANTI if negated else JoinKind.SEMI
    corr = _correlation(qb, sub, scope)
    if corr is None:
        root = qb.child().query(sub).root
        if value_node is None:  # one row is enough to know it is not empty
            return _join(qb, source, Limit(root, 1), kind, [], [], [])
        right, column = _one_column(qb, sub, root, f"the subquery of {what}")
        value = ExprBinder(scope, qb.sql, "WHERE").bind(value_node)
        lk, rk = _key_pair(value, column, node, qb.sql)
        return _join(qb, source, right, kind, [lk], [rk], [], null_aware=negated)
    select = _select_of(sub)
    if negated and value_node is not None:
        raise unsupported(node, qb.sql, "NOT IN with a correlated subquery",
                          hint=" (write NOT EXISTS)")
    if any(select.args.get(k) for k in ("group", "having", "limit", "offset", "distinct")) \
            or any(contains_aggregate(e) for e in select.expressions):
        raise unsupported(sub, qb.sql, f"correlated {what} with GROUP BY, HAVING, LIMIT, "
                                       "DISTINCT or aggregates", TokenType.SELECT)
    inner = plan_conditions(corr.binder, corr.local, corr.source, corr.scope)
    inner, inner_scope = _disjoint(qb, inner, corr.scope, set(source.field_names()))
    outer_binder = ExprBinder(scope, qb.sql, "WHERE")
    inner_binder = ExprBinder(inner_scope, qb.sql, "WHERE")
    lks: list[Expr] = []
    rks: list[Expr] = []
    residual: list[Expr] = []
    for c in corr.correlated:
        if isinstance(c, exp.EQ):
            sides = (_side(c.left, inner_scope, qb.sql), _side(c.right, inner_scope, qb.sql))
            if sorted(sides) == ["inner", "outer"]:
                o, i = (c.left, c.right) if sides[0] == "outer" else (c.right, c.left)
                lk, rk = _key_pair(outer_binder.bind(o), inner_binder.bind(i), c, qb.sql)
                lks.append(lk)
                rks.append(rk)
                continue
        both = ExprBinder(CorrelatedScope(inner_scope, scope), qb.sql, "WHERE")  # type: ignore[arg-type]
        residual.append(both.predicate(c))
    if value_node is not None:
        if len(select.expressions) != 1 or isinstance(select.expressions[0], exp.Star):
            raise SqlError(f"the subquery of {what} must return one column",
                           *locate(sub, qb.sql, TokenType.SELECT))
        item = select.expressions[0]
        item = item.this if isinstance(item, exp.Alias) else item
        lk, rk = _key_pair(outer_binder.bind(value_node), inner_binder.bind(item), node,
                           qb.sql)
        lks.append(lk)
        rks.append(rk)
    return _join(qb, source, inner, kind, lks, rks, residual)


def _scalar(qb: QueryBinder, source: LogicalNode, scope: Scope,
            sub: exp.Subquery) -> tuple[LogicalNode, Expr]:
    """``source`` joined with a scalar subquery's value, and the column holding it."""
    corr = _correlation(qb, sub, scope)
    if corr is None:
        one, column = _uncorrelated_scalar(qb, sub)
        return _join(qb, source, one, JoinKind.INNER, [], [], []), column
    return _correlated_scalar(qb, source, scope, sub, corr)


def _uncorrelated_scalar(qb: QueryBinder, sub: exp.Subquery) -> tuple[LogicalNode, Column]:
    """A one-row plan of the subquery's value (NULL if it has no rows; an error at run time
    if it has several), and the column holding it."""
    root = qb.child().query(sub).root
    right, column = _one_column(qb, sub, root, "a scalar subquery")
    n, v = qb.fresh("_sq") + ".rows", qb.fresh("_sq") + ".min"
    agg = Aggregate(right, (), (AggregateCall(AggFunc.COUNT_STAR, None, False, pa.int64()),
                                AggregateCall(AggFunc.MIN, column, False, column.dtype)),
                    (n, v))
    line, col = locate(sub, qb.sql, TokenType.SELECT)
    value = Call("single_row_value", (Column(n, pa.int64()), Column(v, column.dtype)),
                 column.dtype, source="scalar subquery", line=line, column=col)
    name = qb.fresh("_sq") + ".value"
    return Project(agg, (value,), (name,)), Column(name, column.dtype)


def _correlated_scalar(qb: QueryBinder, source: LogicalNode, scope: Scope, sub: exp.Subquery,
                       corr: _Correlation) -> tuple[LogicalNode, Expr]:
    """An aggregate grouped by the inner correlation columns, LEFT-joined on them."""
    select = _select_of(sub)
    assert isinstance(select, exp.Select)
    if any(select.args.get(k) for k in ("group", "having", "limit", "offset", "distinct")):
        raise unsupported(sub, qb.sql, "correlated scalar subquery with GROUP BY, HAVING, "
                                       "LIMIT or DISTINCT", TokenType.SELECT)
    if len(select.expressions) != 1 or not contains_aggregate(select.expressions[0]):
        raise unsupported(sub, qb.sql, "correlated scalar subquery without an aggregate",
                          TokenType.SELECT, hint=" (its select list must be one aggregate expression)")
    item = select.expressions[0]
    item = item.this if isinstance(item, exp.Alias) else item
    # The count bug: a key without rows has no group, so the LEFT join gives NULL where
    # count() over no rows is 0. A bare count() is repaired with coalesce(value, 0); an
    # expression around a count() would need its value over no rows, and is refused.
    bare_count = isinstance(item, exp.Count)
    if not bare_count and any(isinstance(n, exp.Count) for n in item.walk()):
        raise unsupported(sub, qb.sql, "an expression of count() in a correlated scalar "
                                       "subquery", TokenType.SELECT,
                          hint=" (over no rows it must be computed from 0, which the join "
                               "would make NULL; write count() alone)")
    outer_nodes, inner_nodes = [], []
    for c in corr.correlated:
        sides = (_side(c.left, corr.scope, qb.sql), _side(c.right, corr.scope, qb.sql)) \
            if isinstance(c, exp.EQ) else ("", "")
        if not isinstance(c, exp.EQ) or sorted(sides) != ["inner", "outer"]:
            raise unsupported(c, qb.sql, "a correlated scalar subquery condition other than "
                                         "inner = outer")
        o, i = (c.left, c.right) if sides[0] == "outer" else (c.right, c.left)
        outer_nodes.append((o, c))
        inner_nodes.append(i)
    inner = plan_conditions(corr.binder, corr.local, corr.source, corr.scope)
    grouped = select.copy()
    grouped.set("where", None)
    grouped.set("expressions", [exp.alias_(i.copy(), f"_k{n}") for n, i in
                                enumerate(inner_nodes)] + [exp.alias_(item.copy(), "_v")])
    grouped.set("group", exp.Group(expressions=[i.copy() for i in inner_nodes]))
    items = corr.binder._select_items(grouped, corr.scope)
    plan = corr.binder._aggregate_query(grouped, inner, corr.scope, items, False)
    prefix = qb.fresh("_sq") + "."
    fields = plan.root.schema
    right = Project(plan.root, tuple(Column(f.name, f.dtype) for f in fields),
                    tuple(prefix + f.name for f in fields))
    outer_binder = ExprBinder(scope, qb.sql, "WHERE")
    lks: list[Expr] = []
    rks: list[Expr] = []
    for (o, c), f in zip(outer_nodes, fields[:-1], strict=True):
        lk, rk = _key_pair(outer_binder.bind(o), Column(prefix + f.name, f.dtype), c, qb.sql)
        lks.append(lk)
        rks.append(rk)
    value = fields[-1]
    column: Expr = Column(prefix + value.name, value.dtype)
    if bare_count:
        column = Call("coalesce", (column, Literal(0, value.dtype)), value.dtype)
    return _join(qb, source, right, JoinKind.LEFT, lks, rks, []), column
