"""Constant folding while binding: INTERVAL date arithmetic and decimal literal arithmetic.

INTERVAL literals in date arithmetic: ``DATE '1998-12-01' - INTERVAL '90' DAY`` is
``DATE '1998-09-02'``.

Trino's rules: adding months or years to a date keeps the day of the month and clamps it to
the month's last day (``DATE '2000-01-31' + INTERVAL '1' MONTH`` is ``2000-02-29``); a DATE
takes YEAR, MONTH and DAY intervals (and WEEK, as 7 days), a TIMESTAMP also HOUR, MINUTE and
SECOND. mpp folds an interval only into a DATE or TIMESTAMP literal (the way TPC-H and most
report queries write date ranges); an interval added to a column is refused by name.

Decimal literals: see :func:`fold_decimal_literals`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import decimal

import pyarrow as pa

from mpp.logical.expr import Expr, Literal
from mpp.sql import types as T

DATE_UNITS = ("year", "month", "week", "day")
TIMESTAMP_UNITS = DATE_UNITS + ("hour", "minute", "second")


def unit_name(text: str) -> str:
    """``DAY``, ``days`` -> ``day``."""
    text = text.lower()
    return text[:-1] if text.endswith("s") and text[:-1] in TIMESTAMP_UNITS else text


def shift(value: dt.date, amount: int, unit: str) -> dt.date:
    """``value + INTERVAL 'amount' unit`` with Trino's month arithmetic (``value`` is a date
    or a datetime; the result has the same type)."""
    if unit in ("year", "month"):
        months = value.year * 12 + value.month - 1 + amount * (12 if unit == "year" else 1)
        year, month = divmod(months, 12)
        day = min(value.day, calendar.monthrange(year, month + 1)[1])
        return value.replace(year=year, month=month + 1, day=day)
    seconds = {"week": 7 * 86400, "day": 86400, "hour": 3600, "minute": 60, "second": 1}[unit]
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(seconds=amount * seconds)
    return value + dt.timedelta(days=amount * seconds // 86400)


def fold_decimal_literals(op: str, left: Expr, right: Expr) -> Literal | None:
    """``0.06 + 0.01`` computed now, exactly, as Trino computes it: DECIMAL(3, 2) 0.07. None
    unless both sides are decimal or integer literals and at least one is a decimal (and, for
    ``/`` and ``%``, the divisor is not zero: that fails where the row is evaluated).

    The result has Trino's type (:func:`mpp.sql.types.decimal_result`), a quotient rounded
    half up to its scale; ValueError ("Decimal overflow") when it does not fit.
    """
    if not (isinstance(left, Literal) and isinstance(right, Literal)):
        return None
    types = (left.dtype, right.dtype)
    if (not any(pa.types.is_decimal(t) for t in types)
            or not all(pa.types.is_decimal(t) or pa.types.is_integer(t) for t in types)
            or left.value is None or right.value is None
            or (op in "/%" and right.value == 0)):
        return None
    result = T.decimal_result(op, *types)
    context = decimal.Context(prec=100)
    a, b = decimal.Decimal(left.value), decimal.Decimal(right.value)
    exact = {"+": context.add, "-": context.subtract, "*": context.multiply,
             "/": context.divide, "%": context.remainder}[op](a, b)
    return Literal(T.fit_decimal(exact, result), result)
