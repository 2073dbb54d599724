"""Binding function calls through the function library (:mod:`mpp.functions`).

Any sqlglot function node (``exp.Anonymous`` for names sqlglot does not know, a class of its
own for those it does: ``exp.Lower``, ``exp.SplitPart``, ...) is bound the same way: its name
as the user wrote it is looked up in the registry, its arguments are taken in the order
written, checked against the function's arity and typing rule, coerced to the parameter
types, and bound as ``Call(name, args)``. A name mpp does not have is an error naming it, with
the closest names mpp has. The few calls with a syntax of their own (an INTERVAL, a unit
keyword, ``LIKE ... ESCAPE``) have handlers here too.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from mpp import functions
from mpp.errors import SqlError
from mpp.functions.strings import like_pattern
from mpp.logical.expr import Call, Expr, Literal
from mpp.sql import folding
from mpp.sql import types as T
from mpp.sql.parse import call_arguments, unsupported, written_name, written_string_argument

if TYPE_CHECKING:
    from mpp.sql.expressions import ExprBinder

# sqlglot classes whose arguments are not in written order, or not all written.
_ARGUMENTS: dict[type, tuple[str, ...]] = {
    exp.RegexpExtract: ("this", "expression", "group"),
    exp.Replace: ("this", "expression", "replacement"),
    exp.StrPosition: ("this", "substr"),
    exp.Trim: ("this", "expression"),
}
# The name of calls written without their own name token (position(... IN ...), trim(BOTH ...)).
_NAMES: dict[type, str] = {exp.StrPosition: "strpos", exp.Trim: "trim", exp.Concat: "concat"}
_TRIM_SIDES = {"LEADING": "ltrim", "TRAILING": "rtrim"}


def call_name(node: exp.Func, sql: str) -> str:
    """The function's name as the user wrote it, lower case (``ceiling``, not ``ceil``)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Trim) and node.args.get("position") in _TRIM_SIDES:
        return _TRIM_SIDES[node.args["position"]]
    written = written_name(node, sql)
    if written is not None and written.replace("_", "").isalnum():
        return written.lower()
    return _NAMES.get(type(node), node.sql_name().lower())


def call_arguments_of(node: exp.Func) -> list[exp.Expr]:
    """The argument expressions of ``node`` in the order they are written."""
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    keys = _ARGUMENTS.get(type(node), tuple(node.arg_types))
    out: list[exp.Expr] = []
    for key in keys:
        value = node.args.get(key)
        values = value if isinstance(value, list) else [value]
        out += [v for v in values if isinstance(v, exp.Expr)]
    return out


def unknown_function(binder: ExprBinder, node: exp.Func, name: str) -> SqlError:
    """The error for a function mpp does not have: its name, where, and the closest names."""
    from mpp.sql.aggregates import AGGREGATE_NAMES
    from mpp.sql.windows import WindowFunc

    others = {*AGGREGATE_NAMES, *(f.value for f in WindowFunc)}
    close = functions.suggestions(name, sorted(others))
    hint = (f" (did you mean {', '.join(close)}?)" if close
            else " (docs/functions.md lists the functions mpp has)")
    return unsupported(node, binder.sql, f"function {name}()", hint=hint)


def bind_function(binder: ExprBinder, node: exp.Func) -> Expr:
    """``name(args)`` through the registry (see the module docstring)."""
    name = call_name(node, binder.sql)
    function = functions.lookup(name)
    if function is None:
        raise binder._unsupported(node)  # (EXISTS, ARRAY, ... are functions to sqlglot)
    nodes = call_arguments_of(node)
    written = call_arguments(node, binder.sql)
    count = written if written is not None else len(nodes)
    low, high = function.arity
    if count < low or (high is not None and count > high):
        raise binder.error(node, f"{name} takes {function.arity_text()}, not {count}")
    if isinstance(node, exp.TimeToStr):  # sqlglot rewrote the format to strftime: use the text
        text = written_string_argument(node, binder.sql, 1)
        if text is not None:
            nodes = [nodes[0], exp.Literal.string(text)]
    args = [binder.bind(a) for a in nodes]
    return apply(binder, node, function, args)


def apply(binder: ExprBinder, node: exp.Expr, function: functions.Function,
          args: list[Expr]) -> Expr:
    """``function(args)`` typed by its rule, the arguments coerced to its parameters."""
    name = function.name
    signature = function.typing([a.dtype for a in args])
    shown = ", ".join(T.type_name(a.dtype) for a in args)
    if signature is None:
        raise binder.error(node, f"function {name}() cannot be applied to ({shown}): "
                                 f"expected {function.usage}")
    params, result = signature
    coerced = []
    for arg, param in zip(args, params, strict=True):
        if T.common_type(arg.dtype, param) != param:
            raise binder.error(node, f"function {name}() cannot be applied to ({shown}): "
                                     f"expected {function.usage}")
        coerced.append(T.coerce(arg, param))
    for position in function.constants:
        if position < len(coerced) and not isinstance(coerced[position], Literal):
            raise unsupported(node, binder.sql, f"{name}() with argument {position + 1} not "
                                                "a constant")
    return Call(name, tuple(coerced), result)


