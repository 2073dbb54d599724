"""Query productions: query blocks and set operations of them.

A query block is generated top-down: CTEs, a FROM item and up to two joins
(:mod:`mpp.difftest.sources`), WHERE, a shape (:mod:`mpp.difftest.shapes`: plain, star,
DISTINCT, grouped or global aggregate, with HAVING), then ORDER BY/LIMIT
(:mod:`mpp.difftest.ordering`). Now and then a block is a set operation instead (UNION,
INTERSECT, EXCEPT, each with or without ALL) of a block and a second branch written to match its
columns' kinds. Every output of a nested block (subquery, CTE) is aliased ``c<i>`` with its
type known, so the block around it can refer to it like a table's column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from sqlglot import exp

from mpp.difftest import (  # noqa: F401 (they register)
    aggregates,
    functions,
    predicates,
    shapes,
    sources,
)
from mpp.difftest.blocks import Block, BlockState, Outputs
from mpp.difftest.expressions import expr, predicate
from mpp.difftest.grammar import GRAMMAR, Env, Generator, kind_of, wider
from mpp.difftest.ordering import order_and_limit

GRAMMAR.option("set_operation", 0.12)


def generate_query(gen: Generator) -> exp.Query:
    """One top-level query."""
    return block(gen, 2, {}, True).select


def block(gen: Generator, depth: int, ctes: Mapping[str, Outputs], top: bool) -> Block:
    """A query block, or (where nesting is left) a set operation of two."""
    if depth > 0 and gen.chance("set_operation"):
        return set_operation(gen, depth - 1, ctes, top)
    return query(gen, depth, ctes, top)


def query(gen: Generator, depth: int, ctes: Mapping[str, Outputs], top: bool) -> Block:
    """A SELECT block (nesting ``depth`` more levels of subqueries and CTEs at most)."""
    state = BlockState(depth, top, dict(ctes), block)
    select = exp.Select()
    sums = gen.used["sum_big"]
    if depth > 0 and gen.chance("cte"):
        _with(gen, state, select)
    select.from_(gen.run("from", state), copy=False)
    for option in ("join", "second_join"):
        joins = select.args.get("joins") or []
        if joins and _is_comma(joins[-1]):
            break  # a, b JOIN c ON ... would join b and c first: a is out of its ON's scope
        if gen.chance(option):
            with contextlib.suppress(LookupError):  # no key to join the next item on
                select.join(gen.run("join", state), copy=False)
    if gen.chance("where"):
        select.where(predicate(gen, Env.of(state.columns(), 2)), copy=False)
    outputs = gen.run("shape", state, select,
                      accept=lambda p: top or p.name != "shape_star")
    # No LIMIT over an overflowing sum (see shapes._aggregates).
    order_and_limit(gen, state.top, select, outputs, Env.of(state.columns(), 1),
                    limit_ok=gen.used["sum_big"] == sums)
    return Block(select, tuple((f"c{i}", t.type) for i, t in enumerate(outputs)))


def _is_comma(join: exp.Expr) -> bool:
    return not (join.side or join.kind or join.args.get("on"))


def _with(gen: Generator, state: BlockState, select: exp.Select) -> None:
    for _ in range(gen.pick((1, 1, 2))):
        name = gen.fresh("w")
        nested = state.nested(gen)
        select.with_(name, as_=nested.select, copy=False)
        outputs = nested.outputs
        if gen.chance("column_aliases"):  # WITH w (a0, a1) AS (...)
            outputs = tuple((f"a{i}", t) for i, (_, t) in enumerate(outputs))
            select.args["with_"].expressions[-1].args["alias"].set(
                "columns", [exp.to_identifier(n) for n, _ in outputs])
        state.ctes[name] = outputs


# --- set operations -------------------------------------------------------------------------

def set_operation(gen: Generator, depth: int, ctes: Mapping[str, Outputs], top: bool) -> Block:
    """``first <op> second`` for a set operator; ORDER BY every output, maybe with LIMIT, at
    the top (a total order, so the rows kept are well defined)."""
    first = query(gen, depth, ctes, False)
    second = _branch(gen, depth, ctes, [kind_of(t) for _, t in first.outputs])
    left = first.select
    if left.args.get("order") or left.args.get("limit"):
        left = left.subquery(copy=False)  # (SELECT ... LIMIT n) UNION ...: its own LIMIT
    node = gen.run("set_operator", left, second.select)
    outputs = tuple((name, wider(a, b)) for (name, a), (_, b) in zip(first.outputs,
                                                                     second.outputs,
                                                                     strict=True))
    if top and gen.chance("order_by"):
        keys = list(range(len(outputs)))
        gen.rng.shuffle(keys)
        node = node.order_by(*(exp.Ordered(this=exp.Literal.number(k + 1),
                                           desc=gen.chance("order_desc")) for k in keys),
                             copy=False)
        if gen.chance("limit"):
            node = node.limit(gen.pick((0, 1, 3, 10)), copy=False)
    return Block(node, outputs)


def _branch(gen: Generator, depth: int, ctes: Mapping[str, Outputs],
            kinds: Sequence[str]) -> Block:
    """A SELECT whose outputs have ``kinds``, the second branch of a set operation."""
    state = BlockState(depth, False, dict(ctes), block)
    select = exp.Select().from_(gen.run("from", state), copy=False)
    if gen.chance("join"):
        with contextlib.suppress(LookupError):
            select.join(gen.run("join", state), copy=False)
    env = Env.of(state.columns(), 1)
    if gen.chance("where"):
        select.where(predicate(gen, env), copy=False)
    items = [expr(gen, env, kind) for kind in kinds]
    for i, item in enumerate(items):
        select.select(exp.alias_(item.node, f"c{i}"), copy=False)
    if gen.chance("shape_distinct_branch"):
        select.distinct(copy=False)
    return Block(select, tuple((f"c{i}", t.type) for i, t in enumerate(items)))


GRAMMAR.option("shape_distinct_branch", 0.2)


@GRAMMAR.production("set_operator", 3)
def union_all(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """UNION ALL: the rows of both."""
    return exp.union(first, second, distinct=False, copy=False)


@GRAMMAR.production("set_operator", 2)
def union(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """UNION: the distinct rows of both (NULLs equal)."""
    return exp.union(first, second, distinct=True, copy=False)


@GRAMMAR.production("set_operator", 1)
def intersect(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """INTERSECT: the distinct rows in both."""
    return exp.intersect(first, second, distinct=True, copy=False)


@GRAMMAR.production("set_operator", 0.7)
def intersect_all(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """INTERSECT ALL: a row min(m, n) times."""
    return exp.intersect(first, second, distinct=False, copy=False)


@GRAMMAR.production("set_operator", 1)
def except_(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """EXCEPT: the distinct rows of the first not in the second."""
    return exp.except_(first, second, distinct=True, copy=False)


@GRAMMAR.production("set_operator", 0.7)
def except_all(gen: Generator, first: exp.Query, second: exp.Query) -> exp.Query:
    """EXCEPT ALL: a row m - n times."""
    return exp.except_(first, second, distinct=False, copy=False)
