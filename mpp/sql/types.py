"""SQL types as Arrow types, and Trino's implicit coercions between them.

Trino widens numbers along tinyint < smallint < integer < bigint < real < double, compares a
date with a timestamp as timestamps, and (as mpp also allows, like most engines) reads a string
literal compared with a date or timestamp as a literal of that type.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from sqlglot import exp

from mpp.logical.expr import Call, Expr, Literal

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


def arrow_type(data_type: exp.DataType) -> pa.DataType | None:
    """The Arrow type of a SQL type in a CAST, or None if mpp does not support it."""
    return _SQL_TO_ARROW.get(data_type.this.name if hasattr(data_type.this, "name") else "")


def is_numeric(t: pa.DataType) -> bool:
    """True for the integer and floating types of the subset."""
    return t in _NUMERIC_RANK


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
    if is_numeric(a) and is_numeric(b):
        return a if _NUMERIC_RANK[a] >= _NUMERIC_RANK[b] else b
    if is_temporal(a) and is_temporal(b):
        return TIMESTAMP if pa.types.is_timestamp(a) or pa.types.is_timestamp(b) else a
    if is_string(a) and is_string(b):
        return pa.string()
    return None


_TRINO_NAMES: tuple[tuple[pa.DataType, str], ...] = (
    (pa.int8(), "tinyint"), (pa.int16(), "smallint"), (pa.int32(), "integer"),
    (pa.int64(), "bigint"), (pa.float32(), "real"), (pa.float64(), "double"),
    (pa.bool_(), "boolean"), (pa.date32(), "date"), (pa.null(), "unknown"),
)


def type_name(t: pa.DataType) -> str:
    """Trino's name of an Arrow type, for error messages (``integer``, ``varchar``, ...)."""
    for arrow, name in _TRINO_NAMES:
        if t == arrow:
            return name
    if is_string(t):
        return "varchar"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return str(t)


def literal_value(text: str, target: pa.DataType) -> Any:
    """Convert a string literal to a Python value of ``target`` (raises ValueError if invalid)."""
    if pa.types.is_date(target):
        return dt.date.fromisoformat(text.strip())
    if pa.types.is_timestamp(target):
        return dt.datetime.fromisoformat(text.strip())
    if pa.types.is_integer(target):
        return int(text)
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
            return Literal(float(expr.value) if pa.types.is_floating(target) else expr.value,
                           target)
        if pa.types.is_date(target) and isinstance(expr.value, dt.datetime):
            return Literal(expr.value.date(), target)
        if pa.types.is_timestamp(target) and isinstance(expr.value, dt.date):
            return Literal(dt.datetime.combine(expr.value, dt.time()), target)
    return Call("cast", (expr,), target)


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
