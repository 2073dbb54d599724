"""DECIMAL(p, s) kernels with Trino's result types and rounding, from pyarrow's decimal kernels.

pyarrow computes decimal arithmetic exactly but types its results by its own rules (a product
of DECIMAL(15,2) and DECIMAL(16,2) is decimal128(32, 4), Trino's is DECIMAL(31, 4)) and
truncates quotients. Here every operation runs in decimal256 (so no intermediate overflows at
38 digits), then:

* ``+ - *`` are cast to the result type the binder gave them (Trino's, see
  :func:`mpp.sql.types.decimal_result`); a value with more digits is "Decimal overflow";
* ``/`` divides at one digit more than the result scale and rounds half up (away from zero,
  Trino's HALF_UP), as ``avg`` does (:func:`average`);
* CAST rounds half up when it drops digits (to a smaller scale, to an integer), and reads text
  with any number of fractional digits;
* a division by zero is Trino's "Division by zero".

Fast path: ``+ - *`` of decimals whose unscaled values fit in 64 bits, and whose result provably
does too (checked from the operands' largest magnitudes), run in numpy int64 on the unscaled
integers, exactly, and are written straight into a decimal128 buffer: TPC-H's money columns
(DECIMAL(15, 2)) then cost about what doubles cost instead of ~20x more through decimal256.
The result is the same value either way; the wide path remains for everything else.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.errors import SqlError
from mpp.logical.expr import Call

Value: TypeAlias = Any  # pa.Array | pa.ChunkedArray | pa.Scalar
_WIDE = 76  # decimal256's precision
_ROUND = "half_towards_infinity"


def involved(call: Call) -> bool:
    """True when ``call`` is an operation these kernels evaluate: arithmetic producing a
    decimal, or a CAST from or to one."""
    if call.op in ("+", "-", "*", "/", "%"):
        return bool(pa.types.is_decimal(call.dtype))
    if call.op == "cast":
        return bool(pa.types.is_decimal(call.dtype) or pa.types.is_decimal(call.args[0].dtype))
    return False


def _wide(value: Value) -> Value:
    """``value`` (a decimal) as decimal256 of the same precision and scale."""
    t = value.type
    return pc.cast(value, pa.decimal256(t.precision, t.scale))


def _overflow(call: Call) -> SqlError:
    return SqlError(f"Decimal overflow in {call.source or call}", call.line, call.column)


def _fit(call: Call, value: Value, target: pa.DataType) -> Value:
    """``value`` cast to ``target``; "Decimal overflow" naming ``call`` if it does not fit."""
    try:
        return pc.cast(value, target)
    except pa.ArrowInvalid:
        raise _overflow(call) from None


def _round(value: Value, scale: int) -> Value:
    """``value`` rounded half up (away from zero) to ``scale`` fractional digits."""
    if value.type.scale <= scale:
        return value
    return pc.round(value, ndigits=scale, round_mode=_ROUND)


def _tight(value: Value) -> Value:
    """``value`` (a decimal) as decimal256 of the fewest digits its values need."""
    scale = value.type.scale
    if isinstance(value, pa.Scalar):
        largest = abs(value.as_py()) if value.is_valid else None
    else:
        largest = pc.max(pc.abs(value)).as_py()  # None when empty or all NULL
    digits = len(str(int(largest.scaleb(scale)))) if largest is not None else 1
    return pc.cast(value, pa.decimal256(max(digits, scale, 1), scale))


def divide(call: Call, a: Value, b: Value, scale: int) -> Value:
    """``a / b`` (decimals) rounded half up to ``scale`` digits, as decimal256.

    pyarrow's quotient has scale max(4, s1 + p2 - s2 + 1), truncated: the dividend is
    widened until that is one digit more than ``scale``, whose rounding is then exact. Its
    precision, p1 - s1 + s2 + that scale, must stay within decimal256's 76 digits, so both
    sides are first narrowed to the digits their values have (a sum's DECIMAL(38, s) holds
    far fewer).
    """
    a, b = _tight(a), _tight(b)
    extra = max(0, scale + 1 - max(4, a.type.scale + b.type.precision - b.type.scale + 1))
    if extra:
        a = pc.cast(a, pa.decimal256(min(_WIDE, a.type.precision + extra), a.type.scale + extra))
    try:
        quotient = pc.divide(a, b)
    except pa.ArrowInvalid as err:
        if "by zero" in str(err):
            raise SqlError(f"Division by zero in {call.source or call}", call.line,
                           call.column) from None
        raise _overflow(call) from None
    return _round(quotient, scale)


_SAFE = 2**62  # magnitudes below this add, and products below it multiply, within int64


class Unscaled:
    """The unscaled integers of a decimal array as contiguous int64 (0 under NULLs), its
    validity (None: no NULLs) and the largest magnitude among them; or of a scalar (an int)."""

    __slots__ = ("ints", "valid", "largest")

    def __init__(self, ints: np.ndarray | int, valid: np.ndarray | None, largest: int):
        self.ints, self.valid, self.largest = ints, valid, largest


def unscaled(value: Value) -> Unscaled | None:
    """``value`` (a decimal array or scalar) as 64-bit unscaled integers; None if a value
    needs more bits or a scalar is NULL.

    A DECIMAL(p <= 18)'s values fit by their type; wider types (the DECIMAL(38, s) of a
    product) are checked: every high word is the low word's sign."""
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            return None
        ints = int(value.as_py().scaleb(value.type.scale))
        return Unscaled(ints, None, abs(ints)) if abs(ints) < _SAFE else None
    if isinstance(value, pa.ChunkedArray):
        value = value.chunk(0) if value.num_chunks == 1 else value.combine_chunks()
    if not pa.types.is_decimal128(value.type):
        return None
    words = np.frombuffer(value.buffers()[1], dtype=np.int64,
                          count=2 * (value.offset + len(value)))[2 * value.offset:]
    pairs = words.reshape(-1, 2)
    low = np.ascontiguousarray(pairs[:, 0])
    valid = None
    if value.null_count:
        valid = value.is_valid().to_numpy(zero_copy_only=False)
        low[~valid] = 0
    if value.type.precision > 18:
        high = pairs[:, 1] if valid is None else np.where(valid, pairs[:, 1], 0)
        if not np.array_equal(high, low >> 63):  # some value does not fit in 64 bits
            return None
    largest = max(int(low.max()), -int(low.min())) if len(low) else 0
    return Unscaled(low, valid, largest) if largest < _SAFE else None


