"""Vectorised evaluation of bound expressions over Arrow tables, with Trino's semantics.

Physical kernels (filter, project, join residuals) call :func:`evaluate` on each partition.
Every operator maps to pyarrow.compute kernels; where Arrow's default differs from Trino, the
difference is handled here and named in a comment:

* integer ``/`` truncates toward zero (Arrow's integer divide does too); ``%`` keeps the sign
  of the dividend (Arrow's ``modulo`` is floor-mod, so it is rebuilt from the division);
  integer overflow and integer division by zero raise (checked kernels), as Trino does; a
  double divided by zero is +-Infinity or NaN, as in Trino (DuckDB gives NULL);
* AND/OR/NOT use three-valued (Kleene) logic; ``x IN (...)`` is NULL when x is NULL, or when
  x is not found and the list holds a NULL;
* CAST of a double to an integer rounds half away from zero (Arrow truncates); CAST of a
  double or real to varchar prints Trino's scientific notation (``1.0E1``, Arrow: ``10``; see
  :func:`trino_float_text`); CAST of a timestamp to varchar prints six fractional digits
  (Trino's timestamp(6) text, which is Arrow's too);
* DECIMAL arithmetic and CASTs from or to DECIMAL have Trino's result types and round half
  up (see :mod:`mpp.logical.decimals`);
* functions (LIKE, substring, date_diff, ...) are kernels of the function library,
  :mod:`mpp.functions`, each with its Trino semantics; CASE, coalesce, AND and OR evaluate
  each branch (term) only over the rows it decides (see :mod:`mpp.logical.lazy`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.errors import SqlError
from mpp.functions import KERNELS, Value
from mpp.functions import as_array as _as_array
from mpp.logical import decimals
from mpp.logical.expr import Call, Column, Expr, Literal
from mpp.logical.lazy import LAZY, needs_laziness

_NULL_BOOL = pa.scalar(None, pa.bool_())


def evaluate(expr: Expr, table: pa.Table, cache: dict[Expr, Value] | None = None
             ) -> pa.ChunkedArray | pa.Array:
    """Evaluate ``expr`` for every row of ``table`` (columns named by unique field names).

    Over no rows nothing is evaluated (Trino never evaluates an expression without a row, so
    ``CAST(3000000000 AS integer)`` over rows a filter removed does not fail).

    ``cache`` (shared by the expressions of one Project over one table) keeps each call's
    value over all of ``table``'s rows, so a subexpression written several times is computed
    once: TPC-H Q1's ``l_extendedprice * (1 - l_discount)`` in two sums. Calls are equal by
    structure (where they were written does not count); the branches of CASE, AND and OR,
    evaluated over the rows they decide, do not use it."""
    if table.num_rows == 0 and isinstance(expr, Call):
        dtype = expr.dtype.value_type if pa.types.is_dictionary(expr.dtype) else expr.dtype
        return pa.array([], dtype)
    try:
        out = _eval(expr, table, cache)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:  # no call the user wrote
        raise SqlError(f"cannot evaluate {expr}: {err}") from None
    return _as_array(out, table.num_rows)


def _eval(expr: Expr, table: pa.Table, cache: dict[Expr, Value] | None = None) -> Value:
    if cache is None or not isinstance(expr, Call):
        return _eval_uncached(expr, table, cache)
    try:
        return cache[expr]
    except KeyError:
        pass
    except TypeError:  # an unhashable literal inside: not cached
        return _eval_uncached(expr, table, cache)
    out = cache[expr] = _eval_uncached(expr, table, cache)
    return out


def _eval_uncached(expr: Expr, table: pa.Table, cache: dict[Expr, Value] | None) -> Value:
    if isinstance(expr, Column):
        if expr.name not in table.column_names:
            raise KeyError(f"column {expr.name!r} not in input {table.column_names}")
        column = table.column(expr.name)
        if pa.types.is_dictionary(column.type):  # not every kernel takes dictionaries (LIKE)
            column = column.cast(column.type.value_type)
        return column
    if isinstance(expr, Literal):
        return pa.scalar(expr.value, type=expr.dtype)
    assert isinstance(expr, Call), expr
    if expr.op in LAZY and table.num_rows and needs_laziness(expr):
        return LAZY[expr.op](expr, table, _eval)  # each branch over the rows it decides
    args = [_eval(a, table, cache) for a in expr.args]
    kernel = ((_DECIMAL_OPS.get(expr.op) if decimals.involved(expr) else None)
              or _OPS.get(expr.op) or KERNELS.get(expr.op))
    if kernel is None:
        raise NotImplementedError(f"evaluate: unknown operator {expr.op!r}")
    try:
        return kernel(expr, args, table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        overflow = _overflow_text(expr, err)
        if overflow is not None:
            raise SqlError(f"{overflow} in {expr.source or expr}", expr.line,
                           expr.column) from None
        if expr.line is None:  # a call the binder inserted (an implicit cast): the
            raise  # innermost enclosing call the user wrote reports it
        raise SqlError(f"cannot evaluate {expr.source}: {err}", expr.line,
                       expr.column) from None


# Trino's words for integer overflow (BigintOperators, IntegerOperators, ...), by operator and
# type: "bigint addition overflow", "integer negation overflow". Arrow's checked kernels say
# only "overflow".
_OVERFLOW_OPS = {"+": "addition", "-": "subtraction", "*": "multiplication", "/": "division",
                 "%": "division", "neg": "negation"}
_INT_NAMES = {8: "tinyint", 16: "smallint", 32: "integer", 64: "bigint"}


def integer_name(t: pa.DataType) -> str:
    """Trino's name of integer type ``t`` (``int32`` -> ``integer``), as its errors use it."""
    return _INT_NAMES.get(t.bit_width, "bigint")


