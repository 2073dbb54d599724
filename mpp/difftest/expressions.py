"""Expression productions: leaves, arithmetic, conditionals, casts and temporal functions.

Every production fills the ``expr`` site for the kinds of value it can produce (predicates are
in :mod:`mpp.difftest.predicates`, aggregate calls in :mod:`mpp.difftest.aggregates`). Builders write
their SQL as small Trino templates (``:a + :b``) whose placeholders take generated operands,
parenthesised where they are not atomic, so the printed SQL means what the tree means.
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp

from mpp.difftest.grammar import GRAMMAR, KINDS, TYPE_OF_KIND, Env, Generator, Typed
from mpp.difftest.grammar import wider as _wider
from mpp.sql.parse import DIALECT

ATOMIC = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Cast, exp.Func, exp.Paren,
           exp.Case)
_INT_LITERALS = (-3, -1, 0, 1, 2, 3, 5, 7, 10, 20)
_BIGINT_LITERALS = (3_000_000_000, -2_147_483_649)  # Trino types these BIGINT
_DOUBLE_LITERALS = ("2.5E0", "-1.25E0", "0E0", "1E0", "7.75E0", "-10E0")
_STRING_LITERALS = ("a", "b", "B", "", "ab", "é", "zz", "a_c")
DATES = ("2024-01-31", "2024-02-29", "2024-03-01", "2024-03-15", "2024-01-20")
_TIMESTAMPS = ("2024-02-29 12:00:00", "2024-03-01 00:00:00", "2024-02-10 06:30:00.5")
_DATE_UNITS = ("day", "week", "month", "quarter", "year")
_TIME_UNITS = ("second", "minute", "hour")


@functools.cache
def _template(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read=DIALECT)


def sql(text: str, **args: exp.Expr) -> exp.Expr:
    """The Trino template ``text`` with each ``:name`` replaced by ``args[name]``."""
    wrapped = {k: v if isinstance(v, ATOMIC) else exp.paren(v, copy=False)
               for k, v in args.items()}
    return exp.replace_placeholders(_template(text).copy(), **wrapped)


def expr(gen: Generator, env: Env, kind: str) -> Typed:
    """A generated expression of ``kind`` over ``env``."""
    return gen.run("expr", env, kind, accept=lambda p: (
        kind in p.kinds and (p.leaf or env.depth > 0)
        and (not p.aggregate or env.agg_input is not None)))


def aggregate(gen: Generator, env: Env, kind: str) -> Typed:
    """An aggregate call producing ``kind`` over ``env``'s aggregate input."""
    return gen.run("expr", env, kind, accept=lambda p: p.aggregate and kind in p.kinds)


def predicate(gen: Generator, env: Env) -> exp.Expr:
    """A generated boolean expression (TRUE, FALSE or NULL per row)."""
    return expr(gen, env, "bool").node


def literal(gen: Generator, kind: str) -> Typed:
    """A literal of ``kind`` (ints are INTEGER literals, doubles written with an exponent
    so that Trino, mpp and DuckDB all read them as DOUBLE)."""
    if kind == "int":
        value = gen.pick(_BIGINT_LITERALS if gen.chance("bigint_literal") else _INT_LITERALS)
        node: exp.Expr = exp.Literal.number(abs(value))
        return Typed(node if value >= 0 else sql("-:a", a=node),
                     "integer" if -(2**31) <= value < 2**31 else "bigint")
    if kind == "double":
        text = gen.pick(_DOUBLE_LITERALS)
        node = exp.Literal.number(text.lstrip("-"))
        return Typed(sql("-:a", a=node) if text.startswith("-") else node, "double")
    if kind == "string":
        return Typed(exp.Literal.string(gen.pick(_STRING_LITERALS)), "varchar")
    if kind == "date":
        return Typed(exp.cast(exp.Literal.string(gen.pick(DATES)), "date"), "date")
    if kind == "timestamp":
        return Typed(exp.cast(exp.Literal.string(gen.pick(_TIMESTAMPS)), "timestamp"),
                     "timestamp")
    return Typed(exp.true() if gen.rng.random() < 0.5 else exp.false(), "boolean")


