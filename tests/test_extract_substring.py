"""EXTRACT and substring with Trino's semantics, compared with DuckDB over the same file.

EXTRACT: every field Trino has for dates and timestamps (WEEK is the ISO week, DAY_OF_WEEK
counts Monday as 1); substring/substr: 1-based, a negative start counts from the end, and
'' for a start of 0, a length below 1 or a start before the beginning (Trino's
StringFunctions.substr, where DuckDB differs; the oracle translates it). NULLs, empty
strings and non-ASCII text included.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.errors import SqlError
from mpp.oracle import run_oracle
from tests.compare import assert_same_result

DATES = [dt.date(2024, 1, 7), dt.date(2023, 1, 1), dt.date(2020, 12, 31), None,
         dt.date(1998, 2, 28), dt.date(2021, 1, 3), dt.date(2000, 2, 29)]
TIMES = [dt.datetime(2024, 1, 7, 23, 59, 58, 500_000), None, dt.datetime(2020, 12, 31, 0, 0),
         dt.datetime(1998, 2, 28, 12, 30, 1), dt.datetime(2021, 1, 3, 1, 2, 3),
         dt.datetime(2000, 2, 29, 6, 7, 8, 999_999), dt.datetime(1970, 1, 1)]
TEXTS = ["hello", "", None, "héllo wörld", "a", "13-555-0101", "ab"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, cluster):
    root = tmp_path_factory.mktemp("es")
    pq.write_table(pa.table({
        "id": pa.array(range(len(DATES)), pa.int64()),
        "d": pa.array(DATES, pa.date32()),
        "ts": pa.array(TIMES, pa.timestamp("us")),
        "s": pa.array(TEXTS, pa.string()),
    }), root / "t.parquet")
    catalog = Catalog.open(root / "w", create=True)
    register_files(catalog, "t", str(root / "t.parquet"), "parquet")
    with mpp.connect(root / "w", cluster=cluster) as s:
        yield s


FIELDS = ["year", "quarter", "month", "week", "day", "day_of_week", "dow", "day_of_year",
          "doy", "year_of_week", "yow"]


@pytest.mark.parametrize("field", FIELDS + ["hour", "minute", "second"])
def test_extract_from_timestamp_like_duckdb(session, field: str) -> None:
    sql = f"SELECT id, extract({field} FROM ts) AS x FROM t"
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


@pytest.mark.parametrize("field", FIELDS)
def test_extract_from_date_like_duckdb(session, field: str) -> None:
    sql = f"SELECT id, EXTRACT({field} FROM d) AS x FROM t WHERE extract({field} FROM d) > 0"
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


def test_extract_is_a_bigint_and_groups(session) -> None:
    sql = "SELECT extract(year FROM d) AS y, count(*) AS n FROM t GROUP BY extract(year FROM d)"
    out = session.sql(sql).to_arrow()
    assert out.schema.field("y").type == pa.int64()
    assert_same_result(out, run_oracle(sql, session.catalog), sql)


SUBSTRINGS = ["substring(s FROM 1 FOR 2)", "substring(s, 2)", "substr(s, 1, 2)",
              "substr(s, 0, 2)", "substr(s, 0)", "substring(s, 3, 0)", "substring(s, 2, -1)",
              "substr(s, 6)", "substr(s, 100, 2)", "substr(s, -3)", "substr(s, -3, 2)",
              "substr(s, -3, 10)", "substr(s, -5, 1)", "substr(s, -6, 2)", "substr(s, -100)",
              "substring(s FROM 2)", "substr(s, NULL, 2)", "substr(s, 1, NULL)",
              "substr(substr(s, 2), -2, 1)", "substr('hello', -4, 2)"]


@pytest.mark.parametrize("call", SUBSTRINGS)
def test_substring_like_duckdb(session, call: str) -> None:
    sql = f"SELECT id, {call} AS x FROM t"
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


def test_substring_in_a_filter_and_group(session) -> None:  # TPC-H Q22's shape
    sql = ("SELECT substring(s, 1, 2) AS code, count(*) AS n FROM t "
           "WHERE substring(s, 1, 2) IN ('13', 'he', '') GROUP BY substring(s, 1, 2)")
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


@pytest.mark.parametrize(("sql", "message", "column"), [
    ("SELECT extract(hour FROM d) FROM t", "EXTRACT field 'hour' is not valid for a date", 8),
    ("SELECT extract(year FROM s) FROM t", "EXTRACT needs a date or timestamp", 8),
    ("SELECT substr(s, id) FROM t", "substring start that is not an integer constant", 18),
    ("SELECT substr(d, 1) FROM t", "substring needs a varchar", 8),
    ("SELECT substr(s, 1, 2, 3) FROM t", "substring takes 2 or 3 arguments", 8),
    ("SELECT\n  strpo(s, 'a') FROM t", "function strpo() is not in mpp's SQL subset (did "
                                        "you mean strpos", 3),
])
def test_errors_name_the_construct_and_position(session, sql: str, message: str,
                                               column: int) -> None:
    with pytest.raises(SqlError) as info:
        session.sql(sql)
    assert message in str(info.value) and info.value.column == column, str(info.value)