def _overflow_text(expr: Call, err: Exception) -> str | None:
    """Trino's message for an integer overflow in ``expr`` (None for any other error)."""
    if expr.op not in _OVERFLOW_OPS or not _is_int(expr.dtype) or "overflow" not in str(err):
        return None
    return f"{integer_name(expr.dtype)} {_OVERFLOW_OPS[expr.op]} overflow"


def _is_int(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t))


def _divide(call: Call, args: list[Value], n: int) -> Value:
    if pa.types.is_floating(call.dtype):
        return pc.divide(args[0], args[1])  # a double divided by zero is +-Infinity or NaN
    return pc.divide_checked(args[0], args[1])


def _modulo(call: Call, args: list[Value], n: int) -> Value:
    a, b = args
    if _is_int(call.dtype):
        # x % -1 is 0 (as x % 1), also for the smallest integer, whose quotient by -1
        # overflows: Trino (Java's %) and DuckDB give 0, not an error.
        b = pc.if_else(pc.equal(b, -1), pa.scalar(1, call.dtype), b)
    quotient = _divide(call, [a, b], n)
    if not _is_int(call.dtype):
        quotient = pc.trunc(quotient)  # fmod: the sign follows the dividend, as in Trino
    return pc.subtract_checked(a, pc.multiply_checked(b, quotient))


def _in(call: Call, args: list[Value], n: int) -> Value:
    value = _as_array(args[0], n)
    items = [a.as_py() for a in args[1:]]
    known = pa.array([v for v in items if v is not None], type=call.args[0].dtype)
    found = pc.is_in(value, value_set=known)
    if any(v is None for v in items):
        found = pc.or_kleene(found, _NULL_BOOL)  # not found in a list with NULL -> NULL
    return pc.if_else(pc.is_valid(value), found, _NULL_BOOL)


# The magnitudes whose CAST to varchar is known to match Trino's text digit for digit (checked
# against java.text.DecimalFormat on JDK 25, as Trino calls it): every normal real, and a
# double from the smallest normal number up to (not including) 1E16. Beyond 1E16 Trino's
# DecimalFormat takes a double's digits from the JDK's legacy FloatingDecimal, which there may
# print more digits than the shortest (1E23 is 9.999999999999999E22); subnormal numbers differ
# too. mpp refuses those rather than print another text.
_TEXT_RANGE = {32: (1.1754943508222875e-38, math.inf, "normal reals"),
               64: (2.2250738585072014e-308, 1e16, "normal doubles below 1E16")}


