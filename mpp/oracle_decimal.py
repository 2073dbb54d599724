"""The oracle's DECIMAL repairs: where DuckDB computes Trino's decimal SQL differently.

Both engines type ``1.5`` as DECIMAL(2, 1) and add, subtract, multiply, compare, sum and CAST
decimals exactly, with the same values. They differ where a quotient is made:

* ``a / b`` of decimals is a DECIMAL in Trino, rounded half up to scale max(s1, s2); DuckDB
  divides in DOUBLE;
* ``avg(x)`` of DECIMAL(p, s) is a DECIMAL(p, s) in Trino, the sum divided by the count rounded
  half up; DuckDB's is a DOUBLE.

Both become exact integer arithmetic in DuckDB: the unscaled values (the digits of the
decimal's text without its point, as HUGEINT) are divided rounding half up (``(2|n| + |d|) //
2|d|`` with the sign put back) and the quotient scaled back with a decimal literal
(``* 0.01``). Types are Trino's (:func:`mpp.sql.types.decimal_result`), worked out on the
query before it is rewritten.
"""

from __future__ import annotations

import contextvars

import pyarrow as pa
import sqlglot
from sqlglot import exp

from mpp.sql import types as T

_INTEGERS = exp.DataType.INTEGER_TYPES
# (relation alias, column) -> the expression a derived table (FROM subquery, CTE) computes it
# with: sqlglot types such a column by DuckDB's rules, Trino's type comes from the expression.
_DERIVED: contextvars.ContextVar[dict[tuple[str, str], exp.Expr]] = contextvars.ContextVar(
    "_DERIVED")


def _derived_columns(tree: exp.Expr) -> dict[tuple[str, str], exp.Expr]:
    """Every column of a FROM subquery or CTE, by (its relation's alias, its name)."""
    out: dict[tuple[str, str], exp.Expr] = {}
    for rel in tree.find_all(exp.Subquery, exp.CTE):
        select = rel.this
        if not isinstance(select, exp.Select) or not rel.alias:
            continue
        for projection in select.expressions:
            name = projection.alias_or_name
            if name:
                inner = projection.this if isinstance(projection, exp.Alias) else projection
                out[(rel.alias.lower(), name.lower())] = inner
    return out


def _declared(node: exp.Expr) -> pa.DataType | None:
    """The decimal or integer type sqlglot annotated ``node`` with (from the schema)."""
    dtype = node.type
    if dtype is None:
        return None
    if dtype.this == exp.DataType.Type.DECIMAL and dtype.expressions:
        try:
            return T.arrow_type(dtype)
        except ValueError:
            return None
    if dtype.is_type(*_INTEGERS):
        return pa.int64() if dtype.is_type(exp.DType.BIGINT) else pa.int32()
    return None


def decimal_type(node: exp.Expr) -> pa.DataType | None:
    """Trino's type of ``node`` if it is a decimal or an integer (an integer type is returned
    as is), else None (double, text, unknown)."""
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.this
        if any(c in text for c in "eE"):
            return None
        if "." in text:
            return T.decimal_literal(text)[1]
        return T.integer_literal_type(int(text))
    if isinstance(node, (exp.Paren, exp.Neg)):
        return decimal_type(node.this)
    if isinstance(node, exp.Column) and node.table:
        derived = _DERIVED.get({})
        source = derived.get((node.table.lower(), node.name.lower()))
        if source is not None and source is not node:
            token = _DERIVED.set({k: v for k, v in derived.items() if v is not source})
            try:  # (the entry is dropped while it is resolved: no cycle)
                return decimal_type(source)
            finally:
                _DERIVED.reset(token)
    if isinstance(node, exp.Cast):
        try:
            target = T.arrow_type(node.to)
        except ValueError:
            return None
        return target if target is not None and (T.is_decimal(target) or
                                                 pa.types.is_integer(target)) else None
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)):
        a, b = decimal_type(node.this), decimal_type(node.expression)
        if a is None or b is None:
            return None
        if not (T.is_decimal(a) or T.is_decimal(b)):
            return _declared(node)
        op = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}[type(node)]
        return T.decimal_result(op, a, b)
    if isinstance(node, (exp.Case, exp.If, exp.Coalesce)):
        return _common([decimal_type(v) for v in _values(node)]) or _declared(node)
    if isinstance(node, (exp.Sum, exp.Avg, exp.Min, exp.Max)):
        arg = decimal_type(node.this)
        if arg is None or not T.is_decimal(arg):
            return _declared(node)
        return pa.decimal128(38, arg.scale) if isinstance(node, exp.Sum) else arg
    return _declared(node)


