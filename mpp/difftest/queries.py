"""Query productions: query blocks, FROM items, joins, and the shapes of a select list.

A query block is generated top-down: CTEs, a FROM item, up to two joins (keys and ON in
:mod:`mpp.difftest.joins`), WHERE, a shape (plain, star, DISTINCT, grouped or global aggregate,
with HAVING), then ORDER BY/LIMIT (:mod:`mpp.difftest.ordering`). Every output of a nested block
(subquery, CTE) is aliased ``c<i>`` with its type known, so the block around it can refer to it
like a table's column.

``fact``, the largest table, is scanned at most once per block, which keeps runs short (a
self-join on its skewed key squares 40% of its rows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sqlglot import exp

from mpp.difftest import aggregates, predicates  # noqa: F401 (they register productions)
from mpp.difftest.data import SUM_ONLY
from mpp.difftest.expressions import aggregate, expr, predicate, some_kind
from mpp.difftest.grammar import GRAMMAR, Env, Generator, Typed
from mpp.difftest.joins import on_condition
from mpp.difftest.ordering import order_and_limit

LARGE_TABLES = ("fact",)


@dataclass(frozen=True, slots=True)
class Relation:
    """A FROM item in scope: its alias, its columns (name, SQL type) and whether ``alias.*``
    would also expose columns the generator may not use (gated ones)."""

    alias: str
    columns: tuple[tuple[str, str], ...]
    hidden: bool = False

    def typed(self) -> list[Typed]:
        """The columns as qualified column expressions."""
        return [Typed(exp.column(c, table=self.alias), t, c in SUM_ONLY)
                for c, t in self.columns]


@dataclass(frozen=True, slots=True)
class Block:
    """A generated query block and its output columns (name, SQL type)."""

    select: exp.Select
    outputs: tuple[tuple[str, str], ...]


@dataclass
class BlockState:
    """What the block being generated has so far."""

    depth: int
    top: bool
    ctes: dict[str, tuple[tuple[str, str], ...]]
    relations: list[Relation] = field(default_factory=list)
    large_used: bool = False

    def columns(self) -> tuple[Typed, ...]:
        """Every column of every relation in scope."""
        return tuple(t for r in self.relations for t in r.typed())


def generate_query(gen: Generator) -> exp.Select:
    """One top-level query."""
    return query(gen, depth=2, ctes={}, top=True).select


def query(gen: Generator, depth: int, ctes: Mapping[str, tuple[tuple[str, str], ...]],
          top: bool) -> Block:
    """A query block (nesting ``depth`` more levels of subqueries and CTEs at most)."""
    state = BlockState(depth, top, dict(ctes))
    select = exp.Select()
    sums = gen.used["sum_big"]
    if depth > 0 and gen.chance("cte"):
        _with(gen, state, select)
    source = gen.run("from", state)
    select.from_(source, copy=False)
    for option in ("join", "second_join"):
        if gen.chance(option):
            with contextlib.suppress(LookupError):  # no key to join the next item on
                select.join(gen.run("join", state), copy=False)
    env = Env.of(state.columns(), 2)
    if gen.chance("where"):
        select.where(predicate(gen, env), copy=False)
    outputs = gen.run("shape", state, select,
                      accept=lambda p: top or p.name != "shape_star")
    # No LIMIT over an overflowing sum (see _aggregates).
    order_and_limit(gen, state.top, select, outputs, Env.of(state.columns(), 1),
                    limit_ok=gen.used["sum_big"] == sums)
    return Block(select, tuple((f"c{i}", t.type) for i, t in enumerate(outputs)))


def _with(gen: Generator, state: BlockState, select: exp.Select) -> None:
    for _ in range(gen.pick((1, 1, 2))):
        name = gen.fresh("w")
        block = query(gen, state.depth - 1, state.ctes, top=False)
        select.with_(name, as_=block.select, copy=False)
        state.ctes[name] = block.outputs


# --- FROM items -----------------------------------------------------------------------------

def _add(state: BlockState, relation: Relation) -> Relation:
    state.relations.append(relation)
    return relation


@GRAMMAR.production("from", 5)
def from_table(gen: Generator, state: BlockState) -> exp.Expr | None:
    """A catalog table."""
    names = [n for n in gen.tables if not (state.large_used and n in LARGE_TABLES)]
    if not names:
        return None
    name = gen.pick(sorted(names))
    usable = tuple(gen.tables[name])
    state.large_used = state.large_used or name in LARGE_TABLES
    if all(r.alias != name for r in state.relations) and gen.chance("table_without_alias"):
        _add(state, Relation(name, usable, hidden=name in gen.hidden))
        return exp.to_table(name)
    alias = gen.fresh("t")
    _add(state, Relation(alias, usable, hidden=name in gen.hidden))
    return exp.to_table(name).as_(alias)


@GRAMMAR.production("from", 1.5)
def from_subquery(gen: Generator, state: BlockState) -> exp.Expr | None:
    """(SELECT ...) AS s: a nested block."""
    if state.depth <= 0:
        return None
    block = query(gen, state.depth - 1, state.ctes, top=False)
    alias = gen.fresh("s")
    _add(state, Relation(alias, block.outputs))
    return block.select.subquery(alias, copy=False)


@GRAMMAR.production("from", 2)
def from_cte(gen: Generator, state: BlockState) -> exp.Expr | None:
    """A WITH query by name (possibly the second reference to it)."""
    if not state.ctes:
        return None
    name = gen.pick(sorted(state.ctes))
    seen = [n for n in sorted(state.ctes) if any(r.alias.startswith(f"{n}_")
                                                   for r in state.relations)]
    if seen and gen.chance("cte_reuse"):
        name = gen.pick(seen)
    alias = gen.fresh(f"{name}_")
    _add(state, Relation(alias, state.ctes[name]))
    return exp.to_table(name).as_(alias)


GRAMMAR.option("cte", 0.25)
GRAMMAR.option("table_without_alias", 0.1)
GRAMMAR.option("cte_reuse", 0.5)
GRAMMAR.option("join", 0.55)
GRAMMAR.option("second_join", 0.25)
GRAMMAR.option("where", 0.55)


# --- joins ----------------------------------------------------------------------------------

def _join(gen: Generator, state: BlockState, side: str | None) -> exp.Expr | None:
    left = [t for t in state.columns() if not t.sum_only]
    large_used = state.large_used
    source = gen.run("from", state)
    right = [t for t in state.relations[-1].typed() if not t.sum_only]
    try:
        on = on_condition(gen, left, right)
    except LookupError:  # nothing on the right to join on: forget the item
        state.relations.pop()
        state.large_used = large_used
        return None
    return exp.Join(this=source, side=side, on=on)


@GRAMMAR.production("join", 3)
def join_inner(gen: Generator, state: BlockState) -> exp.Expr | None:
    """[INNER] JOIN ... ON ..."""
    return _join(gen, state, None)


@GRAMMAR.production("join", 2)
def join_left(gen: Generator, state: BlockState) -> exp.Expr | None:
    """LEFT JOIN ... ON ... (unmatched left rows get NULLs)."""
    return _join(gen, state, "LEFT")


# --- shapes ---------------------------------------------------------------------------------

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
