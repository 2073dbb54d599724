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
import math

import pyarrow as pa

from mpp.logical.expr import Expr, Literal

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
    """``0.06 + 0.01`` computed as Trino does, in DECIMAL (0.07), then stored as DOUBLE; None
    unless both sides are number literals and one is a decimal (mpp's DOUBLE) literal.

    Decimal literals are DOUBLE in mpp, and binary arithmetic on them drifts
    (``0.06 + 0.01`` is 0.06999999999999999): TPC-H Q6's ``BETWEEN 0.06 - 0.01 AND 0.06 +
    0.01`` would drop every row at 0.07. A double's shortest text is the literal written.
    """
    values = [e.value for e in (left, right) if isinstance(e, Literal)]
    if (op not in ("+", "-", "*") or len(values) != 2
            or not all(type(v) in (int, float) for v in values)
            or not any(isinstance(v, float) for v in values)
            or not all(math.isfinite(v) for v in values)):
        return None
    a, b = (decimal.Decimal(repr(v)) for v in values)
    exact = a + b if op == "+" else a - b if op == "-" else a * b
    return Literal(float(exact), pa.float64())
