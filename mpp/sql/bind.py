"""sqlglot AST -> LogicalPlan: binding a SELECT to catalog tables and columns.

The shape the binder builds, bottom-up (each step only when the query has the clause)::

    Scan / Join / subquery        FROM            (mpp.sql.relations)
    Filter                        WHERE
    Project -> Aggregate          GROUP BY / aggregates: the Project computes keys and arguments
    Filter                        HAVING
    Project -> Window...          window functions (mpp.sql.windows)
    Project                       the select list (+ hidden ORDER BY expressions)
    Aggregate                     SELECT DISTINCT (group by every output, no aggregates)
    Sort                          ORDER BY
    Project                       drops hidden ORDER BY columns
    Limit                         LIMIT / OFFSET

Result columns are named as Trino names them: the alias, else the column's name, else
``_col<i>``; these names travel in :attr:`LogicalPlan.output_names`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.errors import SqlError, UnknownColumnError
from mpp.logical.expr import Column, Expr, SortKey
from mpp.logical.nodes import Aggregate, Filter, Limit, LogicalNode, LogicalPlan, Project, Sort
from mpp.sql.aggregates import AggregateRegistry, PostAggregateBinder
from mpp.sql.expressions import ExprBinder, contains_aggregate
from mpp.sql.grouping import build_aggregate, group_keys
from mpp.sql.parse import deep_stack, locate, parse, statement_start, unsupported
from mpp.sql.relations import bind_from, unique_names, values_query
from mpp.sql.scope import Scope, check_qualifiers
from mpp.sql.setops import SET_OPERATIONS, bind_set_operation, order_and_limit
from mpp.sql.subqueries import (
    cross_join_all,
    has_subquery,
    having_scalars,
    join_scalars,
    plan_where,
)
from mpp.sql.windows import (
    WindowExprBinder,
    WindowPostAggregateBinder,
    bind_windows,
    collect_windows,
    uses_aggregate,
)

if TYPE_CHECKING:
    from mpp.sql import CatalogLike

_UNSUPPORTED_CLAUSES = {"laterals": "LATERAL", "qualify": "QUALIFY", "windows": "WINDOW clause",
                        "into": "SELECT INTO", "connect": "CONNECT BY", "sample": "TABLESAMPLE",
                        "match": "MATCH_RECOGNIZE", "pivots": "PIVOT", "locks": "FOR UPDATE",
                        "for_": "FOR clause", "kind": "SELECT AS", "exclude": "EXCLUDE",
                        "cluster": "CLUSTER BY", "distribute": "DISTRIBUTE BY",
                        "sort": "SORT BY", "settings": "SETTINGS", "format": "FORMAT",
                        "prewhere": "PREWHERE", "options": "OPTION",
                        "operation_modifiers": "query modifiers"}


def bind(sql: str, catalog: CatalogLike) -> LogicalPlan:
    """Parse and bind ``sql`` (one Trino query) against ``catalog``."""
    tree = parse(sql)
    binder = QueryBinder(sql, catalog)
    with deep_stack():  # nested expressions bind recursively, up to MAX_NESTING levels
        plan = binder.query(tree)
    _check_plan_depth(plan.root, sql)
    notes = tuple(f"WITH {name}: used {n} times, inlined (planned and run) at each use"
                  for name, n in binder.cte_uses.items() if n > 1)
    return LogicalPlan(plan.root, plan.output_names, notes) if notes else plan


# How many plan nodes deep a query may be (a chain of WITH queries each reading the one
# before nests one Project per query): the optimizer, the physical planner, pickling the
# plan to the workers and running it there all recurse a few frames per node, within
# Python's default stack (about 230 nodes pickled was the edge; expressions add depth).
MAX_PLAN_DEPTH = 150


def _check_plan_depth(root: LogicalNode, sql: str) -> None:
    """Refuse a plan deeper than ``MAX_PLAN_DEPTH`` nodes (checked without recursion)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PLAN_DEPTH:
            raise SqlError(f"query nested too deeply: more than {MAX_PLAN_DEPTH} levels of "
                           "subqueries, WITH queries and operators", *statement_start(sql))
        stack += [(child, depth + 1) for child in node.inputs]


@dataclass(frozen=True, slots=True)
class SelectItem:
    """One output column of the select list (``*`` already expanded)."""

    node: exp.Expr
    name: str