# --- leaves ---------------------------------------------------------------------------------

@GRAMMAR.production("expr", 8, kinds=KINDS, leaf=True)
def column(gen: Generator, env: Env, kind: str) -> Typed | None:
    """A column in scope (or a GROUP BY key above an aggregate)."""
    found = env.of_kind(kind)
    if not found:
        return None
    pick = gen.pick(found)
    node = pick.node.copy()
    if isinstance(node, exp.Column):
        if node.sql() in env.bare and gen.chance("unqualified_column"):
            node = exp.column(node.name)
        if gen.chance("uppercase_name"):  # unquoted names fold to lower case
            node = exp.column(node.name.upper(), table=node.table.upper() or None)
        elif gen.chance("quoted_name"):
            node = exp.column(node.name, table=node.table or None, quoted=True)
    return Typed(node, pick.type)


GRAMMAR.option("unqualified_column", 0.3)
GRAMMAR.option("bigint_literal", 0.03)
GRAMMAR.option("uppercase_name", 0.03)
GRAMMAR.option("quoted_name", 0.03)


def _named_column(gen: Generator, env: Env, name: str) -> Typed | None:
    found = [t for t in env.leaves if isinstance(t.node, exp.Column) and t.node.name == name]
    return Typed(gen.pick(found).node.copy(), "double") if found else None


@GRAMMAR.production("expr", 3, kinds=("double",), leaf=True, flag="negative_zero")
def negative_zero_column(gen: Generator, env: Env, kind: str) -> Typed | None:
    """The column of -0.0 and 0.0 (issue 12: they group, join and distinct apart)."""
    return _named_column(gen, env, "dz")


@GRAMMAR.production("expr", 3, kinds=("double",), leaf=True, flag="nan")
def nan_column(gen: Generator, env: Env, kind: str) -> Typed | None:
    """The column of NaN and infinities."""
    return _named_column(gen, env, "dn")


@GRAMMAR.production("expr", 2, kinds=KINDS, leaf=True, name="literal")
def _literal(gen: Generator, env: Env, kind: str) -> Typed:
    return literal(gen, kind)


@GRAMMAR.production("expr", 0.3, kinds=KINDS, leaf=True)
def typed_null(gen: Generator, env: Env, kind: str) -> Typed:
    """CAST(NULL AS type): NULL of a known type."""
    t = TYPE_OF_KIND[kind]
    return Typed(exp.cast(exp.null(), t), t)


@GRAMMAR.production("expr", 0.3, kinds=("bool",), leaf=True)
def null_predicate(gen: Generator, env: Env, kind: str) -> Typed:
    """A bare NULL where a condition is expected."""
    return Typed(exp.null(), "boolean")


# --- arithmetic -----------------------------------------------------------------------------

@GRAMMAR.production("expr", 2, kinds=("int", "double"))
def arithmetic(gen: Generator, env: Env, kind: str) -> Typed:
    """a + b, a - b, a * b (integers widen to the wider operand, as in Trino)."""
    a = expr(gen, env.deeper(), kind)
    b_kind = kind if kind == "int" else gen.pick(("int", "double"))
    b = expr(gen, env.deeper(), b_kind) if gen.rng.random() < 0.6 else literal(gen, b_kind)
    op = gen.pick((":a + :b", ":a - :b", ":a * :b"))
    return Typed(sql(op, a=a.node, b=b.node), _wider(a.type, b.type))


