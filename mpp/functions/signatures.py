"""Typing rules of the scalar functions: argument types -> (parameter types, result type).

A rule returns None when the function does not apply to the argument types; the binder then
reports the call with the function's usage. The binder coerces each argument to its parameter
type with Trino's implicit widening (mpp.sql.types), so a rule names the types it wants and
needs not check widening itself. A NULL literal's type (``pa.null()``) fits any parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from mpp.functions import Signature, TypingRule

STRING = pa.string()
BIGINT = pa.int64()
DOUBLE = pa.float64()
BOOLEAN = pa.bool_()
DATE = pa.date32()
TIMESTAMP = pa.timestamp("us")


def _common(types: Sequence[pa.DataType]) -> pa.DataType | None:
    from mpp.sql.types import common_type  # (mpp.sql imports this package: not at the top)

    out: pa.DataType | None = pa.null()
    for t in types:
        out = common_type(out, t) if out is not None else None
    return out


def is_string(t: pa.DataType) -> bool:
    """True for a varchar (or a NULL literal, which fits one)."""
    from mpp.sql.types import is_string as string

    return bool(string(t) or pa.types.is_null(t))


def is_numeric(t: pa.DataType) -> bool:
    """True for an integer, real or double (or a NULL literal)."""
    from mpp.sql.types import is_numeric as numeric

    return bool(numeric(t) or pa.types.is_null(t))


def fixed(*params: pa.DataType, result: pa.DataType) -> TypingRule:
    """Arguments of the given types (the first ``len(types)`` parameters; extra arguments
    take the last one), any that widen to them."""

    def rule(types: Sequence[pa.DataType]) -> Signature | None:
        wanted = tuple(params[min(i, len(params) - 1)] for i in range(len(types)))
        for actual, want in zip(types, wanted, strict=True):
            if _common([actual, want]) != want:
                return None
        return wanted, result

    return rule


def same_numeric(types: Sequence[pa.DataType]) -> Signature | None:
    """One number in, the same type out (abs, sign, floor, round); NULL is a double."""
    t = types[0]
    if pa.types.is_null(t):
        t = DOUBLE
    if not is_numeric(t):
        return None
    return (t, *([pa.int32()] * (len(types) - 1))), t


def common(result: pa.DataType | None = None, *,
           kinds: tuple[str, ...] = ("numeric", "string", "temporal", "boolean")) -> TypingRule:
    """Every argument coerced to their common type (greatest, nullif); the result is that
    type, or ``result``. ``kinds`` limits the common type to orderable kinds."""

    def rule(types: Sequence[pa.DataType]) -> Signature | None:
        from mpp.sql.types import is_temporal

        t = _common(types)
        if t is None:
            return None
        ok = {"numeric": is_numeric(t), "string": is_string(t), "temporal": is_temporal(t),
              "boolean": pa.types.is_boolean(t) or pa.types.is_null(t)}
        if not any(ok[k] for k in kinds):
            return None
        return tuple(t for _ in types), result if result is not None else t

    return rule


def temporal(result: pa.DataType, *, timestamp_only: bool = False,
             rest: tuple[pa.DataType, ...] = ()) -> TypingRule:
    """One date or timestamp in (a timestamp only for hour(), minute(), ...), then arguments
    of the types ``rest``; ``result`` out."""

    def rule(types: Sequence[pa.DataType]) -> Signature | None:
        t = types[0]
        if pa.types.is_null(t):
            t = TIMESTAMP
        if len(types) != 1 + len(rest):
            return None
        if pa.types.is_timestamp(t) or (pa.types.is_date(t) and not timestamp_only):
            return (t, *rest), result
        return None

    return rule
