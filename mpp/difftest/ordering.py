"""ORDER BY and LIMIT productions.

LIMIT (or FETCH FIRST) comes only with an ORDER BY of every output column: a total order up to
identical rows, so both engines must keep the same rows. A key names an output by position,
by alias or by its expression written again; a plain query may also sort by an expression it
does not select (the comparison then checks the order of the keys before it only).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from mpp.difftest.expressions import expr, some_kind
from mpp.difftest.grammar import GRAMMAR, Env, Generator, Typed

GRAMMAR.option("order_by", 0.45)
GRAMMAR.option("limit", 0.5)
GRAMMAR.option("offset", 0.3)
GRAMMAR.option("subquery_limit", 0.12)
GRAMMAR.option("order_desc", 0.4)
GRAMMAR.option("order_nulls", 0.3)
GRAMMAR.option("order_key_hidden", 0.2)


def order_and_limit(gen: Generator, top: bool, select: exp.Select, outputs: Sequence[Typed],
                    env: Env, *, limit_ok: bool = True) -> None:
    """ORDER BY (at the top) and LIMIT/OFFSET (if ``limit_ok``), which needs an ORDER BY of
    every output."""
    if top:
        if not gen.chance("order_by"):
            return
        limit = limit_ok and gen.chance("limit")
    elif limit_ok and gen.chance("subquery_limit"):
        limit = True
    else:
        return
    positions = list(range(len(outputs)))
    gen.rng.shuffle(positions)
    if not limit:
        positions = positions[:gen.rng.randint(1, len(positions))]
    keys = [gen.run("order_key", select, i) for i in positions]
    plain = not select.args.get("distinct") and not select.args.get("group") and not any(
        e.find(exp.AggFunc) for e in select.expressions)
    if not limit and plain and gen.chance("order_key_hidden"):
        hidden = expr(gen, env, some_kind(gen, env)).node
        if hidden.find(exp.Column):  # DuckDB refuses a constant (ORDER BY 0E0)
            keys.append(hidden)
    ordered = []
    for key in keys:
        nulls = gen.chance("order_nulls")
        ordered.append(exp.Ordered(this=key, desc=gen.chance("order_desc"),
                                   nulls_first=nulls and gen.rng.random() < 0.5))
    select.order_by(*ordered, copy=False)
    if limit:
        gen.run("limit", select, gen.pick((0, 1, 2, 5, 10)))
        if gen.chance("offset"):
            select.offset(gen.pick((1, 3)), copy=False)


@GRAMMAR.production("limit", 3)
def limit_clause(gen: Generator, select: exp.Select, count: int) -> bool:
    """LIMIT n."""
    select.limit(count, copy=False)
    return True


@GRAMMAR.production("limit", 1)
def fetch_first(gen: Generator, select: exp.Select, count: int) -> bool:
    """FETCH FIRST n ROWS ONLY (the standard's LIMIT)."""
    select.set("limit", exp.Fetch(direction="FIRST", count=exp.Literal.number(count),
                                  limit_options=exp.LimitOptions(rows=True)))
    return True


def _item(select: exp.Select, position: int) -> exp.Expr | None:
    """The select item at ``position``, or None where a star stands for the outputs."""
    if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
           for e in select.expressions):
        return None
    return select.expressions[position]


@GRAMMAR.production("order_key", 2)
def order_key_position(gen: Generator, select: exp.Select, position: int) -> exp.Expr:
    """ORDER BY 2."""
    return exp.Literal.number(position + 1)


@GRAMMAR.production("order_key", 1)
def order_key_alias(gen: Generator, select: exp.Select, position: int) -> exp.Expr | None:
    """ORDER BY c1: an output's alias."""
    item = _item(select, position)
    if not isinstance(item, exp.Alias):
        return None
    names = [e.alias_or_name for e in select.expressions]
    return exp.column(item.alias) if names.count(item.alias) == 1 else None


@GRAMMAR.production("order_key", 1)
def order_key_expression(gen: Generator, select: exp.Select, position: int) -> exp.Expr | None:
    """ORDER BY the select item's expression written again."""
    item = _item(select, position)
    if item is None or not item.find(exp.Column, exp.AggFunc):
        return None  # a constant: ORDER BY 2 is a position, and DuckDB refuses ORDER BY FALSE
    return item.unalias().copy()
