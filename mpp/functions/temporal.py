"""Date and time functions, with Trino's semantics.

* ``date_diff(unit, a, b)`` counts whole units elapsed from a to b (see :func:`date_diff`);
* ``date_add(unit, n, x)`` (and ``x +/- INTERVAL 'n' unit``) keeps the day of the month when
  adding months or years, clamped to the month's last day (2000-01-31 + 1 month is
  2000-02-29), as Joda's plusMonths does;
* ``EXTRACT``'s WEEK is the ISO week and DAY_OF_WEEK counts Monday as 1 (Arrow's default is
  Monday as 0); ``year(x)``, ``day_of_week(x)`` ... are the EXTRACT fields as functions;
* ``date_format(x, format)`` takes MySQL's format tokens (``%Y-%m-%d %H:%i:%s``);
* ``to_unixtime`` is seconds since the epoch as a double, ``from_unixtime`` the timestamp
  (mpp has no time zones: timestamps are UTC).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.errors import SqlError
from mpp.functions import Function, Value, as_array, constant, register, register_kernel
from mpp.functions.signatures import BIGINT, DOUBLE, STRING, TIMESTAMP, fixed, temporal
from mpp.logical.expr import Call

FIXED_US = {"millisecond": 1_000, "second": 1_000_000, "minute": 60_000_000,
            "hour": 3_600_000_000, "day": 86_400_000_000, "week": 7 * 86_400_000_000}
_DAY_US = 86_400_000_000
_DAYS_IN_MONTH = pa.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())


def micros(value: Value) -> Value:
    """Microseconds since the epoch of a date or timestamp[us]."""
    if pa.types.is_date(value.type):
        days = pc.cast(pc.cast(value, pa.date32()), pa.int32())
        return pc.multiply(pc.cast(days, pa.int64()), _DAY_US)
    return pc.cast(value, pa.int64())


def _days_in_month(value: Value, n: int) -> Value:
    month = pc.cast(pc.month(value), pa.int64())
    days = pc.take(_DAYS_IN_MONTH, as_array(pc.subtract(month, 1), n))
    leap_feb = pc.and_(pc.equal(month, 2), pc.is_leap_year(value))
    return pc.add(days, pc.cast(leap_feb, pa.int64()))


def _date_trunc(call: Call, args: list[Value], n: int) -> Value:
    return pc.floor_temporal(args[0], unit=call.option("unit"), week_starts_monday=True)


def date_diff(call: Call, args: list[Value], n: int) -> Value:
    """Whole ``unit`` s elapsed from start to end, truncated toward zero (Trino/Joda).

    Fixed-length units divide the elapsed microseconds. Months (and quarters, years) count
    calendar months, minus one when the start's day and time, moved into the end's month
    (clamped to its length, as Joda's plusMonths does), has not been reached yet; an end
    before the start counts minus the months from the end to the start (Joda swaps them).
    """
    unit = call.option("unit")
    start, end = (as_array(a, n) for a in args)
    if unit in FIXED_US:
        return pc.divide(pc.subtract(micros(end), micros(start)), FIXED_US[unit])

    def months(v: Value) -> Value:
        return pc.add(pc.multiply(pc.cast(pc.year(v), pa.int64()), 12),
                      pc.cast(pc.month(v), pa.int64()))

    def time_of_day(v: Value) -> Value:
        return pc.subtract(micros(v), micros(pc.floor_temporal(v, unit="day")))

    # Joda counts an end before the start as minus the months from the end to the start.
    swap = pc.less(end, start)
    low, high = pc.if_else(swap, end, start), pc.if_else(swap, start, end)
    diff = pc.subtract(months(high), months(low))
    low_day = pc.min_element_wise(pc.cast(pc.day(low), pa.int64()), _days_in_month(high, n))
    low_key = pc.add(pc.multiply(low_day, _DAY_US), time_of_day(low))
    high_key = pc.add(pc.multiply(pc.cast(pc.day(high), pa.int64()), _DAY_US),
                      time_of_day(high))
    back = pc.and_(pc.greater(diff, 0), pc.greater(low_key, high_key))
    diff = pc.subtract(diff, pc.cast(back, pa.int64()))
    diff = pc.if_else(swap, pc.negate(diff), diff)
    return pc.divide(diff, {"month": 1, "quarter": 3, "year": 12}[unit])


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (Howard Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _add_months(value: Value, months: Value, n: int) -> Value:
    """``value`` plus ``months`` calendar months, the day clamped to the month's end."""
    value = as_array(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    total = pc.add(pc.add(pc.multiply(pc.cast(pc.year(value), pa.int64()), 12),
                          pc.subtract(pc.cast(pc.month(value), pa.int64()), 1)),
                   pc.cast(months, pa.int64()))
    valid = pc.and_(pc.is_valid(value), pc.is_valid(total))
    total = pc.fill_null(total, 0)  # (NULL rows: any valid date, masked at the end)
    year = pc.floor(pc.divide(pc.cast(total, pa.float64()), 12.0))
    month0 = pc.subtract(total, pc.multiply(pc.cast(year, pa.int64()), 12))
    first = pa.array(_days_from_civil(
        year.to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
        month0.to_numpy(zero_copy_only=False).astype(np.int64, copy=False) + 1,
        np.ones(len(value), np.int64)), pa.int32()).cast(pa.date32())
    day = pc.min_element_wise(pc.cast(pc.day(value), pa.int64()), _days_in_month(first, n))
    days = pc.add(pc.cast(pc.cast(first, pa.int32()), pa.int64()), pc.subtract(day, 1))
    if pa.types.is_date(value.type):
        out = pc.cast(pc.cast(days, pa.int32()), pa.date32())
    else:
        time_of_day = pc.subtract(micros(value), micros(pc.floor_temporal(value, unit="day")))
        out = pc.cast(pc.add(pc.multiply(days, _DAY_US), time_of_day), value.type)
    return pc.if_else(valid, out, pa.scalar(None, out.type))


def date_add(call: Call, args: list[Value], n: int) -> Value:
    """``date_add(unit, amount, value)``: Trino's DATE_ADD (and value +/- INTERVAL)."""
    unit = call.option("unit")
    amount, value = args
    if unit in ("month", "quarter", "year"):
        scale = {"month": 1, "quarter": 3, "year": 12}[unit]
        return _add_months(value, pc.multiply_checked(pc.cast(amount, pa.int64()), scale), n)
    step = pc.multiply_checked(pc.cast(amount, pa.int64()), FIXED_US[unit])
    if pa.types.is_date(call.dtype):
        days = pc.divide(step, _DAY_US)
        return pc.cast(pc.add_checked(pc.cast(pc.cast(value, pa.int32()), pa.int64()), days)
                       .cast(pa.int32()), pa.date32())
    return pc.cast(pc.add_checked(micros(value), step), call.dtype)


# MySQL's format tokens (Trino's date_format) -> a function of the timestamp giving its text.
def _strftime(fmt: str) -> Callable[[Value], Value]:
    return lambda v: pc.strftime(v, format=fmt)


def _unpadded(kernel: Callable[[Value], Value]) -> Callable[[Value], Value]:
    return lambda v: pc.cast(kernel(v), pa.string())


def _hour12(v: Value) -> Value:
    hour = pc.cast(pc.hour(v), pa.int64())
    return pc.add(pc.subtract(hour, pc.multiply(pc.floor(pc.divide(pc.add(hour, 11), 12.0))
                                                .cast(pa.int64()), 12)), 12)


def _micros_text(v: Value) -> Value:
    fraction = pc.subtract(micros(v), micros(pc.floor_temporal(v, unit="second")))
    return pc.utf8_lpad(pc.cast(fraction, pa.string()), width=6, padding="0")


DATE_FORMAT_TOKENS: dict[str, Callable[[Value], Value]] = {
    "Y": _strftime("%Y"), "y": _strftime("%y"), "m": _strftime("%m"),
    "c": _unpadded(pc.month), "d": _strftime("%d"), "e": _unpadded(pc.day),
    "H": _strftime("%H"), "k": _unpadded(pc.hour), "h": _strftime("%I"), "I": _strftime("%I"),
    "l": _unpadded(_hour12), "i": _strftime("%M"), "s": lambda v: pc.utf8_lpad(
        pc.cast(pc.second(v), pa.string()), width=2, padding="0"),
    "p": _strftime("%p"), "M": _strftime("%B"), "b": _strftime("%b"), "W": _strftime("%A"),
    "a": _strftime("%a"), "j": _strftime("%j"), "f": _micros_text,
}
DATE_FORMAT_TOKENS["S"] = DATE_FORMAT_TOKENS["s"]
DATE_FORMAT_TOKENS["T"] = lambda v: pc.binary_join_element_wise(
    *(DATE_FORMAT_TOKENS[c](v) for c in "His"), ":")
DATE_FORMAT_TOKENS["r"] = lambda v: pc.binary_join_element_wise(
    pc.binary_join_element_wise(*(DATE_FORMAT_TOKENS[c](v) for c in "his"), ":"),
    DATE_FORMAT_TOKENS["p"](v), " ")


def parse_date_format(fmt: str) -> list[tuple[str, str]]:
    """``fmt`` as (kind, text) pieces: ("token", "Y") or ("text", "-"). Raises ValueError
    on a token mpp does not know. ``%x`` of any other letter is that letter (MySQL)."""
    pieces: list[tuple[str, str]] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            token = fmt[i + 1]
            if token in DATE_FORMAT_TOKENS:
                pieces.append(("token", token))
            elif token in "DUuVvXxw":
                raise ValueError(f"date_format token %{token} is not supported by mpp")
            else:
                pieces.append(("text", token))
            i += 2
        else:
            pieces.append(("text", ch))
            i += 1
    return pieces


def _date_format(call: Call, args: list[Value], n: int) -> Value:
    fmt = constant(args[1])
    if fmt is None:
        return pa.scalar(None, pa.string())
    value = as_array(args[0], n)
    if pa.types.is_date(value.type):
        value = pc.cast(value, TIMESTAMP)
    whole = pc.floor_temporal(value, unit="second")  # %S of Arrow prints fractions
    parts = [DATE_FORMAT_TOKENS[text](whole if text != "f" else value) if kind == "token"
             else pa.scalar(text, pa.string()) for kind, text in parse_date_format(fmt)]
    if not parts:
        return pc.if_else(pc.is_valid(value), pa.scalar("", pa.string()),
                          pa.scalar(None, pa.string()))
    if len(parts) == 1 and isinstance(parts[0], pa.Scalar):
        return pc.if_else(pc.is_valid(value), parts[0], pa.scalar(None, pa.string()))
    out = pc.binary_join_element_wise(*parts, pa.scalar("", pa.string()))
    return pc.if_else(pc.is_valid(value), out, pa.scalar(None, pa.string()))


def _to_unixtime(call: Call, args: list[Value], n: int) -> Value:
    return pc.divide(pc.cast(micros(as_array(args[0], n)), pa.float64()), 1e6)


def _from_unixtime(call: Call, args: list[Value], n: int) -> Value:
    # Trino: timestamp(3), the seconds rounded to milliseconds (Java's Math.round: half up).
    millis = pc.floor(pc.add(pc.multiply(pc.cast(args[0], pa.float64()), 1000.0), 0.5))
    if pc.any(pc.greater(pc.abs(millis), 9.2e15)).as_py():
        raise SqlError("from_unixtime: value out of the timestamp range", call.line,
                       call.column)
    return pc.cast(pc.multiply(pc.cast(millis, pa.int64()), 1000), TIMESTAMP)


_EXTRACT: dict[str, Callable[[Value], Value]] = {
    "year": pc.year, "quarter": pc.quarter, "month": pc.month, "week": pc.iso_week,
    "day": pc.day, "day_of_year": pc.day_of_year, "year_of_week": pc.iso_year,
    "day_of_week": lambda v: pc.day_of_week(v, count_from_zero=False, week_start=1),
    "hour": pc.hour, "minute": pc.minute, "second": pc.second,
}


def _extract(call: Call, args: list[Value], n: int) -> Value:
    return pc.cast(_EXTRACT[call.option("field")](args[0]), pa.int64())


def _field(name: str) -> Callable[[Call, list[Value], int], Value]:
    return lambda call, args, n: pc.cast(_EXTRACT[name](args[0]), pa.int64())


register_kernel("date_trunc", _date_trunc, names=("date_trunc",))
register_kernel("date_diff", date_diff, names=("date_diff",))
register_kernel("date_add", date_add, names=("date_add",))
register_kernel("extract", _extract, names=("extract", "current_date"))

# The EXTRACT fields as functions: Trino's year(x), day_of_week(x), ... (BIGINT).
for _name, _aliases in (("year", ()), ("quarter", ()), ("month", ()),
                        ("week", ("week_of_year",)), ("day", ("day_of_month",)),
                        ("day_of_week", ("dow",)), ("day_of_year", ("doy",)),
                        ("year_of_week", ("yow",)), ("hour", ()), ("minute", ()),
                        ("second", ())):
    register(Function(_name, (1, 1), temporal(BIGINT, timestamp_only=_name in (
        "hour", "minute", "second")), _field(_name), f"{_name}(date or timestamp)"
        if _name not in ("hour", "minute", "second") else f"{_name}(timestamp)",
        aliases=_aliases))

register(Function("date_format", (2, 2), temporal(STRING, rest=(STRING,)), _date_format,
                  "date_format(timestamp, varchar format)", constants=(1,)))
register(Function("to_unixtime", (1, 1), temporal(DOUBLE), _to_unixtime,
                  "to_unixtime(timestamp)"))
register(Function("from_unixtime", (1, 1), fixed(DOUBLE, result=TIMESTAMP), _from_unixtime,
                  "from_unixtime(double)"))