def trino_float_text(value: float, bits: int = 64) -> str:
    """Trino's text of a double (``bits`` 64) or real (32): CAST(value AS varchar).

    Trino formats with Java's ``DecimalFormat("0.0###################E0")`` (a real with
    ``"0.0#####E0"``, of the float's shortest digits read back as a double): one digit before
    the point, at least one after, the shortest digits that read back as the same value (a
    real: rounded to seven significant digits) and an exponent without ``+`` or leading
    zeros: ``1.0E1``, ``1.0E-5``, ``1.23456789E7``, ``-2.5E0``; zero is ``0E0`` or ``-0E0``,
    and NaN and the infinities are ``NaN``, ``Infinity``, ``-Infinity``. Raises SqlError
    outside the magnitudes where that is known to be Trino's text (see _TEXT_RANGE).

    >>> trino_float_text(10.0), trino_float_text(0.1, 32)
    ('1.0E1', '1.0E-1')
    """
    if value == 0:
        return "-0E0" if math.copysign(1.0, value) < 0 else "0E0"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    low, high, supported = _TEXT_RANGE[bits]
    if not low <= abs(value) < high:
        kind = "double" if bits == 64 else "real"
        raise SqlError(f"unsupported: CAST({kind} AS varchar) of {value!r}: mpp prints Trino's "
                       f"text of {supported} only (beyond them Trino's digits come from the "
                       "JVM's legacy formatter)")
    if bits == 32:
        # Trino formats Double.parseDouble(Float.toString(f)): the float's shortest digits.
        shortest = abs(float(np.format_float_scientific(np.float32(value), unique=True)))
        if shortest.is_integer() and shortest < 2.0 ** 63:
            # The JDK's legacy FloatingDecimal marks the digits of a whole number below 2^63
            # as inexact, so DecimalFormat rounds a tie at the eighth digit up, not to even.
            whole = int(shortest)
            unit = 10 ** max(len(str(whole)) - 7, 0)
            shortest = float((whole + unit // 2) // unit * unit)
        mantissa, exponent = f"{shortest:.6e}".split("e")  # rounds the exact value half to even
        digits = mantissa.replace(".", "").rstrip("0")
    else:
        # repr is the shortest decimal that reads back as the value (the closest of them).
        digits_tuple, exp10 = Decimal(repr(abs(value))).as_tuple()[1:]
        digits = "".join(map(str, digits_tuple)).rstrip("0")
        exponent = str(len(digits_tuple) - 1 + int(exp10))
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{int(exponent)}"


def _float_to_text(value: Value, bits: int) -> Value:
    """Trino's CAST(double/real AS varchar) of an array or scalar, one Python call per
    distinct value."""
    if isinstance(value, pa.Scalar):
        return pa.scalar(None if not value.is_valid else trino_float_text(value.as_py(), bits),
                         pa.string())
    encoded = pc.dictionary_encode(value)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    out = []
    for chunk in chunks:
        texts = pa.array([trino_float_text(v, bits) for v in chunk.dictionary.to_pylist()],
                         pa.string())
        out.append(pc.take(texts, chunk.indices))
    return pa.chunked_array(out, pa.string()) if isinstance(value, pa.ChunkedArray) else out[0]


def _cast(call: Call, args: list[Value], n: int) -> Value:
    value, source = args[0], call.args[0].dtype
    target = call.dtype
    if pa.types.is_floating(source) and _is_int(target):
        value = pc.round(value, round_mode="half_towards_infinity")  # Trino rounds half away
    if pa.types.is_floating(source) and pa.types.is_string(target):
        return _float_to_text(value, source.bit_width)  # Trino: 1.0E1 (Arrow: 10)
    if pa.types.is_timestamp(source) and pa.types.is_date(target):
        return pc.cast(pc.floor_temporal(value, unit="day"), target, safe=False)
    # Timestamp -> varchar: Arrow prints six fractional digits, as Trino's timestamp(6) does.
    return pc.cast(value, target)


def _binary(kernel: Callable[..., Any]) -> Callable[[Call, list[Value], int], Value]:
    return lambda call, args, n: kernel(args[0], args[1])


def _unary(kernel: Callable[..., Any]) -> Callable[[Call, list[Value], int], Value]:
    return lambda call, args, n: kernel(args[0])


def _nary(kernel: Callable[..., Any]) -> Callable[[Call, list[Value], int], Value]:
    """A binary kernel folded over any number of arguments (n-ary AND/OR chains)."""
    return lambda call, args, n: functools.reduce(kernel, args)


def _between(call: Call, args: list[Value], n: int) -> Value:
    return pc.and_kleene(pc.greater_equal(args[0], args[1]), pc.less_equal(args[0], args[2]))


def _single_row_value(call: Call, args: list[Value], n: int) -> Value:
    """``single_row_value(count, value)``: a scalar subquery's value, from the global
    aggregate over its rows (count, min); more than one row is Trino's error."""
    count = args[0]
    if n and pc.max(count).as_py() is not None and pc.max(count).as_py() > 1:
        raise SqlError("Scalar sub-query has returned multiple rows", call.line, call.column)
    return args[1]


# Arithmetic producing a DECIMAL and CASTs from or to one: Trino's types and rounding.
_DECIMAL_OPS: dict[str, Callable[[Call, list[Value], int], Value]] = {
    **{op: decimals.arithmetic for op in "+-*/%"}, "cast": decimals.cast}

_OPS: dict[str, Callable[[Call, list[Value], int], Value]] = {
    "+": _binary(pc.add_checked),
    "-": _binary(pc.subtract_checked),
    "*": _binary(pc.multiply_checked),
    "/": _divide,
    "%": _modulo,
    "neg": _unary(pc.negate_checked),
    "=": _binary(pc.equal),
    "!=": _binary(pc.not_equal),
    "<": _binary(pc.less),
    "<=": _binary(pc.less_equal),
    ">": _binary(pc.greater),
    ">=": _binary(pc.greater_equal),
    "and": _nary(pc.and_kleene),
    "or": _nary(pc.or_kleene),
    "not": _unary(pc.invert),
    "is_null": _unary(pc.is_null),
    "is_not_null": _unary(pc.is_valid),
    "between": _between,
    "in": _in,
    "cast": _cast,
    "single_row_value": _single_row_value,
}