@GRAMMAR.production("expr", 1, kinds=("int", "double"))
def divide(gen: Generator, env: Env, kind: str) -> Typed:
    """a / c and a % c by a non-zero constant (integer division truncates, as in Trino)."""
    a = expr(gen, env.deeper(), kind)
    c = gen.pick(("2", "3", "-4", "7") if kind == "int" else ("2E0", "-0.5E0", "3E0"))
    divisor = exp.Literal.number(c.lstrip("-"))
    if c.startswith("-"):
        divisor = sql("-:a", a=divisor)
    op = gen.pick((":a / :b", ":a % :b"))
    return Typed(sql(op, a=a.node, b=divisor), _wider(a.type, "integer" if kind == "int"
                                                          else "double"))


@GRAMMAR.production("expr", 0.3, kinds=("double",), flag="nan")
def divide_by_column(gen: Generator, env: Env, kind: str) -> Typed:
    """a / b of doubles: 0/0 is NaN and x/0 is Infinity (NaN semantics differ in DuckDB)."""
    a, b = expr(gen, env.deeper(), "double"), expr(gen, env.deeper(), "double")
    return Typed(sql(":a / :b", a=a.node, b=b.node), "double")


@GRAMMAR.production("expr", 0.5, kinds=("int", "double"))
def negate(gen: Generator, env: Env, kind: str) -> Typed:
    """-a."""
    a = expr(gen, env.deeper(), kind)
    return Typed(sql("-:a", a=a.node), a.type)


# --- conditionals ---------------------------------------------------------------------------

def _branches(gen: Generator, env: Env, kind: str, n: int) -> list[Typed]:
    out = []
    for _ in range(n):
        out.append(expr(gen, env.deeper(), kind) if gen.rng.random() < 0.7
                   else literal(gen, kind))
    return out


def _common(values: list[Typed]) -> str:
    t = values[0].type
    for v in values[1:]:
        t = _wider(t, v.type)
    return t


@GRAMMAR.production("expr", 1, kinds=KINDS)
def case_searched(gen: Generator, env: Env, kind: str) -> Typed:
    """CASE WHEN p THEN a [WHEN q THEN b] [ELSE c] END (a NULL condition is not true)."""
    values = _branches(gen, env, kind, gen.pick((1, 2)))
    ifs = [exp.If(this=predicate(gen, env.deeper()), true=v.node) for v in values]
    default = _branches(gen, env, kind, 1)[0] if gen.rng.random() < 0.6 else None
    node = exp.Case(ifs=ifs, default=default.node if default else None)
    return Typed(node, _common(values + ([default] if default else [])))


@GRAMMAR.production("expr", 0.5, kinds=KINDS)
def case_simple(gen: Generator, env: Env, kind: str) -> Typed:
    """CASE x WHEN v THEN a ... END: x = v, so a NULL x matches nothing."""
    operand_kind = gen.pick(("int", "string", "date"))
    operand = expr(gen, env.deeper(), operand_kind)
    values = _branches(gen, env, kind, gen.pick((1, 2)))
    ifs = [exp.If(this=literal(gen, operand_kind).node, true=v.node) for v in values]
    default = _branches(gen, env, kind, 1)[0] if gen.rng.random() < 0.5 else None
    node = exp.Case(this=operand.node, ifs=ifs, default=default.node if default else None)
    return Typed(node, _common(values + ([default] if default else [])))


@GRAMMAR.production("expr", 0.5, kinds=KINDS, name="if")
def _if(gen: Generator, env: Env, kind: str) -> Typed:
    """IF(p, a[, b])."""
    values = _branches(gen, env, kind, gen.pick((1, 2)))
    node = exp.If(this=predicate(gen, env.deeper()), true=values[0].node,
                  false=values[1].node if len(values) > 1 else None)
    return Typed(node, _common(values))


@GRAMMAR.production("expr", 0.8, kinds=KINDS)
def coalesce(gen: Generator, env: Env, kind: str) -> Typed:
    """coalesce(a, b[, c]): the first non-NULL argument."""
    values = _branches(gen, env, kind, gen.pick((2, 2, 3)))
    node = exp.Coalesce(this=values[0].node, expressions=[v.node for v in values[1:]])
    return Typed(node, _common(values))


