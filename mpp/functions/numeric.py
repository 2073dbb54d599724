"""Math functions, with Trino's semantics.

* ``round(x[, d])`` rounds half away from zero (2.5 -> 3, -2.5 -> -3), also to ``d`` decimal
  places or, with a negative ``d``, to tens, hundreds, ...; it keeps the argument's type, as
  do ``abs``, ``sign``, ``floor`` and ``ceil`` (an integer stays an integer);
* ``abs`` of the smallest integer overflows (an error, as in Trino);
* ``sqrt``, ``ln``, ``exp`` and ``power`` work in DOUBLE and follow IEEE: ``sqrt(-1)`` and
  ``ln(-1)`` are NaN, ``ln(0)`` is -Infinity, ``power(0, -1)`` is Infinity (Java's Math).
* ``mod(a, b)`` is the ``%`` operator (the sign follows the dividend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mpp.functions import Function, Signature, Value, constant, register
from mpp.functions.signatures import DOUBLE, fixed, same_numeric
from mpp.logical.expr import Call


def _same_type(kernel: Callable[[Value], Value]) -> Callable[[Call, list[Value], int], Value]:
    """``kernel`` of the first argument, cast back to the call's type."""
    return lambda call, args, n: pc.cast(kernel(args[0]), call.dtype)


def _integral(kernel: Callable[[Value], Value]) -> Callable[[Call, list[Value], int], Value]:
    """floor/ceil: an integer is its own floor (Arrow would return a double)."""

    def run(call: Call, args: list[Value], n: int) -> Value:
        if pa.types.is_integer(call.dtype):
            return args[0]
        return pc.cast(kernel(_widened(args[0])), call.dtype)

    return run


def _widened(value: Value) -> Value:
    """A decimal with one more digit of precision: Arrow keeps a decimal's type when it
    rounds, and 99.99 rounded up to 100.00 would not fit (the result type has room)."""
    t = value.type
    if not pa.types.is_decimal(t) or t.precision >= 38:
        return value
    return pc.cast(value, pa.decimal128(t.precision + 1, t.scale))


def _whole_types(types: Sequence[pa.DataType]) -> Signature | None:
    """x's type, but a DECIMAL(p, s) becomes DECIMAL(p - s + min(s, 1), 0) (Trino's floor,
    ceil and one-argument round: the digits a whole number of that type can need)."""
    signature = same_numeric(types)
    if signature is None or len(types) > 1 or not pa.types.is_decimal(signature[1]):
        return signature
    t = signature[1]
    return signature[0], pa.decimal128(min(38, t.precision - t.scale + min(t.scale, 1)), 0)


def _round(call: Call, args: list[Value], n: int) -> Value:
    digits = constant(args[1]) if len(args) > 1 else 0
    if digits is None:
        return pa.scalar(None, call.dtype)
    if pa.types.is_integer(call.dtype) and digits >= 0:
        return args[0]
    out = pc.round(_widened(args[0]), ndigits=digits, round_mode="half_towards_infinity")
    return pc.cast(out, call.dtype)


def _double(kernel: Callable[..., Value]) -> Callable[[Call, list[Value], int], Value]:
    return lambda call, args, n: kernel(*(pc.cast(a, pa.float64()) for a in args))


register(Function("abs", (1, 1), same_numeric, _same_type(pc.abs_checked), "abs(number)"))
def _sign_types(types: Sequence[pa.DataType]) -> Signature | None:
    """x's type, but a decimal's sign is a DECIMAL(1, 0) (Trino)."""
    signature = same_numeric(types)
    if signature is not None and pa.types.is_decimal(signature[1]):
        return signature[0], pa.decimal128(1, 0)
    return signature


def _sign(call: Call, args: list[Value], n: int) -> Value:
    value = args[0]
    if pa.types.is_decimal(call.dtype):  # (Arrow's sign keeps the decimal's scale)
        value = pc.cast(pc.cast(pc.sign(pc.cast(value, pa.float64())), pa.int8()),
                        pa.decimal128(3, 0))
        return pc.cast(value, call.dtype)
    return pc.cast(pc.sign(value), call.dtype)


register(Function("sign", (1, 1), _sign_types, _sign, "sign(number)"))
register(Function("floor", (1, 1), _whole_types, _integral(pc.floor), "floor(number)"))
register(Function("ceil", (1, 1), _whole_types, _integral(pc.ceil), "ceil(number)",
                  aliases=("ceiling",)))
register(Function("round", (1, 2), _whole_types, _round, "round(number[, integer digits])",
                  constants=(1,)))
register(Function("sqrt", (1, 1), fixed(DOUBLE, result=DOUBLE), _double(pc.sqrt),
                  "sqrt(double)"))
register(Function("ln", (1, 1), fixed(DOUBLE, result=DOUBLE), _double(pc.ln), "ln(double)"))
register(Function("exp", (1, 1), fixed(DOUBLE, result=DOUBLE), _double(pc.exp),
                  "exp(double)"))
register(Function("power", (2, 2), fixed(DOUBLE, result=DOUBLE), _double(pc.power),
                  "power(double, double)", aliases=("pow",)))