def from_unscaled(ints: np.ndarray, valid: np.ndarray | None, target: pa.DataType) -> pa.Array:
    """A decimal128 array of type ``target`` from int64 unscaled integers (NULL where
    ``valid`` is False), written straight into Arrow's buffers."""
    words = np.empty((len(ints), 2), dtype=np.int64)
    words[:, 0] = ints
    np.right_shift(ints, 63, out=words[:, 1])
    bitmap = None if valid is None else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(target, len(ints), [bitmap, pa.py_buffer(words)])


def _fast(call: Call, a: Value, b: Value, target: pa.DataType) -> Value | None:
    """``a op b`` (``+ - *``) computed on 64-bit unscaled integers, or None when any operand
    or the result could need more bits (the wide path then computes it).

    The result's magnitude is bounded from the operands' largest magnitudes (|x * y| <=
    max|x| max|y|; |x + y| <= max|x| + max|y|), so it is checked against the target's
    precision without a pass over the result."""
    ua, ub = unscaled(a), unscaled(b)
    if ua is None or ub is None or isinstance(ua.ints, int) and isinstance(ub.ints, int):
        return None
    x, y = ua.ints, ub.ints
    sa, sb = a.type.scale, b.type.scale
    if call.op == "*":
        bound = ua.largest * ub.largest
        if target.scale != sa + sb or bound >= _SAFE:
            return None
        out = np.multiply(x, y)
    else:
        if target.scale != max(sa, sb):
            return None
        fx, fy = 10 ** (target.scale - sa), 10 ** (target.scale - sb)
        if ua.largest * fx >= _SAFE // 2 or ub.largest * fy >= _SAFE // 2:
            return None  # checked in Python integers, before numpy could wrap around
        bound = ua.largest * fx + ub.largest * fy
        x, y = (x * fx if fx > 1 else x), (y * fy if fy > 1 else y)
        out = np.add(x, y) if call.op == "+" else np.subtract(x, y)
    out = np.asarray(out, dtype=np.int64)
    if bound >= 10 ** target.precision and _magnitude(out) >= 10 ** target.precision:
        return None  # the wide path raises the overflow, naming the call
    valid = (ua.valid if ub.valid is None else ub.valid if ua.valid is None
             else ua.valid & ub.valid)
    return from_unscaled(out, valid, target)


