"""Binding the expressions of an aggregate query (GROUP BY, aggregates, HAVING).

Above an Aggregate, an expression may only use group keys and aggregate results.
:class:`PostAggregateBinder` binds each select item, HAVING and ORDER BY expression so that:

* a sub-expression equal to a GROUP BY expression becomes a reference to that group column,
* each aggregate call becomes a reference to an output of the Aggregate (registered in
  :class:`AggregateRegistry`, identical calls shared),
* any other column reference is an error naming the column ("must appear in GROUP BY").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp

from mpp.logical.expr import AggFunc, Column, Expr
from mpp.sql import types as T
from mpp.sql.expressions import AGGREGATES, ExprBinder, contains_aggregate
from mpp.sql.parse import ARITIES, unsupported, written_call
from mpp.sql.scope import Scope

_FUNCS = {exp.Count: AggFunc.COUNT, exp.Sum: AggFunc.SUM, exp.Min: AggFunc.MIN,
          exp.Max: AggFunc.MAX, exp.Avg: AggFunc.AVG}


@dataclass(frozen=True, slots=True)
class AggregateSlot:
    """One distinct aggregate call of the query: its bound argument and output name."""

    func: AggFunc
    arg: Expr | None  # any expression of the Aggregate's input; None for count(*)
    distinct: bool
    dtype: pa.DataType
    name: str
    where: tuple[str, int | None, int | None] = ("", None, None)  # source text, line, column


@dataclass
class AggregateRegistry:
    """The aggregate calls a query uses, each once, named ``_a0``, ``_a1``, ..."""

    slots: list[AggregateSlot] = field(default_factory=list)

    def add(self, func: AggFunc, arg: Expr | None, distinct: bool, dtype: pa.DataType,
            where: tuple[str, int | None, int | None] = ("", None, None)) -> Column:
        """Register ``func([DISTINCT] arg)``, written ``where`` (text, line, column); return
        the column its result will be."""
        for slot in self.slots:
            if (slot.func, slot.arg, slot.distinct) == (func, arg, distinct):
                return Column(slot.name, slot.dtype)
        slot = AggregateSlot(func, arg, distinct, dtype, f"_a{len(self.slots)}", where)
        self.slots.append(slot)
        return Column(slot.name, dtype)


def decimal_result_type(func: AggFunc, arg: pa.DataType) -> pa.DataType:
    """Trino's type of ``func`` over DECIMAL(p, s): sum is DECIMAL(38, s); avg (rounded half
    up) and min/max are DECIMAL(p, s), as Trino's DecimalSumAggregation and
    DecimalAverageAggregation declare."""
    return pa.decimal128(38, arg.scale) if func is AggFunc.SUM else arg


def result_type(func: AggFunc, arg: pa.DataType | None) -> pa.DataType | None:
    """Trino's result type of ``func`` over ``arg`` (None if the type is not accepted)."""
    if func in (AggFunc.COUNT, AggFunc.COUNT_STAR):
        return pa.int64()
    assert arg is not None
    if T.is_decimal(arg):
        return decimal_result_type(func, arg)
    if func is AggFunc.SUM:
        if pa.types.is_integer(arg):
            return pa.int64()
        return pa.float64() if pa.types.is_floating(arg) else None
    if func is AggFunc.AVG:
        return pa.float64() if T.is_numeric(arg) else None
    return arg  # min / max keep the argument's type


class PostAggregateBinder(ExprBinder):
    """Binds expressions evaluated above the Aggregate (select list, HAVING, ORDER BY)."""

    def __init__(self, scope: Scope, sql: str, groups: dict[Expr, Column],
                 registry: AggregateRegistry, clause: str = "the select list"):
        super().__init__(scope, sql, clause)
        self.groups = groups
        self.registry = registry

    def bind(self, node: exp.Expr) -> Expr:
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

    def aggregate_call(self, node: exp.AggFunc) -> Column:
        """Register the aggregate call ``node``; return its output column."""
        name = node.sql_name().lower()
        if type(node) not in AGGREGATES:
            raise unsupported(node, self.sql, f"aggregate function {name}()")
        inner = node.this
        distinct = isinstance(inner, exp.Distinct)
        if distinct:
            if not inner.expressions:
                raise self.error(node, f"{name}(DISTINCT) needs an argument")
            if len(inner.expressions) != 1:
                raise unsupported(node, self.sql, f"{name}(DISTINCT ...) of several arguments")
            inner = inner.expressions[0]
        if node.expressions:
            raise self.error(node, f"{name} takes {ARITIES[name]}")
        func = _FUNCS[type(node)]
        if func is AggFunc.COUNT and (inner is None or isinstance(inner, exp.Star)):
            if distinct:
                raise self.error(node, "count(DISTINCT *) is not valid")
            return self.registry.add(AggFunc.COUNT_STAR, None, False, pa.int64())
        if distinct and func is not AggFunc.COUNT:
            raise unsupported(node, self.sql, f"{name}(DISTINCT ...)",
                              hint=" (only count(DISTINCT x) is)")
        if inner is None:
            raise self.error(node, f"{name}() needs an argument")
        arg = ExprBinder(self.scope, self.sql, "an aggregate function's argument").bind(inner)
        if distinct and pa.types.is_null(arg.dtype):
            # count(DISTINCT NULL): Arrow's distinct count has no kernel for the null type
            # ungrouped and counts the NULL as a value grouped; as a boolean it is just NULL.
            arg = T.coerce(arg, pa.bool_())
        dtype = result_type(func, arg.dtype)
        if dtype is None:
            raise self.error(node, f"{name}() cannot be applied to {arg.dtype}")
        where = (written_call(node, self.sql), *self.where(node))
        return self.registry.add(func, arg, distinct, dtype, where)
