"""SQL types as Arrow types, and Trino's implicit coercions between them.

Trino widens numbers along tinyint < smallint < integer < bigint < real < double, compares a
date with a timestamp as timestamps, and (as mpp also allows, like most engines) reads a string
literal compared with a date or timestamp as a literal of that type.

DECIMAL(p, s) is Arrow's decimal128(p, s). An integer meets a decimal as the decimal of its
digits (tinyint DECIMAL(3,0), smallint (5,0), integer (10,0), bigint (19,0)); a decimal meets
a real or double as that floating type. Arithmetic result types follow Trino's
DecimalOperators (:func:`decimal_result`); docs/types.md lists them.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa
from sqlglot import exp

from mpp.logical.expr import Call, Expr, Literal, type_name

TIMESTAMP = pa.timestamp("us")

# sqlglot type names (as Trino's parser produces them) -> Arrow types.
_SQL_TO_ARROW: dict[str, pa.DataType] = {
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),  # Trino REAL
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR": pa.string(),
    "CHAR": pa.string(),
    "TEXT": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": TIMESTAMP,
}

_NUMERIC_RANK = {
    pa.int8(): 1, pa.int16(): 2, pa.int32(): 3, pa.int64(): 4, pa.float32(): 5, pa.float64(): 6,
}


MAX_PRECISION = 38
# The decimal that holds every value of an integer type (Trino's implicit integer -> decimal).
_INTEGER_DECIMAL = {8: (3, 0), 16: (5, 0), 32: (10, 0), 64: (19, 0)}


def arrow_type(data_type: exp.DataType) -> pa.DataType | None:
    """The Arrow type of a SQL type in a CAST, or None if mpp does not support it.

    ``DECIMAL(p, s)`` is decimal128(p, s); ``DECIMAL(p)`` has scale 0 and a bare ``DECIMAL``
    is DECIMAL(38, 0), as in Trino. Raises ValueError for an invalid precision or scale.
    """
    if data_type.this == exp.DataType.Type.DECIMAL:
        params = [int(p.this.name) for p in data_type.expressions]
        precision, scale = (params + [MAX_PRECISION, 0][len(params):])[:2] if params else (
            MAX_PRECISION, 0)
        if not 1 <= precision <= MAX_PRECISION or not 0 <= scale <= precision:
            raise ValueError(f"DECIMAL precision must be 1 to {MAX_PRECISION} and scale 0 to "
                             f"the precision, got DECIMAL({precision}, {scale})")
        return pa.decimal128(precision, scale)
    return _SQL_TO_ARROW.get(data_type.this.name if hasattr(data_type.this, "name") else "")


def is_decimal(t: pa.DataType) -> bool:
    """True for DECIMAL(p, s) (Arrow decimal128)."""
    return bool(pa.types.is_decimal(t))


def is_numeric(t: pa.DataType) -> bool:
    """True for the integer, decimal and floating types of the subset."""
    return t in _NUMERIC_RANK or is_decimal(t)


def as_decimal(t: pa.DataType) -> pa.DataType:
    """``t`` (a decimal or an integer type) as the decimal that holds its values."""
    if is_decimal(t):
        return t
    return pa.decimal128(*_INTEGER_DECIMAL[t.bit_width])


def _decimal(precision: int, scale: int) -> pa.DataType:
    return pa.decimal128(min(MAX_PRECISION, precision), scale)


def decimal_common(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """Trino's common super type of two decimals (or integers): the larger scale and room
    for the larger integer part, at most 38 digits."""
    a, b = as_decimal(a), as_decimal(b)
    scale = max(a.scale, b.scale)
    return _decimal(max(a.precision - a.scale, b.precision - b.scale) + scale, scale)


def decimal_result(op: str, a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """Trino's result type of ``a op b`` for decimals (integers as their decimal):

    * ``+ -``: scale max(s1, s2), precision max(p1 - s1, p2 - s2) + scale + 1;
    * ``*``: precision p1 + p2, scale s1 + s2;
    * ``/``: precision p1 + s2 + max(s2 - s1, 0), scale max(s1, s2);
    * ``%``: precision min(p1 - s1, p2 - s2) + max(s1, s2), scale max(s1, s2);

    every precision capped at 38 (a value that does not fit is "Decimal overflow").

    >>> decimal_result("*", pa.decimal128(15, 2), pa.decimal128(16, 2))
    Decimal128Type(decimal128(31, 4))
    """
    a, b = as_decimal(a), as_decimal(b)
    (p1, s1), (p2, s2) = (a.precision, a.scale), (b.precision, b.scale)
    if op in "+-":
        scale = max(s1, s2)
        return _decimal(max(p1 - s1, p2 - s2) + scale + 1, scale)
    if op == "*":
        if s1 + s2 > MAX_PRECISION:
            raise ValueError(f"DECIMAL scale {s1 + s2} of a product exceeds {MAX_PRECISION}")
        return _decimal(p1 + p2, s1 + s2)
    if op == "/":
        return _decimal(p1 + s2 + max(s2 - s1, 0), max(s1, s2))
    return _decimal(min(p1 - s1, p2 - s2) + max(s1, s2), max(s1, s2))


def decimal_literal(text: str) -> tuple[decimal.Decimal, pa.DataType]:
    """A decimal literal's value and type: Trino types ``1.50`` as DECIMAL(3, 2), ``0.5`` as
    DECIMAL(1, 1) (leading zeros do not count). Raises ValueError beyond 38 digits.

    >>> decimal_literal("0.05")
    (Decimal('0.05'), Decimal128Type(decimal128(2, 2)))
    """
    whole, _, fraction = text.strip().lstrip("+-").partition(".")
    if not (whole + fraction).isdigit():
        raise ValueError(f"invalid decimal literal {text!r}")
    precision = max(len(whole.lstrip("0")) + len(fraction), 1)
    if precision > MAX_PRECISION:
        raise ValueError(f"decimal literal {text} has {precision} digits, more than "
                         f"{MAX_PRECISION}")
    return decimal.Decimal(text.strip()), pa.decimal128(precision, len(fraction))


def is_temporal(t: pa.DataType) -> bool:
    """True for date and timestamp types."""
    return bool(pa.types.is_date(t) or pa.types.is_timestamp(t))


def is_string(t: pa.DataType) -> bool:
    """True for string types (Arrow string, large_string, dictionary of strings)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type both operands are coerced to for comparison or arithmetic, or None."""
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b) or a == b:
        return a
    if is_decimal(a) or is_decimal(b):
        if not (is_numeric(a) and is_numeric(b)):
            return None
        if pa.types.is_floating(a) or pa.types.is_floating(b):  # decimal op double: double
            return a if pa.types.is_floating(a) else b
        return decimal_common(a, b)
    if is_numeric(a) and is_numeric(b):
        return a if _NUMERIC_RANK[a] >= _NUMERIC_RANK[b] else b
    if is_temporal(a) and is_temporal(b):
        return TIMESTAMP if pa.types.is_timestamp(a) or pa.types.is_timestamp(b) else a
    if is_string(a) and is_string(b):
        return pa.string()
    return None


def literal_value(text: str, target: pa.DataType) -> Any:
    """Convert a string literal to a Python value of ``target`` (raises ValueError if invalid)."""
    if pa.types.is_date(target):
        return dt.date.fromisoformat(text.strip())
    if pa.types.is_timestamp(target):
        return dt.datetime.fromisoformat(text.strip())
    if pa.types.is_integer(target):
        return int(text)
    if is_decimal(target):
        return fit_decimal(decimal.Decimal(text.strip()), target)
    if pa.types.is_floating(target):
        return float(text)
    if pa.types.is_boolean(target):
        low = text.strip().lower()
        if low not in ("true", "false"):
            raise ValueError(text)
        return low == "true"
    return text


def coerce(expr: Expr, target: pa.DataType) -> Expr:
    """``expr`` as ``target``: literals are converted now, other expressions get a cast."""
    if expr.dtype == target:
        return expr
    if isinstance(expr, Literal):
        if expr.value is None:
            return Literal(None, target)
        if isinstance(expr.value, str):
            return Literal(literal_value(expr.value, target), target)
        if is_numeric(target) and is_numeric(expr.dtype):
            if pa.types.is_floating(target):
                return Literal(float(expr.value), target)
            if is_decimal(target):
                return Literal(fit_decimal(decimal.Decimal(expr.value), target), target)
            if not is_decimal(expr.dtype):
                return Literal(expr.value, target)
        if pa.types.is_date(target) and isinstance(expr.value, dt.datetime):
            return Literal(expr.value.date(), target)
        if pa.types.is_timestamp(target) and isinstance(expr.value, dt.date):
            return Literal(dt.datetime.combine(expr.value, dt.time()), target)
    return Call("cast", (expr,), target)


def fit_decimal(value: decimal.Decimal, target: pa.DataType) -> decimal.Decimal:
    """``value`` rounded half up to ``target``'s scale (as Trino's CAST does); ValueError
    (``Decimal overflow``) when it needs more digits than the precision."""
    if not value.is_finite():
        raise ValueError(f"cannot convert {value} to {type_name(target)}")
    out = value.quantize(decimal.Decimal(1).scaleb(-target.scale), decimal.ROUND_HALF_UP,
                         context=decimal.Context(prec=80))
    if out.adjusted() >= target.precision - target.scale and out != 0:
        raise ValueError(f"Decimal overflow: {value} does not fit {type_name(target)}")
    return out


def comparison_type(left: Expr, right: Expr) -> pa.DataType | None:
    """The type a comparison of ``left`` and ``right`` is evaluated in, or None if invalid.

    A string literal meets a date/timestamp/number on the other side as that type.
    """
    for a, b in ((left, right), (right, left)):
        if (isinstance(a, Literal) and isinstance(a.value, str) and not is_string(b.dtype)
                and not pa.types.is_null(b.dtype)):
            return b.dtype
        if (isinstance(a, Literal) and pa.types.is_integer(a.dtype) and a.value is not None
                and pa.types.is_integer(b.dtype) and not isinstance(b, Literal)
                and _fits(a.value, b.dtype)):
            # status = 200 compares in the column's smallint (Trino unwraps such casts too),
            # so the comparison stays "column op literal" and can be pushed into the scan.
            return b.dtype
        if (isinstance(a, Literal) and isinstance(a.value, dt.datetime)
                and a.value.time() == dt.time() and pa.types.is_date(b.dtype)
                and not isinstance(b, Literal)):
            # date_col >= TIMESTAMP '2017-01-05 00:00:00' is date_col >= DATE '2017-01-05'.
            return b.dtype
    return common_type(left.dtype, right.dtype)


def _fits(value: int, t: pa.DataType) -> bool:
    bits = int(t.bit_width)
    return bool(-(2 ** (bits - 1)) <= value < 2 ** (bits - 1))


def integer_literal_type(value: int) -> pa.DataType:
    """Trino types an integer literal as INTEGER when it fits, else BIGINT."""
    return pa.int32() if -(2**31) <= value < 2**31 else pa.int64()
