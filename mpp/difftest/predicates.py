"""Predicate productions: comparisons, AND/OR/NOT with NULLs, IS NULL, BETWEEN, IN, LIKE.

Each produces the ``bool`` kind; a condition may be TRUE, FALSE or NULL per row, and every
clause that takes one (WHERE, ON, HAVING, CASE WHEN) must treat NULL as not true.
"""

from __future__ import annotations

import functools

from sqlglot import exp

from mpp.difftest.expressions import ATOMIC, DATES, expr, literal, predicate, sql
from mpp.difftest.grammar import GRAMMAR, KINDS, Env, Generator, Typed

_LIKE_PATTERNS = ("a%", "%b", "_", "%", "a_c", "", "%\\_%", "x\\%y", "%é%", "A%")
LONG_OR_TERMS = 250  # issue 12: an OR chain this long hits RecursionError in mpp


def _comparable(gen: Generator, env: Env) -> tuple[Typed, Typed]:
    """Two expressions that may be compared: the same kind, or int with double, or a date
    with a timestamp."""
    kind = gen.pick(("int", "int", "double", "string", "date", "timestamp", "bool"))
    left = expr(gen, env.deeper(), kind)
    other = {"int": ("int", "int", "double"), "double": ("double", "int"),
             "date": ("date", "date", "timestamp"), "timestamp": ("timestamp", "date")}
    right_kind = gen.pick(other.get(kind, (kind,)))
    right = (literal(gen, right_kind) if gen.rng.random() < 0.5
             else expr(gen, env.deeper(), right_kind))
    return left, right



@GRAMMAR.production("expr", 4, kinds=("bool",))
def compare(gen: Generator, env: Env, kind: str) -> Typed:
    """a op b for op in = <> < <= > >= (booleans: = and <> only)."""
    left, right = _comparable(gen, env)
    ops = ("=", "<>") if left.kind == "bool" else ("=", "<>", "<", "<=", ">", ">=")
    return Typed(sql(f":a {gen.pick(ops)} :b", a=left.node, b=right.node), "boolean")


@GRAMMAR.production("expr", 0.4, kinds=("bool",))
def compare_string_literal(gen: Generator, env: Env, kind: str) -> Typed | None:
    """A date column compared with a string literal, read as a date."""
    found = env.of_kind("date")
    if not found:
        return None
    left = gen.pick(found)
    text = gen.pick(DATES)
    op = gen.pick(("=", "<", ">="))
    return Typed(sql(f":a {op} :b", a=left.node.copy(), b=exp.Literal.string(text)), "boolean")


@GRAMMAR.production("expr", 2, kinds=("bool",))
def and_or(gen: Generator, env: Env, kind: str) -> Typed:
    """p AND q, p OR q (three-valued)."""
    a, b = predicate(gen, env.deeper()), predicate(gen, env.deeper())
    return Typed(sql(gen.pick((":a AND :b", ":a OR :b")), a=a, b=b), "boolean")


@GRAMMAR.production("expr", 0.8, kinds=("bool",), name="not")
def _not(gen: Generator, env: Env, kind: str) -> Typed:
    """NOT p (NOT NULL is NULL)."""
    return Typed(sql("NOT :a", a=predicate(gen, env.deeper())), "boolean")


@GRAMMAR.production("expr", 1.2, kinds=("bool",))
def is_null(gen: Generator, env: Env, kind: str) -> Typed:
    """x IS NULL, x IS NOT NULL."""
    a = expr(gen, env.deeper(), gen.pick(KINDS))
    return Typed(sql(gen.pick((":a IS NULL", ":a IS NOT NULL")), a=a.node), "boolean")


@GRAMMAR.production("expr", 0.8, kinds=("bool",))
def between(gen: Generator, env: Env, kind: str) -> Typed:
    """x [NOT] BETWEEN low AND high."""
    value_kind = gen.pick(("int", "double", "string", "date"))
    a = expr(gen, env.deeper(), value_kind)
    low, high = literal(gen, value_kind), literal(gen, value_kind)  # maybe low > high: empty
    text = gen.pick((":a BETWEEN :b AND :c", ":a NOT BETWEEN :b AND :c"))
    return Typed(sql(text, a=a.node, b=low.node, c=high.node), "boolean")


@GRAMMAR.production("expr", 1, kinds=("bool",))
def in_list(gen: Generator, env: Env, kind: str) -> Typed:
    """x [NOT] IN (v, ...), maybe with NULL in the list (then never FALSE)."""
    value_kind = gen.pick(("int", "string", "date", "double"))
    a = expr(gen, env.deeper(), value_kind)
    items = [literal(gen, value_kind).node for _ in range(gen.pick((1, 2, 3, 4)))]
    if gen.rng.random() < 0.25:
        items.append(exp.null())
    node: exp.Expr = exp.In(this=a.node if isinstance(a.node, ATOMIC) else exp.paren(a.node),
                            expressions=items)
    return Typed(sql("NOT :a", a=node) if gen.rng.random() < 0.3 else node, "boolean")


@GRAMMAR.production("expr", 0.4, kinds=("bool",))
def in_expressions(gen: Generator, env: Env, kind: str) -> Typed:
    """x IN (a, b) with non-constant items: x = a OR x = b."""
    value_kind = gen.pick(("int", "string"))
    a = expr(gen, env.deeper(), value_kind)
    items = [expr(gen, env.deeper(), value_kind).node for _ in range(2)]
    return Typed(exp.In(this=a.node if isinstance(a.node, ATOMIC) else exp.paren(a.node),
                        expressions=items), "boolean")


@GRAMMAR.production("expr", 0.7, kinds=("bool",))
def like(gen: Generator, env: Env, kind: str) -> Typed:
    """x [NOT] LIKE pattern (no escape character: a backslash is itself)."""
    a = expr(gen, env.deeper(), "string")
    pattern = exp.Literal.string(gen.pick(_LIKE_PATTERNS))
    return Typed(sql(gen.pick((":a LIKE :b", ":a NOT LIKE :b")), a=a.node, b=pattern), "boolean")


@GRAMMAR.production("expr", 1, kinds=("bool",), flag="long_or")
def long_or(gen: Generator, env: Env, kind: str) -> Typed | None:
    """x = 0 OR x = 1 OR ... with more than 245 terms (issue 12: RecursionError)."""
    found = env.of_kind("int")
    if not found:
        return None
    a = gen.pick(found).node
    terms = [sql(":a = :b", a=a.copy(), b=exp.Literal.number(i)) for i in range(LONG_OR_TERMS)]
    return Typed(functools.reduce(lambda x, y: exp.Or(this=x, expression=y), terms), "boolean")