class QueryBinder:
    """Binds one query block; nested blocks (subqueries, CTEs) get a child binder."""

    def __init__(self, sql: str, catalog: CatalogLike,
                 ctes: dict[str, exp.Expr] | None = None,
                 cte_columns: dict[str, tuple[str, ...] | None] | None = None,
                 cte_uses: dict[str, int] | None = None):
        self.sql = sql
        self.catalog = catalog
        self.ctes = dict(ctes or {})
        self.cte_columns = dict(cte_columns or {})  # a CTE's column aliases: WITH t (a, b)
        self.cte_uses = cte_uses if cte_uses is not None else {}  # shared by the whole query
        self._own_ctes: set[str] = set()
        self._counter = itertools.count()

    def fresh(self, prefix: str) -> str:
        """A generated name, unique within this query block."""
        return f"{prefix}{next(self._counter)}"

    def child(self, exclude: str | None = None) -> QueryBinder:
        """A binder for a nested query block (a CTE cannot see itself)."""
        return QueryBinder(self.sql, self.catalog,
                           {k: v for k, v in self.ctes.items() if k != exclude},
                           self.cte_columns, self.cte_uses)

    def query(self, node: exp.Expr) -> LogicalPlan:
        """Bind one query (a SELECT, a set operation, VALUES; with its CTEs) into a plan."""
        if isinstance(node, SET_OPERATIONS):
            return bind_set_operation(self, node)
        if isinstance(node, exp.Subquery):  # (query) [ORDER BY ...] [LIMIT ...]
            self.register_ctes(node)
            return order_and_limit(self, node, self.query(node.this))
        if isinstance(node, exp.Values):
            self.register_ctes(node)
            return values_query(self, node)
        select = self._check_statement(node)
        self.register_ctes(select)
        source, scope = bind_from(self, select)
        where = select.args.get("where")
        if where is not None and has_subquery(where.this):
            source = plan_where(self, where.this, source, scope)
        elif where is not None:
            source = Filter(source, ExprBinder(scope, self.sql, "WHERE").predicate(where.this))
        items = self._select_items(select, scope)
        distinct = select.args.get("distinct") is not None
        if self._is_aggregate(select, items):
            return self._aggregate_query(select, source, scope, items, distinct)
        binder = WindowExprBinder(scope, self.sql, "the select list")
        for item in items:  # scalar subqueries: joined in as columns
            if has_subquery(item.node):
                source = join_scalars(self, item.node, source, scope, binder)
        windows = bind_windows(self, self._windows(select, items),
                               ExprBinder(scope, self.sql, "a window function"))
        source = windows.apply(source, lambda: self.fresh("_wk"))
        order_binder = WindowExprBinder(scope, self.sql, "ORDER BY")
        binder.windows = order_binder.windows = windows.refs
        exprs = [binder.bind(i.node) for i in items]
        return self._finish(select, source, items, exprs, order_binder, distinct)

    def _windows(self, select: exp.Select, items: list[SelectItem]) -> list[exp.Window]:
        """The window calls of the select list and ORDER BY."""
        order = select.args.get("order")
        return collect_windows([i.node for i in items] + ([order] if order is not None else []))

    def _check_statement(self, node: exp.Expr) -> exp.Select:
        if not isinstance(node, exp.Select):
            raise SqlError(f"unsupported SQL: {node.key.upper()} statement is not in mpp's SQL "
                           "subset (only SELECT is)", *statement_start(self.sql))
        for key, construct in _UNSUPPORTED_CLAUSES.items():
            if node.args.get(key):
                value = node.args[key]
                value = value[0] if isinstance(value, list) else value  # the first WINDOW w
                raise unsupported(value if isinstance(value, exp.Expression) else node,
                                  self.sql, construct)
        if not node.expressions:
            raise SqlError("syntax error: the select list is empty", *statement_start(self.sql))
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise unsupported(distinct, self.sql, "SELECT DISTINCT ON")
        return node

    def register_ctes(self, query: exp.Expr) -> None:
        """Make ``query``'s WITH queries visible to it (each may use the ones before it).

        A CTE is bound where it is used; one used twice is inlined twice (EXPLAIN shows both
        copies, each under its alias).
        """
        with_ = query.args.get("with_") or query.args.get("with")
        if with_ is None:
            return
        if with_.args.get("recursive"):
            raise unsupported(with_, self.sql, "WITH RECURSIVE", TokenType.RECURSIVE)
        for cte in with_.expressions:
            name = cte.alias.lower()
            if name in self.ctes and name in self._own_ctes:
                raise SqlError(f"WITH query name {cte.alias!r} is given twice",
                               *locate(cte, self.sql))
            self._own_ctes.add(name)
            self.ctes[name] = cte.this
            alias = cte.args.get("alias")
            self.cte_columns[name] = tuple(identifier_name(c) for c in alias.columns) \
                if alias is not None and alias.columns else None

    def _select_items(self, select: exp.Select, scope: Scope) -> list[SelectItem]:
        items: list[SelectItem] = []
        for e in select.expressions:
            if isinstance(e, exp.Star) or (isinstance(e, exp.Column)
                                           and isinstance(e.this, exp.Star)):
                items += self._expand_star(e, scope)
            elif isinstance(e, exp.Alias):
                items.append(SelectItem(e.this, identifier_name(e.args["alias"])))
            elif isinstance(e, exp.Column):
                items.append(SelectItem(e, identifier_name(e.this)))
            else:
                items.append(SelectItem(e, f"_col{len(items)}"))
        return items

    def _expand_star(self, star: exp.Expr, scope: Scope) -> list[SelectItem]:
        if isinstance(star, exp.Column):
            check_qualifiers(star, self.sql, UnknownColumnError)
        table = star.table if isinstance(star, exp.Column) else ""
        rels = scope.relations
        if table:
            rel = scope.relation(table)
            if rel is None:
                raise UnknownColumnError(f"{table}.*: no table or alias {table!r} in scope",
                                         *locate(star, self.sql))
            rels = (rel,)
        out = []
        for rel in rels:  # USING columns (the unnamed relation) first; their pairs hidden
            for c in (c for c in rel.columns if not c.hidden):
                node = exp.column(c.name, table=rel.alias or None, quoted=True)
                for part in node.walk():
                    part.meta.update(star.meta)  # errors about it point at the star
                out.append(SelectItem(node, c.name))
        return out

    def _is_aggregate(self, select: exp.Select, items: list[SelectItem]) -> bool:
        if select.args.get("group") is not None or select.args.get("having") is not None:
            return True
        order = select.args.get("order")
        nodes = [i.node for i in items] + ([order] if order is not None else [])
        return (any(contains_aggregate(n) for n in nodes)
                or uses_aggregate(self._windows(select, items)))

    def _aggregate_query(self, select: exp.Select, source: LogicalNode, scope: Scope,
                         items: list[SelectItem], distinct: bool) -> LogicalPlan:
        keys = group_keys(self, select, scope, [(i.node, i.name) for i in items])
        groups = {k: (k if isinstance(k, Column) else Column(self.fresh("_g"), k.dtype))
                  for k in keys}
        registry = AggregateRegistry()

        def binder(clause: str) -> PostAggregateBinder:
            return PostAggregateBinder(scope, self.sql, groups, registry, clause)

        # Window calls bind first: their aggregates join the registry, their columns are known.
        windows = bind_windows(self, self._windows(select, items), binder("a window function"))

        def window_binder(clause: str) -> WindowPostAggregateBinder:
            bound = WindowPostAggregateBinder(scope, self.sql, groups, registry, clause)
            bound.windows = windows.refs
            return bound

        # One-row plans of the select list's and HAVING's scalar subqueries, joined in after
        # the Aggregate.
        scalars: list[LogicalNode] = []
        select_binder = window_binder("the select list")
        for item in items:
            if has_subquery(item.node):
                scalars += having_scalars(self, item.node, scope, select_binder)
        exprs = [select_binder.bind(i.node) for i in items]
        having = select.args.get("having")
        having_binder = binder("HAVING")
        if having is not None and has_subquery(having.this):
            scalars += having_scalars(self, having.this, scope, having_binder)
        having_expr = having_binder.predicate(having.this) if having is not None else None
        order_binder = window_binder("ORDER BY")
        order = self._order_keys(select, items, exprs, order_binder)  # may add aggregates
        node = cross_join_all(self, build_aggregate(self, source, groups, registry), scalars)
        if having_expr is not None:
            node = Filter(node, having_expr)
        node = windows.apply(node, lambda: self.fresh("_wk"))
        return self._finish(select, node, items, exprs, order_binder, distinct, order)

    def _order_keys(self, select: exp.Select, items: list[SelectItem], exprs: list[Expr],
                    binder: ExprBinder) -> list[tuple[Expr, exp.Ordered]]:
        """ORDER BY items bound to an output position (an Expr equal to ``exprs[i]``) or not."""
        order = select.args.get("order")
        out: list[tuple[Expr, exp.Ordered]] = []
        for ordered in order.expressions if order is not None else []:
            e = ordered.this
            if isinstance(e, exp.Literal) and e.is_int:  # ORDER BY 0E0 is a constant
                pos = int(e.this)
                if not 1 <= pos <= len(items):
                    raise SqlError(f"ORDER BY position {pos} is not in the select list "
                                   f"(1..{len(items)})", *locate(e, self.sql))
                out.append((exprs[pos - 1], ordered))
                continue
            if isinstance(e, exp.Column) and not e.table and not isinstance(e.this, exp.Star):
                hits = [i for i, it in enumerate(items) if it.name.lower() == e.name.lower()]
                # Trino: ambiguous only when the outputs so named are different expressions
                # (``SELECT day, t.day ... ORDER BY day`` names one column twice).
                if any(exprs[i] != exprs[hits[0]] for i in hits[1:]):
                    raise SqlError(f"ORDER BY {e.name!r} is ambiguous: several output columns "
                                   "have that name", *locate(e, self.sql))
                if hits:
                    out.append((exprs[hits[0]], ordered))
                    continue
            out.append((binder.bind(_output_names_inlined(e, items)), ordered))
        return out

    def _finish(self, select: exp.Select, node: LogicalNode, items: list[SelectItem],
                exprs: list[Expr], order_binder: ExprBinder, distinct: bool,
                order: list[tuple[Expr, exp.Ordered]] | None = None) -> LogicalPlan:
        """Select-list Project, DISTINCT, ORDER BY and LIMIT on top of ``node``."""
        if order is None:
            order = self._order_keys(select, items, exprs, order_binder)
        names = unique_names([i.name for i in items])
        hidden = [e for e, _ in order if e not in exprs]
        hidden = list(dict.fromkeys(hidden))
        if hidden and distinct:
            raise SqlError("for SELECT DISTINCT, ORDER BY expressions must appear in the "
                           "select list", *locate(select.args["order"], self.sql))
        all_names = unique_names(names + [f"_o{i}" for i in range(len(hidden))])
        all_exprs = exprs + hidden
        node = Project(node, tuple(all_exprs), tuple(all_names))
        if distinct:
            node = Aggregate(node, tuple(Column(n, e.dtype) for n, e in zip(names, exprs,
                                                                               strict=True)),
                             (), ())
        if order:
            keys = tuple(SortKey(Column(all_names[all_exprs.index(e)], e.dtype),
                                 not o.args.get("desc"), bool(o.args.get("nulls_first")))
                         for e, o in order)
            node = Sort(node, keys)
        if hidden:
            node = Project(node, tuple(Column(n, e.dtype) for n, e in zip(names, exprs,
                                                                          strict=True)),
                           tuple(names))
        node = self.limit(select, node)
        return LogicalPlan(node, tuple(i.name for i in items))

    def limit(self, select: exp.Expr, node: LogicalNode) -> LogicalNode:
        """``node`` under the LIMIT / OFFSET written on ``select`` (a SELECT or set operation)."""
        limit, offset = select.args.get("limit"), select.args.get("offset")
        if limit is None and offset is None:
            return node
        if limit is None:
            raise unsupported(select, self.sql, "OFFSET without LIMIT", TokenType.OFFSET)
        options = limit.args.get("limit_options")
        if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
            raise unsupported(limit, self.sql, "LIMIT/FETCH options (PERCENT, WITH TIES)")
        count_node = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
        count = _constant_int(count_node, "LIMIT", self.sql)
        skip = _constant_int(offset.expression, "OFFSET", self.sql) if offset is not None else 0
        return Limit(node, count, skip)


def _output_names_inlined(node: exp.Expr, items: list[SelectItem]) -> exp.Expr:
    """``node`` with bare references to output names replaced by their select expressions
    (Trino resolves ORDER BY names against the output columns first: ORDER BY users + 1)."""
    names: dict[str, list[SelectItem]] = {}
    for item in items:
        names.setdefault(item.name.lower(), []).append(item)

    def inline(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.Column) and not n.table and isinstance(n.this, exp.Identifier):
            hits = names.get(n.name.lower(), [])
            if len(hits) == 1 and hits[0].node is not n:
                return hits[0].node.copy()
        return n

    return node.transform(inline)


def identifier_name(ident: exp.Expr) -> str:
    """An identifier as Trino names it: unquoted identifiers are lower case."""
    name = str(ident.name)
    return name if ident.args.get("quoted") else name.lower()


def _constant_int(node: exp.Expr | None, clause: str, sql: str) -> int:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    raise SqlError(f"{clause} needs a non-negative integer constant",
                   *(locate(node, sql) if node is not None else (None, None)))
