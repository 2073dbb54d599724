"""Binding window functions (``f(...) OVER (PARTITION BY ... ORDER BY ... frame)``).

Windows are computed after WHERE, GROUP BY and HAVING and before the select list, DISTINCT,
ORDER BY and LIMIT (Trino's order). The binder:

1. collects the window calls of the select list and ORDER BY (:func:`collect_windows`);
2. binds each one's function arguments, PARTITION BY and ORDER BY expressions with the binder of
   the query's level (above an Aggregate they may use group keys and aggregates, so
   ``rank() OVER (ORDER BY count(*) DESC)`` and ``sum(sum(x)) OVER ()`` work);
3. puts a Project computing those expressions below one :class:`~mpp.logical.window.Window`
   node per distinct (PARTITION BY, ORDER BY) pair (:meth:`WindowSet.apply`), stacked so that
   windows with the same PARTITION BY sit next to each other (one exchange serves them);
4. binds the select list and ORDER BY with each window call replaced by a reference to its
   output column (:class:`WindowRefs`).

Refused with a located error: IGNORE NULLS, GROUPS frames, named windows (``OVER w`` and the
WINDOW clause), window functions mpp does not have, DISTINCT in a window aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from mpp.errors import SqlError
from mpp.logical.expr import AggFunc, Column, Expr, Literal, SortKey
from mpp.logical.nodes import LogicalNode, Project
from mpp.logical.window import (
    DEFAULT_FRAME,
    BoundKind,
    Frame,
    FrameBound,
    Window,
    WindowCall,
    WindowFunc,
)
from mpp.sql import types as T
from mpp.sql.aggregates import PostAggregateBinder, result_type
from mpp.sql.expressions import ExprBinder, is_aggregate_call
from mpp.sql.parse import locate, unsupported

if TYPE_CHECKING:
    from mpp.sql.bind import QueryBinder

_SIMPLE: dict[type, WindowFunc] = {exp.RowNumber: WindowFunc.ROW_NUMBER, exp.Rank: WindowFunc.RANK,
           exp.DenseRank: WindowFunc.DENSE_RANK}
_VALUE: dict[type, WindowFunc] = {exp.FirstValue: WindowFunc.FIRST_VALUE,
                                  exp.LastValue: WindowFunc.LAST_VALUE}
_AGGREGATE: dict[type, tuple[WindowFunc, AggFunc]] = {
    exp.Count: (WindowFunc.COUNT, AggFunc.COUNT), exp.Sum: (WindowFunc.SUM, AggFunc.SUM),
    exp.Avg: (WindowFunc.AVG, AggFunc.AVG), exp.Min: (WindowFunc.MIN, AggFunc.MIN),
    exp.Max: (WindowFunc.MAX, AggFunc.MAX)}
_BOUND_ORDER = list(BoundKind)


def collect_windows(nodes: list[exp.Expr]) -> list[exp.Window]:
    """The window calls in ``nodes`` (not those of subqueries), each distinct one once."""
    found: dict[exp.Expr, exp.Window] = {}
    for node in nodes:
        for n in node.walk(prune=lambda n: isinstance(n, (exp.Subquery, exp.Exists, exp.Window))):
            if isinstance(n, exp.Window):
                found.setdefault(n, n)
    return list(found.values())


def uses_aggregate(windows: list[exp.Window]) -> bool:
    """True if a window's argument, PARTITION BY or ORDER BY holds an aggregate (which makes
    the query an aggregate query: ``rank() OVER (ORDER BY count(*))``)."""
    for w in windows:
        parts = list(w.this.args.values()) + list(w.args.get("partition_by") or [])
        if w.args.get("order") is not None:
            parts.append(w.args["order"])
        for part in parts:
            if isinstance(part, exp.Expr) and any(
                    is_aggregate_call(n) for n in part.walk(
                        prune=lambda n: isinstance(n, (exp.Window, exp.Subquery)))):
                return True
    return False


@dataclass(frozen=True, slots=True)
class _Bound:
    """One window call, bound: its keys and arguments as expressions of the input."""

    partition: tuple[Expr, ...]
    order: tuple[tuple[Expr, bool, bool], ...]  # (key, ascending, nulls first)
    func: WindowFunc
    arg: Expr | None
    dtype: pa.DataType
    frame: Frame
    offset: int
    default: Expr | None
    name: str


@dataclass
class WindowSet:
    """The bound window calls of one query block, and the columns they become."""

    calls: list[_Bound] = field(default_factory=list)
    refs: dict[exp.Expr, Column] = field(default_factory=dict)

    def apply(self, source: LogicalNode, fresh: Callable[[], str]) -> LogicalNode:
        """``source`` under a Project of the computed keys and arguments and the Window nodes
        (``source`` itself when there are no windows)."""
        if not self.calls:
            return source
        computed: dict[Expr, Column] = {}

        def column(e: Expr) -> Column:
            if isinstance(e, Column):
                return e
            if e not in computed:
                computed[e] = Column(fresh(), e.dtype)
            return computed[e]

        groups: dict[tuple[tuple[Column, ...], tuple[SortKey, ...]], list[WindowCall]] = {}
        names: dict[tuple[tuple[Column, ...], tuple[SortKey, ...]], list[str]] = {}
        for b in self.calls:
            partition = tuple(dict.fromkeys(column(e) for e in b.partition))
            order = tuple(SortKey(column(e), asc, nulls) for e, asc, nulls in b.order)
            arg = column(b.arg) if b.arg is not None else None
            default = b.default
            if default is not None and not isinstance(default, Literal):
                default = column(default)
            call = WindowCall(b.func, arg, b.dtype, b.frame, b.offset, default)  # type: ignore[arg-type]
            groups.setdefault((partition, order), []).append(call)
            names.setdefault((partition, order), []).append(b.name)
        node = source
        if computed:
            passthrough = tuple(Column(f.name, f.dtype) for f in source.schema)
            node = Project(source, passthrough + tuple(computed),
                           tuple(c.name for c in passthrough) + tuple(
                               c.name for c in computed.values()))
        # Same PARTITION BY next to each other: the second needs no exchange of its own.
        keys = sorted(groups, key=lambda k: [g[0] for g in groups].index(k[0]))
        for key in keys:
            node = Window(node, key[0], key[1], tuple(groups[key]), tuple(names[key]))
        return node


class WindowRefs:
    """Mixin for an expression binder: a window call binds to its Window output column."""

    windows: dict[exp.Expr, Column]

    def bind(self, node: exp.Expr) -> Expr:
        if isinstance(node, exp.Window) and node in self.windows:
            return self.windows[node]
        if not isinstance(node, exp.Window) and any(
                isinstance(n, exp.Window) for n in node.walk(
                    prune=lambda n: isinstance(n, (exp.Subquery, exp.Exists)))):
            # An expression around a window: dispatch by node type here, so that the window
            # inside reaches this method (a PostAggregateBinder would bind it whole first).
            return ExprBinder.bind(self, node)  # type: ignore[arg-type]
        return super().bind(node)  # type: ignore[misc]


class WindowExprBinder(WindowRefs, ExprBinder):
    """The select list / ORDER BY binder of a query without aggregation, window-aware."""


class WindowPostAggregateBinder(WindowRefs, PostAggregateBinder):
    """The select list / ORDER BY binder above an Aggregate, window-aware."""


def bind_windows(qb: QueryBinder, windows: list[exp.Window], binder: ExprBinder) -> WindowSet:
    """Bind ``windows`` with ``binder`` (the query level's binder for window arguments)."""
    out = WindowSet()
    for w in windows:
        bound = _bind_one(qb, w, binder)
        out.calls.append(bound)
        out.refs[w] = Column(bound.name, bound.dtype)
    return out


def _bind_one(qb: QueryBinder, w: exp.Window, binder: ExprBinder) -> _Bound:
    sql = qb.sql
    if w.args.get("alias") is not None:
        raise unsupported(w, sql, "a named window (OVER name, the WINDOW clause)",
                          hint=" (write the window inline: OVER (PARTITION BY ...))")
    func_node = w.this
    if isinstance(func_node, exp.IgnoreNulls):
        raise unsupported(func_node, sql, "IGNORE NULLS in a window function")
    if isinstance(func_node, exp.RespectNulls):  # the default
        func_node = func_node.this
    partition = tuple(binder.bind(e) for e in w.args.get("partition_by") or [])
    order_node = w.args.get("order")
    order = tuple((binder.bind(o.this), not o.args.get("desc"), bool(o.args.get("nulls_first")))
                  for o in (order_node.expressions if order_node is not None else []))
    func, arg, dtype, offset, default = _function(qb, func_node, binder)
    frame = _frame(w, sql, order)
    return _Bound(partition, order, func, arg, dtype, frame, offset, default, qb.fresh("_w"))


def _function(qb: QueryBinder, node: exp.Expr, binder: ExprBinder
              ) -> tuple[WindowFunc, Expr | None, pa.DataType, int, Expr | None]:
    """(function, argument, result type, offset, default) of a window call's function."""
    sql = qb.sql
    name = node.sql_name().lower() if isinstance(node, exp.Func) else node.key
    if type(node) in _SIMPLE:
        return _SIMPLE[type(node)], None, pa.int64(), 1, None
    if isinstance(node, exp.Ntile):
        n = _constant(node.this, sql, "ntile's bucket count", minimum=1)
        return WindowFunc.NTILE, None, pa.int64(), n, None
    if isinstance(node, (exp.Lag, exp.Lead)):
        func = WindowFunc.LAG if isinstance(node, exp.Lag) else WindowFunc.LEAD
        arg = binder.bind(node.this)
        offset_node = node.args.get("offset")
        offset = _constant(offset_node, sql, f"{name}'s offset", 0) if offset_node else 1
        default_node = node.args.get("default")
        if default_node is None:
            return func, arg, arg.dtype, offset, None
        default = binder.bind(default_node)
        common = binder.common([arg, default], node)
        default = T.coerce(default, common)
        return func, T.coerce(arg, common), common, offset, default
    if type(node) in _VALUE:
        arg = binder.bind(node.this)
        return _VALUE[type(node)], arg, arg.dtype, 1, None
    if type(node) in _AGGREGATE:
        func, agg = _AGGREGATE[type(node)]
        inner = node.this
        if isinstance(inner, exp.Distinct):
            raise unsupported(node, sql, f"{name}(DISTINCT ...) over a window")
        if isinstance(node, exp.Count) and (inner is None or isinstance(inner, exp.Star)):
            return WindowFunc.COUNT_STAR, None, pa.int64(), 1, None
        if inner is None or node.expressions:
            raise SqlError(f"{name} takes exactly one argument", *locate(node, sql))
        arg = binder.bind(inner)
        dtype = result_type(agg, [arg.dtype])
        if dtype is None:
            raise SqlError(f"{name}() cannot be applied to {arg.dtype}", *locate(node, sql))
        return func, arg, dtype, 1, None
    raise unsupported(node, sql, f"window function {name}()")


def _constant(node: exp.Expr | None, sql: str, what: str, minimum: int) -> int:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        value = int(node.this)
        if value >= minimum:
            return value
    raise SqlError(f"{what} must be an integer constant >= {minimum}",
                   *(locate(node, sql) if node is not None else (None, None)))


def _frame(w: exp.Window, sql: str, order: tuple[tuple[Expr, bool, bool], ...]) -> Frame:
    spec = w.args.get("spec")
    if spec is None:
        return DEFAULT_FRAME
    kind = str(spec.args.get("kind") or "").upper()
    if kind == "GROUPS":
        raise unsupported(spec, sql, "a GROUPS window frame",
                          hint=" (ROWS and RANGE frames are)")
    if spec.args.get("exclude"):
        raise unsupported(spec, sql, "EXCLUDE in a window frame")
    rows = kind == "ROWS"
    start = _bound(spec.args.get("start"), spec.args.get("start_side"), sql, spec, rows)
    end = (_bound(spec.args.get("end"), spec.args.get("end_side"), sql, spec, rows)
           if spec.args.get("end") is not None else FrameBound(BoundKind.CURRENT_ROW))
    where = locate(spec, sql)
    if start.kind is BoundKind.UNBOUNDED_FOLLOWING:
        raise SqlError("window frame start cannot be UNBOUNDED FOLLOWING", *where)
    if end.kind is BoundKind.UNBOUNDED_PRECEDING:
        raise SqlError("window frame end cannot be UNBOUNDED PRECEDING", *where)
    if _BOUND_ORDER.index(start.kind) > _BOUND_ORDER.index(end.kind):
        raise SqlError(f"window frame starting from {start.kind.value} cannot end with "
                       f"{end.kind.value}", *where)
    if not rows and (start.offset is not None or end.offset is not None):
        if len(order) != 1 or not T.is_numeric(order[0][0].dtype):
            raise SqlError("a RANGE frame with an offset (n PRECEDING/FOLLOWING) needs exactly "
                           "one numeric ORDER BY key", *where)
    return Frame(rows, start, end)


def _bound(value: object, side: object, sql: str, spec: exp.Expr, rows: bool) -> FrameBound:
    side_text = str(side or "").upper()
    if isinstance(value, str):
        if value.upper() == "CURRENT ROW":
            return FrameBound(BoundKind.CURRENT_ROW)
        if value.upper() == "UNBOUNDED":
            return FrameBound(BoundKind.UNBOUNDED_PRECEDING if side_text == "PRECEDING"
                              else BoundKind.UNBOUNDED_FOLLOWING)
    kind = BoundKind.PRECEDING if side_text == "PRECEDING" else BoundKind.FOLLOWING
    if isinstance(value, exp.Literal) and not value.is_string:
        try:
            number: int | float = int(value.this) if rows else float(value.this)
        except ValueError:
            number = -1
        if not rows and float(number).is_integer():
            number = int(number)
        if number >= 0:
            return FrameBound(kind, number)
    what = "ROWS" if rows else "RANGE"
    raise SqlError(f"a {what} frame offset must be a non-negative "
                   f"{'integer ' if rows else ''}constant", *locate(spec, sql))
