"""Binding the expressions of an aggregate query (GROUP BY, aggregates, HAVING).

Above an Aggregate, an expression may only use group keys and aggregate results.
:class:`PostAggregateBinder` binds each select item, HAVING and ORDER BY expression so that:

* a sub-expression equal to a GROUP BY expression becomes a reference to that group column,
* each aggregate call becomes a reference to an output of the Aggregate (registered in
  :class:`AggregateRegistry`, identical calls shared),
* any other column reference is an error naming the column ("must appear in GROUP BY").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from mpp.logical.expr import AggFunc, Column, Expr
from mpp.physical.aggspecs import AGGREGATES, result_type
from mpp.sql import types as T
from mpp.sql.expressions import ExprBinder, contains_aggregate
from mpp.sql.parse import ARITIES, unsupported, written_call, written_name
from mpp.sql.scope import Scope

# The SQL names of the aggregate functions (as sqlglot parses them in Trino's dialect);
# what each computes is its AggSpec in mpp.physical.aggspecs.
_FUNCS = {exp.Count: AggFunc.COUNT, exp.Sum: AggFunc.SUM, exp.Min: AggFunc.MIN,
          exp.Max: AggFunc.MAX, exp.Avg: AggFunc.AVG,
          exp.Stddev: AggFunc.STDDEV_SAMP, exp.StddevSamp: AggFunc.STDDEV_SAMP,
          exp.StddevPop: AggFunc.STDDEV_POP, exp.Variance: AggFunc.VAR_SAMP,
          exp.VariancePop: AggFunc.VAR_POP, exp.CountIf: AggFunc.COUNT_IF,
          exp.LogicalAnd: AggFunc.BOOL_AND, exp.LogicalOr: AggFunc.BOOL_OR,
          exp.AnyValue: AggFunc.ARBITRARY, exp.ArgMin: AggFunc.MIN_BY,
          exp.ArgMax: AggFunc.MAX_BY, exp.ApproxDistinct: AggFunc.APPROX_DISTINCT}

AGGREGATE_NAMES = ("approx_distinct", "arbitrary", "any_value", "avg", "bool_and", "bool_or",
                   "count", "count_if", "every", "max", "max_by", "min", "min_by", "stddev",
                   "stddev_pop", "stddev_samp", "sum", "var_pop", "var_samp", "variance")
"""The aggregate functions' SQL names (for "did you mean" hints)."""


def closest_aggregates(name: str) -> str:
    """A hint naming the aggregate functions spelled closest to ``name`` ("" if none is)."""
    close = difflib.get_close_matches(name.lower(), AGGREGATE_NAMES, n=3, cutoff=0.6)
    return f" (closest aggregate functions: {', '.join(close)})" if close else ""


@dataclass(frozen=True, slots=True)
class AggregateSlot:
    """One distinct aggregate call of the query: its bound argument and output name."""

    func: AggFunc
    arg: Expr | None  # any expression of the Aggregate's input; None for count(*)
    distinct: bool
    dtype: pa.DataType
    name: str
    where: tuple[str, int | None, int | None] = ("", None, None)  # source text, line, column
    by: Expr | None = None  # min_by/max_by's second argument


@dataclass
class AggregateRegistry:
    """The aggregate calls a query uses, each once, named ``_a0``, ``_a1``, ..."""

    slots: list[AggregateSlot] = field(default_factory=list)

    def add(self, func: AggFunc, arg: Expr | None, distinct: bool, dtype: pa.DataType,
            where: tuple[str, int | None, int | None] = ("", None, None),
            by: Expr | None = None) -> Column:
        """Register ``func([DISTINCT] arg[, by])``, written ``where`` (text, line, column);
        return the column its result will be."""
        for slot in self.slots:
            if (slot.func, slot.arg, slot.distinct, slot.by) == (func, arg, distinct, by):
                return Column(slot.name, slot.dtype)
        slot = AggregateSlot(func, arg, distinct, dtype, f"_a{len(self.slots)}", where, by)
        self.slots.append(slot)
        return Column(slot.name, dtype)


