"""Productions for issue 14's scalar functions, DECIMAL casts and window functions.

Scalar functions are kept where Trino and DuckDB agree or the oracle translates (substr starts
at 1 or later: Trino's substr(s, 0) is '' where DuckDB's is not; mod by a non-zero constant:
Trino fails on a zero divisor where DuckDB returns NULL). Window calls are only those whose
value ties in ORDER BY cannot change: rank, dense_rank, and the aggregates over the whole
partition or the default RANGE frame (peers included); row_number, lag/lead, ntile and ROWS
frames depend on the order of tied rows, which the generator cannot make total.
"""

from __future__ import annotations

from sqlglot import exp

from mpp.difftest.blocks import BlockState
from mpp.difftest.expressions import expr, some_kind, sql
from mpp.difftest.grammar import GRAMMAR, Env, Generator, Typed
from mpp.difftest.shapes import _items

_DECIMALS = ("decimal(18, 3)", "decimal(12, 2)", "decimal(38, 6)")


@GRAMMAR.production("expr", 0.6, kinds=("string",))
def string_function(gen: Generator, env: Env, kind: str) -> Typed:
    """lower, upper, trim, substr (from position 1..3, with or without a length), replace,
    concat and ||."""
    a = expr(gen, env.deeper(), "string")
    form = gen.pick(("lower(:a)", "upper(:a)", "trim(:a)", "substr(:a, 1)", "substr(:a, 2)",
                     "substr(:a, 2, 1)", "substring(:a, 3, 2)", "replace(:a, 'a', 'x')",
                     "concat(:a, :b)", ":a || :b"))
    b = expr(gen, env.deeper(), "string")
    return Typed(sql(form, a=a.node, b=b.node), "varchar")


@GRAMMAR.production("expr", 0.6, kinds=("int",))
def string_measure(gen: Generator, env: Env, kind: str) -> Typed:
    """length(s) and strpos(s, t): BIGINT (strpos 0 when absent)."""
    a = expr(gen, env.deeper(), "string")
    form = gen.pick(("length(:a)", "strpos(:a, 'a')", "strpos(:a, '')"))
    return Typed(sql(form, a=a.node), "bigint")


@GRAMMAR.production("expr", 0.6, kinds=("int", "double"))
def math_function(gen: Generator, env: Env, kind: str) -> Typed:
    """abs, floor, ceil, round, sign and mod by a non-zero constant, of the argument's type."""
    a = expr(gen, env.deeper(), kind)
    forms: tuple[str, ...] = ("abs(:a)", "floor(:a)", "ceil(:a)", "round(:a)", "mod(:a, 3)", "mod(:a, -4)")
    if kind == "double":
        forms += ("round(:a, 1)", "sqrt(abs(:a))")
    return Typed(sql(gen.pick(forms), a=a.node), a.type)


@GRAMMAR.production("expr", 0.5, kinds=("int", "double", "string", "date"))
def greatest_least(gen: Generator, env: Env, kind: str) -> Typed | None:
    """greatest(a, b) / least(a, b): NULL when an argument is NULL (Trino; the oracle
    translates DuckDB's NULL-skipping ones); nullif(a, b)."""
    a, b = expr(gen, env.deeper(), kind), expr(gen, env.deeper(), kind)
    if kind in ("int", "double") and a.type != b.type:
        return None  # mixed widths: the result is the wider type; keep the typing simple
    form = gen.pick(("greatest(:a, :b)", "least(:a, :b)", "nullif(:a, :b)"))
    return Typed(sql(form, a=a.node, b=b.node), a.type)


@GRAMMAR.production("expr", 0.6, kinds=("int",))
def date_part(gen: Generator, env: Env, kind: str) -> Typed:
    """year, month, day, day_of_week, quarter of a date or timestamp; hour of a timestamp."""
    source_kind = gen.pick(("date", "timestamp"))
    a = expr(gen, env.deeper(), source_kind)
    parts: tuple[str, ...] = ("year", "month", "day", "quarter", "day_of_week")
    parts += ("hour",) if source_kind == "timestamp" else ()
    return Typed(sql(f"{gen.pick(parts)}(:a)", a=a.node), "bigint")


@GRAMMAR.production("expr", 0.6, kinds=("double",))
def decimal_roundtrip(gen: Generator, env: Env, kind: str) -> Typed:
    """A DECIMAL value computed and cast back: CAST(CAST(x AS decimal(p, s)) [+ - *] ...
    AS double), rounding half away from zero into the scale as Trino does."""
    a = expr(gen, env.deeper(), gen.pick(("int", "double")))
    target = gen.pick(_DECIMALS)
    inner = sql(f"CAST(:a AS {target})", a=a.node)
    form = gen.pick((":d", ":d + 1.25", ":d * 2.5", ":d - :d", "abs(:d)"))
    return Typed(exp.cast(sql(form, d=inner), "double"), "double")


# --- window functions -------------------------------------------------------------------------

def _window(gen: Generator, env: Env) -> Typed | None:
    """One window call whose value ties in ORDER BY do not change."""
    keys = [t for t in env.leaves if isinstance(t.node, exp.Column)]
    if not keys:
        return None
    parts = [gen.pick(keys).node.copy() for _ in range(gen.pick((0, 1, 1, 2)))]
    order: list[exp.Expr] = []
    if gen.rng.random() < 0.7:
        key = gen.pick(keys).node.copy()
        desc = gen.rng.random() < 0.4
        nulls = gen.pick((None, True, False))
        order.append(exp.Ordered(this=key, desc=desc,
                                 nulls_first=(not desc) if nulls is None else nulls))
    spec = {"partition_by": parts or None,
            "order": exp.Order(expressions=order) if order else None}
    ranking = bool(order) and gen.rng.random() < 0.4
    if ranking:
        call: exp.Expr = sql(gen.pick(("rank()", "dense_rank()")))
        dtype = "bigint"
    else:
        arg_kind = gen.pick(("int", "double", "string", "date"))
        arg = expr(gen, Env(env.leaves, None, 0, env.bare), arg_kind)
        name = gen.pick(("count", "min", "max") + (("sum", "avg") if arg_kind != "string"
                                                   and arg_kind != "date" else ()))
        call = sql(f"{name}(:a)", a=arg.node)
        dtype = {"count": "bigint", "avg": "double"}.get(
            name, ("bigint" if arg_kind == "int" else arg.type) if name == "sum" else arg.type)
        if name == "sum" and arg_kind == "double":
            dtype = "double"
    return Typed(exp.Window(this=call, **spec), dtype)


@GRAMMAR.production("shape", 1)
def shape_window(gen: Generator, state: BlockState, select: exp.Select) -> list[Typed] | None:
    """SELECT expressions and window calls (PARTITION BY 0-2 columns, ORDER BY 0-1)."""
    env = Env.of(state.columns(), gen.pick((0, 1)))
    items = [expr(gen, env, some_kind(gen, env)) for _ in range(gen.pick((0, 1, 2)))]
    for _ in range(gen.pick((1, 1, 2))):
        window = _window(gen, env)
        if window is None:
            return None
        items.insert(gen.rng.randrange(len(items) + 1), window)
    _items(gen, state, select, items)
    return items