def bind_concat_operator(binder: ExprBinder, node: exp.DPipe) -> Expr:
    """``a || b``: concat(a, b)."""
    function = functions.lookup("concat")
    assert function is not None
    return apply(binder, node, function, [binder.bind(node.this), binder.bind(node.expression)])


def bind_distinct_from(binder: ExprBinder, node: exp.Binary) -> Expr:
    """``a IS [NOT] DISTINCT FROM b``: an equality where NULL is a value (never NULL)."""
    left, right = binder.bind(node.this), binder.bind(node.expression)
    common = T.comparison_type(left, right)
    if common is None:
        raise binder.error(node, f"cannot compare {left.dtype} with {right.dtype} "
                                 "(IS DISTINCT FROM)")
    op = "is_not_distinct_from" if isinstance(node, exp.NullSafeEQ) else "is_distinct_from"
    if pa.types.is_null(common):
        return Literal(op == "is_not_distinct_from", pa.bool_())
    return Call(op, (T.coerce(left, common), T.coerce(right, common)), pa.bool_())


def bind_like_escape(binder: ExprBinder, node: exp.Escape) -> Expr:
    """``x LIKE pattern ESCAPE 'c'``: the escape character makes the next % or _ literal."""
    like = node.this
    if not isinstance(like, exp.Like):
        raise unsupported(node, binder.sql, "ESCAPE outside LIKE")
    bound = binder.like(like)
    escape = binder.bind(node.expression)
    if not isinstance(escape, Literal) or not isinstance(escape.value, str | None):
        raise binder.error(node.expression, "ESCAPE needs a constant string")
    if escape.value is None or not isinstance(bound, Call):
        return Literal(None, pa.bool_())
    try:
        like_pattern(bound.args[1].value, escape.value)  # type: ignore[attr-defined]
    except ValueError as err:
        raise binder.error(node.expression, str(err)) from None
    out = Call("like", bound.args, pa.bool_(), (("escape", escape.value),))
    return Call("not", (out,), pa.bool_()) if like.args.get("negate") else out


def bind_current_date(binder: ExprBinder, node: exp.CurrentDate) -> Expr:
    """``current_date``: the date when the query is bound (one value for the whole query)."""
    return Literal(dt.date.today(), pa.date32())


def bind_date_add(binder: ExprBinder, node: exp.DateAdd) -> Expr:
    """``date_add(unit, amount, value)`` (Trino's argument order)."""
    written = call_arguments(node, binder.sql)
    if written is not None and written != 3:
        raise binder.error(node, f"date_add takes 3 arguments (unit, amount, value), not "
                                 f"{written}")
    unit = node.args.get("unit")
    return date_add(binder, node, unit.name if unit is not None else "",
                    binder.bind(node.expression), binder.bind(node.this))


def date_add(binder: ExprBinder, node: exp.Expr, unit_text: str, amount: Expr,
             value: Expr, at: tuple[int, int] | None = None) -> Expr:
    """``value`` plus ``amount`` units (Trino's month arithmetic), checked and typed; errors
    point at ``at`` (the INTERVAL keyword) if given, else at ``node``."""
    unit = folding.unit_name(unit_text)
    where = at or binder.where(node)
    if pa.types.is_null(value.dtype):
        return Literal(None, pa.timestamp("us"))
    if not T.is_temporal(value.dtype):
        raise SqlError(f"date_add needs a date or timestamp, got {value.dtype}", *where)
    allowed = (folding.DATE_UNITS + ("quarter",) if pa.types.is_date(value.dtype)
               else folding.TIMESTAMP_UNITS + ("quarter", "millisecond"))
    if unit not in allowed:
        raise SqlError(f"unsupported unit {unit!r} for {T.type_name(value.dtype)} "
                       f"(expected one of {', '.join(allowed)})", *where)
    if not (pa.types.is_integer(amount.dtype) or pa.types.is_null(amount.dtype)):
        raise SqlError(f"date_add needs an integer amount, got {amount.dtype}", *where)
    if (isinstance(value, Literal) and isinstance(amount, Literal) and value.value is not None
            and amount.value is not None and unit != "millisecond"):
        # Folded now (as DATE '...' + INTERVAL is), so a filter on it still prunes.
        months = 3 if unit == "quarter" else 1
        shifted = folding.shift(value.value, amount.value * months,
                                "month" if unit == "quarter" else unit)
        return Literal(shifted, value.dtype)
    return Call("date_add", (T.coerce(amount, pa.int64()), value), value.dtype,
                (("unit", unit),))