def _magnitude(x: np.ndarray) -> int:
    return max(int(x.max()), -int(x.min())) if len(x) else 0


def arithmetic(call: Call, args: list[Value], n: int) -> Value:
    """``+ - * / %`` of two decimals, typed ``call.dtype`` (Trino's result type)."""
    a, b = args
    target = call.dtype
    if call.op == "/":
        return _fit(call, divide(call, a, b, target.scale), target)
    if call.op in "+-*" and pa.types.is_decimal(a.type) and pa.types.is_decimal(b.type):
        fast = _fast(call, a, b, target)
        if fast is not None:
            return fast
    wa, wb = _wide(a), _wide(b)
    try:
        if call.op == "%":
            whole = pc.trunc(pc.divide(wa, wb))  # the sign of the dividend, as in Trino
            out = pc.subtract(wa, pc.multiply(wb, pc.cast(whole, pa.decimal256(_WIDE // 2, 0))))
        else:
            kernel = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[call.op]
            out = kernel(wa, wb)
    except pa.ArrowInvalid as err:
        if "by zero" in str(err):
            raise SqlError(f"Division by zero in {call.source or call}", call.line,
                           call.column) from None
        raise _overflow(call) from None
    return _fit(call, _round(out, target.scale), target)


def cast(call: Call, args: list[Value], n: int) -> Value:
    """CAST from or to a decimal, rounding half up where digits are dropped.

    A double becomes a decimal through its shortest text (``2.675``, not the binary value
    2.67499999...), as Trino's ``BigDecimal.valueOf(double)`` does; text is read with any
    number of fractional digits, then rounded.
    """
    value, source, target = args[0], call.args[0].dtype, call.dtype
    if not pa.types.is_decimal(target):
        if pa.types.is_integer(target):  # round half up first (pyarrow refuses to truncate)
            return _fit(call, _round(_wide(value), 0), target)
        return pc.cast(value, target)
    if pa.types.is_integer(source):  # as the decimal of its digits, then to the target
        value = pc.cast(value, pa.decimal128(19 if source.bit_width == 64 else 10, 0))
    if pa.types.is_floating(source):
        if n and pc.any(pc.invert(pc.is_finite(value))).as_py():
            raise SqlError(f"Cannot cast a NaN or infinite {source} to {_name(target)} in "
                           f"{call.source or call}", call.line, call.column)
        value = pc.cast(value, pa.string())
    if not pa.types.is_decimal(value.type):  # text
        try:
            value = pc.cast(pc.utf8_trim_whitespace(value), pa.decimal256(_WIDE, _WIDE // 2))
        except pa.ArrowInvalid as err:
            if pa.types.is_floating(source):
                raise _overflow(call) from None
            raise SqlError(f"Cannot cast to {_name(target)} in {call.source or call}: {err}",
                           call.line, call.column) from None
    return _fit(call, _round(_wide(value), target.scale), target)


def average(total: Value, count: Value) -> Value:
    """avg of decimals from their sum (decimal128(38, s)) and count: the sum divided by the
    count rounded half up to scale s (Trino's DecimalAverageAggregation); NULL for no rows."""
    scale = total.type.scale
    nonzero = pc.if_else(pc.equal(count, 0), None, count)
    counts = pc.cast(nonzero, pa.decimal256(19, 0))
    quotient = divide(Call("avg", (), total.type), total, counts, scale)
    return pc.cast(quotient, pa.decimal128(38, scale))


def _name(t: pa.DataType) -> str:
    return f"decimal({t.precision},{t.scale})"