# --- casts and temporal functions -----------------------------------------------------------

@GRAMMAR.production("expr", 0.7, kinds=("int", "double"))
def cast_number(gen: Generator, env: Env, kind: str) -> Typed:
    """CAST between numbers: ints widen, doubles round half away from zero into integers."""
    if kind == "double":
        return Typed(exp.cast(expr(gen, env.deeper(), "int").node, "double"), "double")
    source = expr(gen, env.deeper(), gen.pick(("int", "double")))
    target = gen.pick(("bigint", "integer"))
    if target == "integer" and "branch_errors" not in gen.flags and _has_bigint_literal(source):
        # CAST(3000000000 AS integer) fails; in a CASE branch not taken, mpp evaluated it
        # (found by difftest, fixed: branches are evaluated lazily): only with the flag.
        target = "bigint"
    return Typed(exp.cast(source.node, target), target)


def _has_bigint_literal(typed: Typed) -> bool:
    return any(lit.is_int and abs(int(lit.this)) >= 2**31
               for lit in typed.node.find_all(exp.Literal))


@GRAMMAR.production("expr", 0.8, kinds=("int",), flag="branch_errors")
def failing_branch(gen: Generator, env: Env, kind: str) -> Typed:
    """IF(p, CAST(3000000000 AS integer), x): fails only for the rows where p holds."""
    overflow = sql("CAST(3000000000 AS integer)")
    value = expr(gen, env.deeper(), "int")
    return Typed(exp.If(this=predicate(gen, env.deeper()), true=overflow, false=value.node),
                 _wider("integer", value.type))


@GRAMMAR.production("expr", 0.6, kinds=("string",))
def cast_varchar(gen: Generator, env: Env, kind: str) -> Typed:
    """CAST(x AS varchar) of a number, date, timestamp or boolean (Trino's text of each)."""
    source = expr(gen, env.deeper(), gen.pick(("int", "double", "date", "timestamp", "bool")))
    return Typed(exp.cast(source.node, "varchar"), "varchar")


@GRAMMAR.production("expr", 0.5, kinds=("date", "timestamp"))
def cast_temporal(gen: Generator, env: Env, kind: str) -> Typed:
    """CAST(timestamp AS date) and CAST(date AS timestamp)."""
    source = expr(gen, env.deeper(), "timestamp" if kind == "date" else "date")
    return Typed(exp.cast(source.node, kind), TYPE_OF_KIND[kind])


@GRAMMAR.production("expr", 0.8, kinds=("date", "timestamp"))
def date_trunc(gen: Generator, env: Env, kind: str) -> Typed:
    """date_trunc(unit, x): a date stays a date; weeks start on Monday."""
    units = _DATE_UNITS + (_TIME_UNITS if kind == "timestamp" else ())
    source = expr(gen, env.deeper(), kind)
    node = sql(f"date_trunc('{gen.pick(units)}', :a)", a=source.node)
    return Typed(node, source.type)


@GRAMMAR.production("expr", 0.6, kinds=("int",))
def date_diff(gen: Generator, env: Env, kind: str) -> Typed:
    """date_diff(unit, a, b): whole units elapsed (time units only between timestamps)."""
    source_kind = gen.pick(("date", "timestamp"))
    a, b = expr(gen, env.deeper(), source_kind), expr(gen, env.deeper(), source_kind)
    units = _DATE_UNITS + (_TIME_UNITS if source_kind == "timestamp" else ())
    node = sql(f"date_diff('{gen.pick(units)}', :a, :b)", a=a.node, b=b.node)
    return Typed(node, "bigint")


def some_kind(gen: Generator, env: Env) -> str:
    """A kind to produce: mostly one the scope has columns of."""
    present = sorted({t.kind for t in env.leaves})
    return gen.pick(present) if present and gen.rng.random() < 0.85 else gen.pick(KINDS)
