"""GROUP BY keys and the Aggregate node of an aggregate query.

GROUP BY items may be an input column, an expression over input columns, a 1-based position
in the select list (``GROUP BY 1, 2`` as in the seed), or (as DuckDB and many engines allow) the
alias of a select item when no input column has that name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from mpp.errors import SqlError, UnknownColumnError
from mpp.logical.expr import AggregateCall, Column, Expr
from mpp.logical.nodes import Aggregate, LogicalNode, Project
from mpp.sql.aggregates import AggregateRegistry
from mpp.sql.expressions import ExprBinder, contains_aggregate
from mpp.sql.parse import locate, offset_to_line_col, token_after, unsupported
from mpp.sql.scope import Scope

if TYPE_CHECKING:
    from mpp.sql.bind import QueryBinder


def group_keys(qb: QueryBinder, select: exp.Select, scope: Scope,
               items: list[tuple[exp.Expr, str]]) -> list[Expr]:
    """The bound GROUP BY expressions of ``select`` (duplicates removed, order kept)."""
    group = select.args.get("group")
    if group is None:
        return []
    for key, construct in (("rollup", "ROLLUP"), ("cube", "CUBE"),
                           ("grouping_sets", "GROUPING SETS"), ("all", "ALL"),
                           ("totals", "WITH TOTALS")):
        if group.args.get(key):
            raise unsupported(group, qb.sql, f"GROUP BY {construct}",
                              getattr(TokenType, key.upper(), None))
    if not group.expressions:
        raise SqlError("syntax error: GROUP BY needs at least one expression",
                       *_group_by_keyword(select, qb.sql))
    binder = ExprBinder(scope, qb.sql, "GROUP BY")
    keys: list[Expr] = []
    for g in group.expressions:
        target = _group_target(qb, g, scope, items)
        if contains_aggregate(target):
            raise SqlError("GROUP BY cannot contain an aggregate function", *locate(g, qb.sql))
        keys.append(binder.bind(target))
    return list(dict.fromkeys(keys))


def _group_by_keyword(select: exp.Select, sql: str) -> tuple[int, int]:
    """Line and column of ``select``'s own GROUP BY keyword (its Group node has no tokens when
    it is empty): the token after the clause before it."""
    before = (select.args.get("where") or (select.args.get("joins") or [None])[-1]
              or select.args.get("from_") or select.args.get("from"))
    after = token_after(before, sql) if before is not None else None
    if after is not None and after.token_type == TokenType.GROUP_BY:
        return offset_to_line_col(sql, after.start)
    return locate(select, sql, TokenType.GROUP_BY)


def _group_target(qb: QueryBinder, g: exp.Expr, scope: Scope,
                  items: list[tuple[exp.Expr, str]]) -> exp.Expr:
    """The expression a GROUP BY item stands for (resolving positions and aliases)."""
    if isinstance(g, exp.Literal) and g.is_int:  # GROUP BY 1.5 is a constant
        pos = int(g.this)
        if not 1 <= pos <= len(items):
            raise SqlError(f"GROUP BY position {pos} is not in the select list "
                           f"(1..{len(items)})", *locate(g, qb.sql))
        return items[pos - 1][0]
    if isinstance(g, exp.Column) and not g.table:
        try:
            scope.resolve(g.name, None, locate(g, qb.sql))
        except UnknownColumnError:
            for node, name in items:
                if name.lower() == g.name.lower():
                    return node
            raise
    return g


def build_aggregate(qb: QueryBinder, source: LogicalNode, groups: dict[Expr, Column],
                    registry: AggregateRegistry) -> LogicalNode:
    """Project (computed keys and arguments) -> Aggregate over ``source``."""
    computed: dict[str, Expr] = {}
    for key, col in groups.items():
        computed[col.name] = key
    calls = []

    def input_column(arg: Expr | None) -> Column | None:
        """The column of the Project below the Aggregate that holds ``arg``."""
        if arg is None:
            return None
        if isinstance(arg, Column):
            col = arg
        else:
            existing = [n for n, e in computed.items() if e == arg]
            name = existing[0] if existing else qb.fresh("_arg")
            computed[name] = arg
            col = Column(name, arg.dtype)
        computed.setdefault(col.name, col)
        return col

    for slot in registry.slots:
        arg_col = input_column(slot.arg)
        text, line, column = slot.where
        calls.append(AggregateCall(slot.func, arg_col, slot.distinct, slot.dtype, text, line,
                                   column, input_column(slot.by)))
    node = source
    if any(not (isinstance(e, Column) and e.name == n) for n, e in computed.items()):
        node = Project(source, tuple(computed.values()), tuple(computed))
    return Aggregate(node, tuple(groups.values()), tuple(calls),
                     tuple(s.name for s in registry.slots))