def _values(node: exp.Expr) -> list[exp.Expr]:
    """The expressions whose value a CASE, IF or COALESCE can take."""
    if isinstance(node, exp.Case):
        out = [branch.args["true"] for branch in node.args.get("ifs") or []]
        return out + ([node.args["default"]] if node.args.get("default") else [])
    if isinstance(node, exp.If):
        return [node.args["true"]] + ([node.args["false"]] if node.args.get("false") else [])
    return [node.this, *node.expressions]


def _common(types: list[pa.DataType | None]) -> pa.DataType | None:
    """The decimal all of ``types`` (decimals and integers) meet as; None unless one is a
    decimal and every one is a decimal or an integer."""
    if not any(t is not None and T.is_decimal(t) for t in types) or None in types:
        return None
    out = types[0]
    for t in types[1:]:
        out = T.decimal_common(out, t)
    return out


def _unscaled(sql: str, t: pa.DataType) -> str:
    """DuckDB SQL for the unscaled HUGEINT of ``sql`` (a decimal or integer of type ``t``)."""
    if not T.is_decimal(t):
        return f"CAST({sql} AS HUGEINT)"
    return (f"CAST(REPLACE(CAST(CAST({sql} AS DECIMAL(38, {t.scale})) AS VARCHAR), '.', '') "
            "AS HUGEINT)")


def _quotient(n: str, d: str, scale: int) -> str:
    """DuckDB SQL for ``n / d`` (HUGEINTs) rounded half up, as DECIMAL(38, scale)."""
    q = (f"SIGN({n}) * SIGN({d}) * ((2 * ABS({n}) + ABS({d})) // (2 * ABS({d})))")
    unit = "" if scale == 0 else f" * {'0.' + '0' * (scale - 1) + '1'}"
    return f"(CAST({q} AS DECIMAL(38, 0)){unit})"


def _division(node: exp.Div, result: pa.DataType, a: pa.DataType, b: pa.DataType) -> str:
    left, right = (node.this.sql(dialect="duckdb"), node.expression.sql(dialect="duckdb"))
    sa, sb = (t.scale if T.is_decimal(t) else 0 for t in (a, b))
    n = f"({_unscaled(left, a)} * CAST('1{'0' * (result.scale - sa + sb)}' AS HUGEINT))"
    return f"CAST({_quotient(n, _unscaled(right, b), result.scale)} AS {_sql(result)})"


def _average(node: exp.Avg, arg: pa.DataType) -> str:
    value = node.this.sql(dialect="duckdb")
    total_sql, count_sql = f"SUM({value})", f"COUNT({value})"
    if _window_of(node) is not None:  # avg(x) OVER (...): the sum and count over that window
        total_sql, count_sql = (_over(node, kind(this=node.this.copy()))
                                for kind in (exp.Sum, exp.Count))
    total = _unscaled(total_sql, pa.decimal128(38, arg.scale))
    return (f"CAST({_quotient(total, f'NULLIF({count_sql}, 0)', arg.scale)} AS "
            f"{_sql(arg)})")


def _window_of(node: exp.Expr) -> exp.Window | None:
    """The window ``node`` is the function of (``avg(x) OVER (...)``), if any."""
    parent = node.parent
    return parent if isinstance(parent, exp.Window) and parent.this is node else None


def _over(node: exp.Expr, call: exp.Expr) -> str:
    """DuckDB SQL for ``call`` over the window ``node`` is the function of."""
    window = _window_of(node)
    assert window is not None
    copy = window.copy()
    copy.set("this", call)
    return copy.sql(dialect="duckdb")


def _sql(t: pa.DataType) -> str:
    return f"DECIMAL({t.precision}, {t.scale})"


def repair_decimals(tree: exp.Expr) -> exp.Expr:
    """``tree`` (typed by sqlglot against the schema) with every decimal division and avg of
    decimals rewritten as DuckDB SQL computing Trino's value (see the module doc)."""
    token = _DERIVED.set(_derived_columns(tree))
    try:
        return _repair(tree)
    finally:
        _DERIVED.reset(token)


def _repair(tree: exp.Expr) -> exp.Expr:
    plans: list[tuple[exp.Expr, pa.DataType, tuple[pa.DataType, ...]]] = []
    for node in tree.find_all(exp.Div, exp.Avg):
        result = decimal_type(node)
        if result is None or not T.is_decimal(result):
            continue
        operands = ((node.this, node.expression) if isinstance(node, exp.Div) else (node.this,))
        types = tuple(decimal_type(o) for o in operands)
        if all(t is not None for t in types):
            plans.append((node, result, types))  # type: ignore[arg-type]
    for node, result, types in reversed(plans):  # inner ones first
        if isinstance(node, exp.Div):
            text = _division(node, result, *types)
        else:
            text = _average(node, *types)  # type: ignore[arg-type]
        replacement = sqlglot.parse_one(text, read="duckdb")
        node = _window_of(node) or node  # a window's avg replaces the whole window call
        if node is tree:
            tree = replacement
        else:
            node.replace(replacement)
    return tree
