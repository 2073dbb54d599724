"""INTERVAL in date arithmetic: DATE/TIMESTAMP literals +/- INTERVAL fold to a literal while
binding (so the filter still prunes), with Trino's month arithmetic; anything else is a
located SqlError."""

from __future__ import annotations

import datetime as dt

import pytest

from mpp.errors import SqlError
from mpp.logical.explain import explain_logical
from mpp.sql import bind
from mpp.sql.folding import shift
from tests.fake_catalog import FakeCatalog

CATALOG = FakeCatalog()


@pytest.mark.parametrize(("value", "amount", "unit", "expected"), [
    (dt.date(2000, 1, 31), 1, "month", dt.date(2000, 2, 29)),  # clamped to the month's end
    (dt.date(2000, 3, 31), -1, "month", dt.date(2000, 2, 29)),
    (dt.date(2000, 2, 29), 1, "year", dt.date(2001, 2, 28)),
    (dt.date(1998, 12, 1), -90, "day", dt.date(1998, 9, 2)),
    (dt.date(1994, 1, 1), 3, "month", dt.date(1994, 4, 1)),
    (dt.date(1994, 11, 1), 3, "month", dt.date(1995, 2, 1)),
    (dt.date(2020, 1, 1), 2, "week", dt.date(2020, 1, 15)),
    (dt.datetime(2020, 1, 1, 23, 30), 90, "minute", dt.datetime(2020, 1, 2, 1, 0)),
])
def test_shift_follows_trino(value: dt.date, amount: int, unit: str, expected: dt.date) -> None:
    assert shift(value, amount, unit) == expected


def test_literal_plus_interval_folds_into_the_filter() -> None:
    plan = bind("SELECT count(*) FROM access_log WHERE date >= DATE '2017-01-31' + INTERVAL "
                "'1' MONTH AND time < TIMESTAMP '2017-01-02 00:00:00' - interval '30' minute "
                "AND date < INTERVAL '2' day + DATE '2017-03-01'", CATALOG)
    text = explain_logical(plan)
    assert "DATE '2017-02-28'" in text and "DATE '2017-03-03'" in text
    assert "2017-01-01 23:30:00" in text and "INTERVAL" not in text.upper()


@pytest.mark.parametrize(("sql", "message", "column"), [
    ("SELECT date FROM access_log WHERE date > DATE '2017-01-01' + INTERVAL '1' HOUR",
     "unsupported INTERVAL unit 'hour' for date32[day]", 62),
    ("SELECT date FROM access_log WHERE date > INTERVAL '1' DAY - DATE '2017-01-01'",
     "operator - cannot be applied to an INTERVAL", 42),
    ("SELECT date FROM access_log WHERE date > DATE '2017-01-01' * INTERVAL '1' DAY",
     "operator * cannot be applied to an INTERVAL", 62),
    ("SELECT date FROM access_log WHERE date > date + INTERVAL '1' HOUR",
     "unsupported unit 'hour' for date", 49),
    ("SELECT date FROM access_log WHERE date > DATE '2017-01-01' + INTERVAL '1.5' DAY",
     "INTERVAL needs a whole number", 62),
])
def test_other_interval_uses_are_located_errors(sql: str, message: str, column: int) -> None:
    with pytest.raises(SqlError) as info:
        bind(sql, CATALOG)
    assert message in str(info.value) and info.value.column == column


def test_decimal_literal_arithmetic_is_folded_exactly() -> None:
    # TPC-H Q6's range: in binary 0.06 + 0.01 is 0.06999999999999999 and drops l_discount 0.07
    plan = bind("SELECT count(*) FROM access_log WHERE bytes BETWEEN 0.06 - 0.01 AND 0.06 + 0.01"
                " AND status < 2 * 0.15 AND bytes > 1 + 2", CATALOG)
    text = explain_logical(plan)
    assert "0.05" in text and "0.07" in text and "0.3" in text
    assert "0.0699999" not in text and "0.30000000000000004" not in text
    assert "1 + 2" in text  # integer arithmetic is left as written
