"""The scalar function library (mpp.functions) against DuckDB over the same file.

Every function runs over a table with NULLs, empty strings, negative numbers and .5 ties, on
mpp and on DuckDB (the oracle translates the calls where Trino and DuckDB differ: round of
.5, concat with NULL, split_part and regexp_extract out of range, date_format tokens, ...).
Unknown functions are errors naming them, with line, column and the closest names.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.errors import SqlError
from mpp.oracle import run_oracle
from tests.compare import assert_same_result
from tests.query_warehouses import warehouse

S = ["hello", "", None, " \t pad me\n\u00a0 ", "a,b,,c", "Héllo Wörld", "x%y_z", "abcabc", "13-555"]
T = ["l", "", "b", None, ",", "ö", "%", "bc", "-"]
N = [3, -7, None, 0, 2, -2, 10, 1, 5]
K = [0, 2, 3, None, -3, 4, 1, 7, -1]
X = [2.5, -2.5, None, 0.0, 1.25, -0.5, 1234.5678, 3.0, -1.4999]
D = [dt.date(2024, 1, 31), dt.date(2023, 2, 28), None, dt.date(2000, 2, 29),
     dt.date(1999, 12, 31), dt.date(2021, 1, 3), dt.date(1970, 1, 1), dt.date(2020, 6, 15),
     dt.date(2024, 3, 31)]
TS = [dt.datetime(2024, 1, 31, 23, 59, 58, 500_000), None, dt.datetime(2020, 12, 31, 0, 0),
      dt.datetime(1998, 2, 28, 12, 30, 1), dt.datetime(2021, 1, 3, 1, 2, 3),
      dt.datetime(2000, 2, 29, 6, 7, 8, 999_999), dt.datetime(1970, 1, 1),
      dt.datetime(2019, 7, 4, 13, 0, 59, 123_456), dt.datetime(2024, 3, 31, 12, 0)]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, cluster):
    root = tmp_path_factory.mktemp("fn")
    pq.write_table(pa.table({
        "id": pa.array(range(len(S)), pa.int64()),
        "s": pa.array(S, pa.string()), "t": pa.array(T, pa.string()),
        "i": pa.array(N, pa.int32()), "k": pa.array(K, pa.int64()),
        "x": pa.array(X, pa.float64()),
        "m": pa.array([None if v is None else Decimal(str(round(v, 2))) for v in X],
                      pa.decimal128(10, 2)),
        "d": pa.array(D, pa.date32()), "ts": pa.array(TS, pa.timestamp("us")),
    }), root / "f.parquet")
    catalog = Catalog.open(root / "w", create=True)
    register_files(catalog, "f", str(root / "f.parquet"), "parquet")
    with mpp.connect(root / "w", cluster=cluster) as s:
        yield s


def check(session, call: str, where: str = "") -> None:
    sql = f"SELECT id, {call} AS v FROM f{where}"
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


STRINGS = ["lower(s)", "upper(s)", "length(s)", "trim(s)", "ltrim(s)", "rtrim(s)",
           "concat(s, t)", "s || t", "concat(s, '-', t, '!')", "s || 'x'",
           "replace(s, 'l')", "replace(s, 'l', 'LL')", "replace(s, ',', '')",
           "split_part(s, ',', 1)", "split_part(s, ',', 3)", "split_part(s, ',', 4)",
           "split_part(s, ',', 9)", "split_part(s, '-', k + 4)",
           "strpos(s, 'l')", "strpos(s, 'bc')", "position('l' IN s)", "trim(s, ' h')",
           "trim(BOTH 'a' FROM s)", "trim(LEADING ' ' FROM s)", "rtrim(s, 'c')", "strpos(s, 'ö')", "strpos(s, 'zz')",
           "starts_with(s, 'he')", "starts_with(s, '')",
           "substr(s, 2, 3)", "substring(s, -3)",
           "regexp_like(s, 'l+o')", "regexp_like(s, '^[a-z]+$')",
           "regexp_extract(s, 'l+')", "regexp_extract(s, '(\\w)(\\w)', 2)",
           "regexp_extract(s, '[0-9]+')", "s LIKE 'x!%%' ESCAPE '!'",
           "s LIKE '%!_%' ESCAPE '!'", "s NOT LIKE 'h%' ESCAPE 'h'", "s LIKE '%\\_%' ESCAPE '\\'"]


@pytest.mark.parametrize("call", STRINGS)
def test_string_functions_like_duckdb(session, call: str) -> None:
    check(session, call)


MATH = ["abs(i)", "abs(x)", "round(x)", "round(x, 1)", "round(x, 2)", "round(i, -1)",
        "round(i)", "floor(x)", "ceil(x)", "ceiling(i)", "floor(i)", "mod(i, 3)", "mod(x, 2)",
        "mod(-i, 4)", "sign(i)", "sign(x)", "power(i, 2)", "pow(x, 2)", "sqrt(abs(x))",
        "sqrt(x)", "ln(abs(x))", "exp(x)", "i / 4", "round(i / 3.0, 3)"]


@pytest.mark.parametrize("call", MATH)
def test_math_functions_like_duckdb(session, call: str) -> None:
    check(session, call)


CONDITIONAL = ["greatest(i, k)", "least(i, k, 2)", "greatest(x, i)", "greatest(s, t)",
               "least(d, DATE '2000-01-01')", "nullif(i, 3)", "nullif(s, '')",
               "if(i > 0, s, t)", "if(i > 0, 1)", "coalesce(s, t, 'none')",
               "coalesce(i, k)", "i IS DISTINCT FROM k", "i IS NOT DISTINCT FROM k",
               "s IS DISTINCT FROM NULL", "NULL IS NOT DISTINCT FROM NULL"]


@pytest.mark.parametrize("call", CONDITIONAL)
def test_conditional_functions_like_duckdb(session, call: str) -> None:
    check(session, call)


TEMPORAL = ["year(d)", "month(ts)", "day(d)", "hour(ts)", "minute(ts)", "second(ts)",
            "day_of_week(d)", "dow(ts)", "day_of_year(d)", "doy(ts)", "quarter(d)",
            "week(d)", "year_of_week(d)", "day_of_month(ts)", "extract(month FROM d)",
            "date_add('day', 3, d)", "date_add('month', 1, d)", "date_add('year', -1, d)",
            "date_add('quarter', 1, d)", "date_add('month', i, d)", "date_add('week', 2, d)",
            "date_add('hour', 25, ts)", "date_add('minute', -90, ts)",
            "date_add('month', 1, ts)", "date_add('second', k, ts)",
            "d + INTERVAL '1' MONTH", "d - INTERVAL '3' DAY", "ts + INTERVAL '2' HOUR",
            "ts - INTERVAL '1' YEAR", "INTERVAL '1' DAY + d",
            "date_format(ts, '%Y-%m-%d %H:%i:%s')", "date_format(d, '%Y/%c/%e %j')",
            "date_format(ts, '%T %r %p %h %l %k %f')", "date_format(ts, '%M %b %W %a %y %%')",
            "to_unixtime(ts)", "to_unixtime(d)", "from_unixtime(to_unixtime(ts))",
            "from_unixtime(x)", "date_diff('day', d, DATE '2020-01-01')",
            "date_diff('month', d, DATE '2020-02-29')", "date_diff('year', d, DATE '2020-02-29')",
            "date_diff('month', ts, TIMESTAMP '2020-02-29 12:00:00')",
            "date_diff('quarter', TIMESTAMP '2020-02-29 12:00:00', ts)"]


@pytest.mark.parametrize("call", TEMPORAL)
def test_temporal_functions_like_duckdb(session, call: str) -> None:
    check(session, call)


def test_current_date_is_today(session) -> None:
    sql = "SELECT count(*) AS n FROM f WHERE current_date >= d"
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


@pytest.mark.parametrize("call", ["lower(s) = 'hello' AND length(s) > 2",
                                  "split_part(s, ',', 2) IS NULL",
                                  "regexp_like(s, 'l') OR i IS NOT DISTINCT FROM k"])
def test_functions_in_filters_and_groups(session, call: str) -> None:
    sql = (f"SELECT upper(substr(s, 1, 1)) AS c, count(*) AS n FROM f WHERE {call} "
           "GROUP BY upper(substr(s, 1, 1))")
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


@pytest.mark.parametrize(("sql", "message", "line", "column"), [
    ("SELECT lowr(s) FROM f", "function lowr() is not in mpp's SQL subset (did you mean "
                              "lower", 1, 8),
    ("SELECT id,\n  date_dif('day', d, d) FROM f", "did you mean date_diff", 2, 3),
    ("SELECT stddev_sam(x) FROM f", "did you mean stddev_samp", 1, 8),
    ("SELECT zzz(s) FROM f", "(docs/functions.md lists the functions mpp has)", 1, 8),
    ("SELECT reverse(s) FROM f", "function reverse() is not in mpp's SQL subset", 1, 8),
    ("SELECT lower(i) FROM f", "function lower() cannot be applied to (integer): expected "
                               "lower(varchar)", 1, 8),
    ("SELECT s || i FROM f", "function concat() cannot be applied to (varchar, integer)", 1, 8),
    ("SELECT split_part(s, t, 1) FROM f", "split_part() with argument 2 not a constant", 1, 8),
    ("SELECT round(x, 1, 2) FROM f", "round takes 1 or 2 arguments", 1, 8),
    ("SELECT concat(s) FROM f", "concat takes at least 2 arguments, not 1", 1, 8),
    ("SELECT hour(d) FROM f", "expected hour(timestamp)", 1, 8),
    ("SELECT s LIKE 'a!b' ESCAPE '!' FROM f", "Escape character must be followed by", 1, 28),
    ("SELECT date_add('hour', 1, d) FROM f", "unsupported unit 'hour' for date", 1, 8),
])
def test_function_errors_name_the_function_and_position(session, sql: str, message: str,
                                                        line: int, column: int) -> None:
    with pytest.raises(SqlError) as info:
        session.sql(sql)
    assert message in str(info.value), str(info.value)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT split_part(s, ',', 0) FROM f", "Index must be greater than zero"),
    ("SELECT regexp_extract(s, 'a(b)', 2) FROM f", "Pattern has 1 groups. Cannot access group 2"),
    ("SELECT abs(CAST(-9223372036854775807 - 1 AS bigint) + k - k) FROM f", "overflow"),
])
def test_function_errors_at_run_time_are_trinos(session, sql: str, message: str) -> None:
    with pytest.raises(SqlError) as info:
        session.sql(sql)
    assert message in str(info.value), str(info.value)


LAZY = ["CASE WHEN k <> 0 THEN 10 / k ELSE 0 END",
        "CASE WHEN k IS NULL THEN -1 WHEN k = 0 THEN 0 WHEN 100 / k > 10 THEN 100 / k END",
        "if(i > 0, CAST(3000000000 AS integer), i)", "if(k = 0, 0, 7 % k)",
        "coalesce(k, CAST(3000000000 AS integer))", "coalesce(CASE WHEN k = 0 THEN 1 END, 5 / k)",
        "CASE k WHEN 0 THEN 'zero' ELSE CAST(10 / k AS varchar) END"]


@pytest.mark.parametrize("call", LAZY)
def test_branches_are_evaluated_only_where_taken(session, call: str) -> None:
    # Trino evaluates a branch only for the rows that take it: no division by zero here.
    where = " WHERE i <= 0" if "3000000000" in call and "coalesce" not in call else ""
    if "coalesce(k," in call:
        where = " WHERE k IS NOT NULL"
    check(session, call, where)


@pytest.mark.parametrize("where", ["k <> 0 AND 10 / k > 1", "k = 0 OR 10 / k > 1",
                                   "i > 0 AND (k = 0 OR 7 % k = 1) AND s IS NOT NULL"])
def test_and_or_evaluate_a_term_only_where_still_undecided(session, where: str) -> None:
    check(session, "s", f" WHERE {where}")


def test_nothing_is_evaluated_over_no_rows(session) -> None:
    sql = "SELECT CAST(3000000000 AS integer) AS v, 1 / 0 AS w FROM f WHERE id < 0"
    assert session.sql(sql).to_arrow().num_rows == 0


def test_a_branch_taken_still_fails(session) -> None:
    with pytest.raises(SqlError, match="Division by zero|divide by zero"):
        session.sql("SELECT CASE WHEN k = 0 THEN 10 / k END AS v FROM f").to_arrow()


# Over a generated warehouse: access_log spread over 8 fragments (and as CSV), joined to its
# dimension tables, functions in the select list, WHERE, GROUP BY and inside aggregates.
WAREHOUSE_QUERIES = [
    "SELECT date_format(time, '%Y-%m-%d %H:00') AS hour, count(*) AS n, "
    "sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors FROM access_log "
    "GROUP BY date_format(time, '%Y-%m-%d %H:00')",
    "SELECT day_of_week(date) AS dow, greatest(max(bytes), 0) AS m, round(avg(bytes) / 1000, 2) "
    "AS kb FROM access_log WHERE date + INTERVAL '1' DAY > DATE '2017-01-02' "
    "GROUP BY day_of_week(date)",
    "SELECT upper(split_part(u.path, '/', 2)) AS top, count(DISTINCT a.user_id) AS users "
    "FROM access_log a JOIN urls u ON a.url_id = u.url_id "
    "WHERE regexp_like(u.path, '^/[a-z]') GROUP BY upper(split_part(u.path, '/', 2))",
    "SELECT concat(country, '-', plan) AS cp, count(*) AS n, min(date_add('month', 1, "
    "created_at)) AS first_renewal FROM users WHERE nullif(country, 'US') IS NOT NULL "
    "GROUP BY concat(country, '-', plan)",
    "SELECT hour(time) AS h, sum(if(bytes > 0, 1000 / bytes, 0)) AS inverse FROM access_log "
    "WHERE status IS DISTINCT FROM 200 GROUP BY hour(time)",
]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("sql", WAREHOUSE_QUERIES)
def test_functions_over_many_fragments_like_duckdb(cluster, fmt: str, sql: str) -> None:
    with mpp.connect(warehouse(cluster.client, fmt, 8), cluster=cluster) as s:
        assert_same_result(s.sql(sql).to_arrow(), run_oracle(sql, s.catalog), sql)


def test_date_add_of_constants_folds_so_the_filter_prunes(session) -> None:
    sql = ("SELECT count(*) AS n FROM f WHERE d >= date_add('quarter', -1, DATE '2000-05-31') "
           "AND ts < date_add('hour', 36, TIMESTAMP '2024-01-30 12:00:00')")
    assert "DATE '2000-02-29'" in session.explain(sql) and "2024-02-01 00:00:00" in \
        session.explain(sql)
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


@pytest.mark.parametrize("unit", ["millisecond", "second", "minute", "hour", "day", "week",
                                  "month", "quarter", "year"])
def test_date_diff_every_unit_like_trino(session, unit: str) -> None:
    # Trino counts whole units elapsed (DuckDB's date_diff counts boundaries: translated).
    check(session, f"date_diff('{unit}', ts, TIMESTAMP '2020-02-29 12:00:00')")
    check(session, f"date_diff('{unit}', TIMESTAMP '2000-01-31 23:59:59.999', ts)")


def test_regexp_extract_of_a_group_not_in_the_match_is_null(session) -> None:
    # Trino: NULL (DuckDB gives '', which its SQL cannot tell from an empty match): the rows
    # matching 'l', where the optional (x) never takes part, are exactly those with NULL.
    sql = ("SELECT id FROM f WHERE regexp_like(s, 'l') "
           "AND regexp_extract(s, 'l(x)?', 1) IS NULL AND regexp_extract(s, 'l(x)?') = 'l'")
    expected = run_oracle("SELECT id FROM f WHERE regexp_like(s, 'l')", session.catalog)
    assert expected.num_rows > 0
    assert_same_result(session.sql(sql).to_arrow(), expected, sql)


def test_explain_shows_the_calls_as_written() -> None:
    from mpp.logical.explain import explain_logical
    from mpp.sql import bind
    from tests.fake_catalog import FakeCatalog

    text = explain_logical(bind(
        "SELECT date_add('month', 1, date), date + INTERVAL '1' DAY, lower(path) FROM "
        "access_log a JOIN urls u ON a.url_id = u.url_id WHERE path LIKE 'a!%' ESCAPE '!' "
        "AND status IS NOT DISTINCT FROM 3", FakeCatalog()))
    assert "date_add('month', 1, a.date)" in text and "date_add('day', 1, a.date)" in text
    assert "lower(u.path)" in text and "u.path LIKE 'a!%' ESCAPE '!'" in text
    assert "a.status IS NOT DISTINCT FROM 3" in text


DECIMALS = ["round(m)", "round(m, 1)", "round(CAST(99999999.99 AS decimal(10, 2)))",
            "floor(CAST(-99999999.99 AS decimal(10, 2)))", "ceil(m * m)", "abs(m)", "floor(m)", "ceil(m)", "sign(m)",
            "greatest(m, i)", "least(m, 1.5)", "nullif(m, 2.5)", "coalesce(m, 0)",
            "power(m, 2)", "sqrt(abs(m))", "mod(m, 2)"]


@pytest.mark.parametrize("call", DECIMALS)
def test_functions_of_decimals_like_duckdb(session, call: str) -> None:
    check(session, call)


def test_floor_ceil_round_of_a_decimal_are_whole_decimals(session) -> None:
    # Trino: DECIMAL(p, s) -> DECIMAL(p - s + min(s, 1), 0) (round with digits keeps the type)
    out = session.sql("SELECT round(m) AS r, floor(m) AS f, ceil(m) AS c, round(m, 1) AS r1 "
                      "FROM f").to_arrow()
    assert [out.schema.field(c).type for c in ("r", "f", "c", "r1")] == [
        pa.decimal128(9, 0), pa.decimal128(9, 0), pa.decimal128(9, 0), pa.decimal128(10, 2)]