class PostAggregateBinder(ExprBinder):
    """Binds expressions evaluated above the Aggregate (select list, HAVING, ORDER BY)."""

    def __init__(self, scope: Scope, sql: str, groups: dict[Expr, Column],
                 registry: AggregateRegistry, clause: str = "the select list"):
        super().__init__(scope, sql, clause)
        self.groups = groups
        self.registry = registry

    def bind(self, node: exp.Expr) -> Expr:
        if isinstance(node, exp.Filter) and isinstance(node.this, exp.AggFunc):
            return self.aggregate_call(node.this, node.expression)
        if isinstance(node, exp.AggFunc):
            return self.aggregate_call(node)
        if not contains_aggregate(node):
            plain = ExprBinder(self.scope, self.sql, self.clause)
            plain.scalars = self.scalars  # scalar subqueries joined in above the Aggregate
            bound = plain.bind(node)
            group = self.groups.get(bound)
            if group is not None:
                return group
            if not bound.columns():
                return bound  # a constant
            if isinstance(node, exp.Column):
                raise self.error(node, f"column {node.sql(dialect='trino')!r} in {self.clause} "
                                       "must appear in GROUP BY or be used in an aggregate "
                                       "function")
        return super().bind(node)

    def aggregate_call(self, node: exp.AggFunc, where: exp.Expr | None = None) -> Column:
        """Register the aggregate call ``node`` (with ``FILTER (WHERE ...)`` clause ``where``);
        return its output column.

        ``f(x) FILTER (WHERE c)`` is ``f(CASE WHEN c THEN x END)``: every aggregate ignores
        NULL arguments (count(*) becomes count(CASE WHEN c THEN 1 END); min_by/max_by mask
        their second argument, as rows with a NULL ``by`` are skipped).
        """
        written = written_name(node, self.sql)
        name = (written or node.sql_name()).lower()
        if type(node) not in _FUNCS or (written is not None and name not in AGGREGATE_NAMES):
            # sqlglot also reads other dialects' names (stdev, arg_min, approx_count_distinct)
            # into these nodes; Trino has none of them.
            if type(node) in _FUNCS:
                from mpp.sql.calls import unknown_function  # (calls imports this module)
                raise unknown_function(self, node, name)
            raise unsupported(node, self.sql, f"aggregate function {name}()",
                              hint=closest_aggregates(name))
        func = _FUNCS[type(node)]
        two = AGGREGATES[func].two_args
        inner = node.this
        distinct = isinstance(inner, exp.Distinct)
        if distinct:
            if not inner.expressions:
                raise self.error(node, f"{name}(DISTINCT) needs an argument")
            if len(inner.expressions) != 1 or two:
                raise unsupported(node, self.sql, f"{name}(DISTINCT ...) of several arguments")
            inner = inner.expressions[0]
        second = node.args.get("expression") if two else None
        if node.expressions or (two and second is None) or (
                not two and node.args.get("expression") is not None):
            raise self.error(node, f"{name} takes {ARITIES.get(name, '1 argument')}")
        if isinstance(node, exp.ApproxDistinct) and node.args.get("accuracy") is not None:
            raise unsupported(node, self.sql, "approx_distinct(x, e) with a maximum standard "
                              "error", hint=" (approx_distinct(x) is: 2.3%)")
        condition = None
        if where is not None:
            if contains_aggregate(where.this):
                raise self.error(where.this, "FILTER (WHERE ...) cannot contain an aggregate")
            condition = where.this
        where_text = (written_call(node, self.sql), *self.where(node))
        if func is AggFunc.COUNT and (inner is None or isinstance(inner, exp.Star)):
            if distinct:
                raise self.error(node, "count(DISTINCT *) is not valid")
            if condition is None:
                return self.registry.add(AggFunc.COUNT_STAR, None, False, pa.int64())
            inner = exp.Literal.number(1)
        if inner is None:
            raise self.error(node, f"{name}() needs an argument")
        if condition is not None and not two:
            inner = exp.Case(ifs=[exp.If(this=condition.copy(), true=inner.copy())])
        elif condition is not None and second is not None:
            second = exp.Case(ifs=[exp.If(this=condition.copy(), true=second.copy())])
        binder = ExprBinder(self.scope, self.sql, "an aggregate function's argument")
        arg = binder.bind(inner)
        by = binder.bind(second) if second is not None else None
        if distinct and pa.types.is_null(arg.dtype):
            # count(DISTINCT NULL): Arrow's distinct count has no kernel for the null type
            # ungrouped and counts the NULL as a value grouped; as a boolean it is just NULL.
            arg = T.coerce(arg, pa.bool_())
        if func in (AggFunc.COUNT_IF, AggFunc.BOOL_AND, AggFunc.BOOL_OR) and pa.types.is_null(
                arg.dtype):
            arg = T.coerce(arg, pa.bool_())
        dtype = result_type(func, [arg.dtype] + ([by.dtype] if by is not None else []))
        if dtype is None:
            raise self.error(node, f"{name}() cannot be applied to {arg.dtype}")
        return self.registry.add(func, arg, distinct, dtype, where_text, by)
