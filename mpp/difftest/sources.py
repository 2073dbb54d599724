"""FROM-item and join productions: tables, subqueries, CTE references, VALUES, and joins.

Keyed joins (inner, left, right, full) take their keys and ON condition from
:mod:`mpp.difftest.joins`. Joins without keys (CROSS JOIN, a comma, ``ON a.x < b.y``) pair every
row with every row, so they are only the first join of a block and only onto a table other than
``fact``; ``fact`` itself is scanned at most once per block (a self-join on its skewed key
squares 40% of its rows).
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from mpp.difftest.blocks import LARGE_TABLES, BlockState, Relation
from mpp.difftest.expressions import literal, predicate, sql
from mpp.difftest.grammar import GRAMMAR, KINDS, TYPE_OF_KIND, Env, Generator, Typed
from mpp.difftest.joins import on_condition

GRAMMAR.option("table_without_alias", 0.1)
GRAMMAR.option("cte_reuse", 0.7)
GRAMMAR.option("column_aliases", 0.2)


def _table(gen: Generator, state: BlockState, small: bool = False) -> exp.Expr | None:
    """A catalog table (never ``fact`` when ``small`` or when the block has scanned it)."""
    names = [n for n in gen.tables if not ((small or state.large_used) and n in LARGE_TABLES)]
    if not names:
        return None
    name = gen.pick(sorted(names))
    usable = tuple(gen.tables[name])
    state.large_used = state.large_used or name in LARGE_TABLES
    if all(r.alias != name for r in state.relations) and gen.chance("table_without_alias"):
        state.add(Relation(name, usable, hidden=name in gen.hidden))
        return exp.to_table(name)
    alias = gen.fresh("t")
    state.add(Relation(alias, usable, hidden=name in gen.hidden))
    return exp.to_table(name).as_(alias)


def _alias(gen: Generator, name: str, outputs: tuple[tuple[str, str], ...]
           ) -> tuple[exp.TableAlias, tuple[tuple[str, str], ...]]:
    """``name``, with column aliases a0, a1, ... now and then (AS s (a0, a1))."""
    if not gen.chance("column_aliases"):
        return exp.TableAlias(this=exp.to_identifier(name)), outputs
    renamed = tuple((f"a{i}", t) for i, (_, t) in enumerate(outputs))
    return (exp.TableAlias(this=exp.to_identifier(name),
                           columns=[exp.to_identifier(n) for n, _ in renamed]), renamed)


@GRAMMAR.production("from", 5)
def from_table(gen: Generator, state: BlockState) -> exp.Expr | None:
    """A catalog table."""
    return _table(gen, state)


@GRAMMAR.production("from", 1.5)
def from_subquery(gen: Generator, state: BlockState) -> exp.Expr | None:
    """(SELECT ...) AS s: a nested block."""
    if state.depth <= 0:
        return None
    block = state.nested(gen)
    alias, columns = _alias(gen, gen.fresh("s"), block.outputs)
    state.add(Relation(alias.name, columns))
    return exp.Subquery(this=block.select, alias=alias)


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
    state.add(Relation(alias, state.ctes[name]))
    return exp.to_table(name).as_(alias)


@GRAMMAR.production("from", 0.6)
def from_values(gen: Generator, state: BlockState) -> exp.Expr:
    """(VALUES (1, 'a'), (NULL, 'b')) AS v (x0, x1): an inline table (each column has a
    value in its first row, so it has a type)."""
    kinds = [gen.pick(KINDS) for _ in range(gen.pick((1, 2, 3)))]
    rows = [exp.Tuple(expressions=[literal(gen, k).node if r == 0 or gen.rng.random() < 0.8
                                   else exp.null() for k in kinds])
            for r in range(gen.pick((1, 2, 3, 5)))]
    alias = gen.fresh("v")
    names = [f"x{i}" for i in range(len(kinds))]
    state.add(Relation(alias, tuple((n, TYPE_OF_KIND[k]) for n, k in zip(names, kinds,
                                                                         strict=True))))
    return exp.Values(expressions=rows, alias=exp.TableAlias(
        this=exp.to_identifier(alias), columns=[exp.to_identifier(n) for n in names]))


GRAMMAR.option("cte", 0.3)
GRAMMAR.option("join", 0.55)
GRAMMAR.option("second_join", 0.25)
GRAMMAR.option("where", 0.55)


# --- joins ----------------------------------------------------------------------------------

def _usable(typed: list[Typed] | tuple[Typed, ...]) -> list[Typed]:
    return [t for t in typed if not t.sum_only]


def _join(gen: Generator, state: BlockState, side: str | None) -> exp.Expr | None:
    left = _usable(state.columns())
    large_used = state.large_used
    source = gen.run("from", state)
    right = _usable(state.relations[-1].typed())
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


@GRAMMAR.production("join", 1.2)
def join_right(gen: Generator, state: BlockState) -> exp.Expr | None:
    """RIGHT JOIN ... ON ... (unmatched right rows get NULLs)."""
    return _join(gen, state, "RIGHT")


@GRAMMAR.production("join", 1)
def join_full(gen: Generator, state: BlockState) -> exp.Expr | None:
    """FULL JOIN ... ON ... (unmatched rows of both sides, each with NULLs)."""
    return _join(gen, state, "FULL")


@GRAMMAR.production("join", 0.6)
def join_cross(gen: Generator, state: BlockState) -> exp.Expr | None:
    """CROSS JOIN t, or FROM a, t: every pair (the first join, onto a small table)."""
    if len(state.relations) != 1:
        return None
    source = _table(gen, state, small=True)
    if source is None:
        return None
    return exp.Join(this=source, kind="CROSS") if gen.rng.random() < 0.5 else exp.Join(
        this=source)


@GRAMMAR.production("join", 0.6)
def join_theta(gen: Generator, state: BlockState) -> exp.Expr | None:
    """JOIN t ON a.x < t.y: no equality between the sides (a nested-loop join; the first
    join, onto a small table). RIGHT and FULL only with ``outer_theta_join``: between two
    single-fragment tables they crashed the planner (found by difftest, fixed)."""
    if len(state.relations) != 1:
        return None
    left = _usable(state.columns())
    source = _table(gen, state, small=True)
    if source is None:
        return None
    right = _usable(state.relations[-1].typed())
    pairs = [(a, b) for a in left for b in right if a.kind == b.kind != "bool"]
    if not pairs:
        state.relations.pop()
        return None
    a, b = gen.pick(pairs)
    on = sql(f":a {gen.pick(('<', '<=', '>', '>=', '<>'))} :b", a=a.node.copy(), b=b.node.copy())
    if gen.chance("on_one_side"):
        scope = Env.of(tuple(left) + tuple(right), 1)  # a bare name must be unique in both
        on = exp.and_(on, predicate(gen, replace(scope, leaves=tuple(right))), copy=False)
    side = gen.pick(("RIGHT", "FULL")) if gen.chance("theta_outer") else gen.pick(
        (None, None, "LEFT"))
    return exp.Join(this=source, side=side, on=on)


GRAMMAR.option("theta_outer", 0.4, flag="outer_theta_join")
