"""Select-list productions: the shape of a block's outputs.

Plain expressions, ``*``, SELECT DISTINCT, GROUP BY (by position or expression, computed and
unselected keys) with aggregates and HAVING, and global aggregates. Each returns the block's
outputs as typed expressions, in select-list order.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from mpp.difftest.blocks import BlockState
from mpp.difftest.expressions import aggregate, expr, predicate, some_kind
from mpp.difftest.grammar import GRAMMAR, Env, Generator, Typed

GRAMMAR.option("unaliased_item", 0.15)
GRAMMAR.option("group_key_computed", 0.3)
GRAMMAR.option("group_key_hidden", 0.15)
GRAMMAR.option("having", 0.4)
GRAMMAR.option("distinct_aggregate", 0.1)


def _items(gen: Generator, state: BlockState, select: exp.Select, items: list[Typed]) -> None:
    for i, item in enumerate(items):
        if state.top and gen.chance("unaliased_item"):
            select.select(item.node, copy=False)
        else:
            select.select(exp.alias_(item.node, f"c{i}"), copy=False)


@GRAMMAR.production("shape", 3)
def shape_plain(gen: Generator, state: BlockState, select: exp.Select) -> list[Typed]:
    """SELECT expressions."""
    env = Env.of(state.columns(), gen.pick((0, 1, 2)))
    items = [expr(gen, env, some_kind(gen, env)) for _ in range(gen.pick((1, 2, 3, 4)))]
    _items(gen, state, select, items)
    return items


@GRAMMAR.production("shape", 0.7)
def shape_star(gen: Generator, state: BlockState, select: exp.Select) -> list[Typed] | None:
    """SELECT * or SELECT t.* (top level only: nested blocks name every output)."""
    usable = [r for r in state.relations if not r.hidden]
    if len(usable) != len(state.relations):
        return None
    if len(usable) > 1 and gen.rng.random() < 0.5:
        rel = gen.pick(usable)
        select.select(exp.Column(this=exp.Star(), table=exp.to_identifier(rel.alias)),
                      copy=False)
        return rel.typed()
    select.select(exp.Star(), copy=False)
    return list(state.columns())


@GRAMMAR.production("shape", 1)
def shape_distinct(gen: Generator, state: BlockState, select: exp.Select) -> list[Typed]:
    """SELECT DISTINCT expressions."""
    env = Env.of(state.columns(), gen.pick((0, 0, 1)))
    items = [expr(gen, env, some_kind(gen, env)) for _ in range(gen.pick((1, 2, 3)))]
    _items(gen, state, select, items)
    select.distinct(copy=False)
    return items


def _aggregates(gen: Generator, state: BlockState, select: exp.Select,
                keys: list[Typed]) -> tuple[Env, list[Typed]]:
    having = gen.chance("having")
    scope = state.columns()
    if having or not state.top:
        # An overflowing sum is only summed in the top block's select list: under HAVING, or
        # in a block whose rows a LIMIT or an outer query may drop, it overflows in Trino and
        # mpp whatever is output, and in the oracle (DuckDB) only where it is output.
        scope = tuple(t for t in scope if not t.sum_only)
    env = Env.of(scope, gen.pick((0, 1, 1, 2)), keys)
    first = aggregate(gen, env, some_kind(gen, Env.of(scope, 0)))
    rest = [expr(gen, env, some_kind(gen, env)) for _ in range(gen.pick((0, 1, 2)))]
    if having:
        select.having(predicate(gen, env), copy=False)
    return env, [first] + rest


@GRAMMAR.production("shape", 3)
def shape_group(gen: Generator, state: BlockState, select: exp.Select) -> list[Typed]:
    """SELECT keys, aggregates ... GROUP BY keys [HAVING ...]."""
    input_env = Env.of(state.columns(), 1)
    keys: list[Typed] = []
    for _ in range(gen.pick((1, 1, 2, 3))):
        if gen.chance("group_key_computed"):
            key = expr(gen, input_env, some_kind(gen, input_env))
        else:
            key = expr(gen, replace(input_env, depth=0), some_kind(gen, input_env))
        if all(key.node != k.node for k in keys) and key.node.find(exp.Column):
            keys.append(key)
    if not keys:
        keys.append(gen.pick(input_env.leaves))
    _, aggs = _aggregates(gen, state, select, keys)
    if gen.chance("distinct_aggregate"):
        select.distinct(copy=False)
    return gen.run("group_by", state, select, keys, aggs)  # type: ignore[no-any-return]


@GRAMMAR.production("group_by", 1)
def group_by_position(gen: Generator, state: BlockState, select: exp.Select,
                      keys: list[Typed], aggs: list[Typed]) -> list[Typed]:
    """GROUP BY 1, 2: keys named by their place in the select list."""
    items = keys + aggs
    gen.rng.shuffle(items)
    _items(gen, state, select, items)
    select.group_by(*(exp.Literal.number(items.index(k) + 1) for k in keys), copy=False)
    return items


@GRAMMAR.production("group_by", 1)
def group_by_expression(gen: Generator, state: BlockState, select: exp.Select,
                        keys: list[Typed], aggs: list[Typed]) -> list[Typed]:
    """GROUP BY a, b % 3: keys written out (a key need not be selected)."""
    shown = [k for k in keys if not gen.chance("group_key_hidden")]
    items = shown + aggs
    gen.rng.shuffle(items)
    _items(gen, state, select, items)
    select.group_by(*(k.node.copy() for k in keys), copy=False)
    return items


@GRAMMAR.production("shape", 1)
def shape_global_aggregate(gen: Generator, state: BlockState, select: exp.Select
                           ) -> list[Typed]:
    """SELECT aggregates (no GROUP BY: one row, even over no rows)."""
    _, aggs = _aggregates(gen, state, select, [])
    _items(gen, state, select, aggs)
    return aggs
