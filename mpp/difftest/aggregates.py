"""Aggregate-call productions: count(*), count(x), count(DISTINCT x), sum, avg, min, max.

They are leaves of the expressions above an aggregate (select list, HAVING, ORDER BY), whose
arguments are expressions over the aggregate's input.
"""

from __future__ import annotations

from sqlglot import exp

from mpp.difftest.expressions import expr, sql
from mpp.difftest.grammar import GRAMMAR, KINDS, Env, Generator, Typed


@GRAMMAR.production("expr", 1.5, kinds=("int",), leaf=True, aggregate=True)
def count_star(gen: Generator, env: Env, kind: str) -> Typed:
    """count(*)."""
    return Typed(sql("count(*)"), "bigint")


@GRAMMAR.production("expr", 1, kinds=("int",), leaf=True, aggregate=True, name="count")
def _count(gen: Generator, env: Env, kind: str) -> Typed:
    """count(x): the non-NULL values."""
    arg = expr(gen, env.inputs(), gen.pick(KINDS))
    return Typed(sql("count(:a)", a=arg.node), "bigint")


@GRAMMAR.production("expr", 1, kinds=("int",), leaf=True, aggregate=True)
def count_distinct(gen: Generator, env: Env, kind: str) -> Typed:
    """count(DISTINCT x)."""
    arg = expr(gen, env.inputs(), gen.pick(KINDS))
    return Typed(exp.Count(this=exp.Distinct(expressions=[arg.node])), "bigint")


@GRAMMAR.production("expr", 1.5, kinds=("int", "double"), leaf=True, aggregate=True, name="sum")
def _sum(gen: Generator, env: Env, kind: str) -> Typed:
    """sum(x): BIGINT over integers, DOUBLE over doubles; NULL over no values."""
    arg = expr(gen, env.inputs(), kind)
    return Typed(sql("sum(:a)", a=arg.node), "bigint" if kind == "int" else "double")


@GRAMMAR.production("expr", 8, kinds=("int",), leaf=True, aggregate=True, flag="sum_overflow")
def sum_big(gen: Generator, env: Env, kind: str) -> Typed | None:
    """sum() over BIGINT values near 2^62: the sum overflows, which must fail (issue 12)."""
    assert env.agg_input is not None
    found = [t for t in env.agg_input if t.sum_only]
    return Typed(sql("sum(:a)", a=gen.pick(found).node.copy()), "bigint") if found else None


@GRAMMAR.production("expr", 0.8, kinds=("double",), leaf=True, aggregate=True, name="avg")
def _avg(gen: Generator, env: Env, kind: str) -> Typed:
    """avg(x): a DOUBLE for integers and doubles."""
    arg = expr(gen, env.inputs(), gen.pick(("int", "double")))
    return Typed(sql("avg(:a)", a=arg.node), "double")


@GRAMMAR.production("expr", 1.5, kinds=KINDS, leaf=True, aggregate=True)
def min_max(gen: Generator, env: Env, kind: str) -> Typed:
    """min(x), max(x): of the argument's type."""
    arg = expr(gen, env.inputs(), kind)
    return Typed(sql(gen.pick(("min(:a)", "max(:a)")), a=arg.node), arg.type)


# --- the aggregates of issue 14 (docs/aggregates.md) ----------------------------------------
# Not generated: arbitrary and min_by/max_by (any tied row's value is right, so a result cannot
# be compared with DuckDB's), approx_distinct (an estimate).


@GRAMMAR.production("expr", 0.6, kinds=("double",), leaf=True, aggregate=True)
def variance(gen: Generator, env: Env, kind: str) -> Typed:
    """stddev, stddev_samp/_pop, variance, var_samp/_pop: DOUBLE; the sample ones NULL below
    two values."""
    arg = expr(gen, env.inputs(), "int")
    name = gen.pick(("stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop"))
    return Typed(sql(f"{name}(:a)", a=arg.node), "double")


@GRAMMAR.production("expr", 0.6, kinds=("int",), leaf=True, aggregate=True)
def count_if(gen: Generator, env: Env, kind: str) -> Typed:
    """count_if(b): 0 over no rows (DuckDB's NULL is translated by the oracle)."""
    arg = expr(gen, env.inputs(), "bool")
    return Typed(sql("count_if(:a)", a=arg.node), "bigint")


@GRAMMAR.production("expr", 0.6, kinds=("bool",), leaf=True, aggregate=True)
def bool_and_or(gen: Generator, env: Env, kind: str) -> Typed:
    """bool_and / every / bool_or over a boolean."""
    arg = expr(gen, env.inputs(), "bool")
    return Typed(sql(gen.pick(("bool_and(:a)", "every(:a)", "bool_or(:a)")), a=arg.node),
                 "boolean")


@GRAMMAR.production("expr", 0.6, kinds=("int", "double"), leaf=True, aggregate=True)
def sum_avg_distinct(gen: Generator, env: Env, kind: str) -> Typed:
    """sum(DISTINCT x) (integers) and avg(DISTINCT x)."""
    arg = expr(gen, env.inputs(), "int")
    if kind == "int":
        return Typed(exp.Sum(this=exp.Distinct(expressions=[arg.node])), "bigint")
    return Typed(exp.Avg(this=exp.Distinct(expressions=[arg.node])), "double")


@GRAMMAR.production("expr", 0.6, kinds=("int",), leaf=True, aggregate=True)
def filtered(gen: Generator, env: Env, kind: str) -> Typed:
    """count(*) or sum(x) FILTER (WHERE c)."""
    cond = expr(gen, env.inputs(), "bool")
    if gen.pick((True, False)):
        call: exp.Expr = sql("count(*)")
        dtype = "bigint"
    else:
        call = sql("sum(:a)", a=expr(gen, env.inputs(), "int").node)
        dtype = "bigint"
    return Typed(exp.Filter(this=call, expression=exp.Where(this=cond.node)), dtype)
