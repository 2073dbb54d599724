"""SQL errors: syntax errors, constructs outside the subset, unknown names; each with a
line and column (and candidates for unknown names)."""

from __future__ import annotations

import pytest

from mpp.errors import SqlError, UnknownColumnError, UnknownTableError
from mpp.sql import bind, parse
from tests.fake_catalog import FakeCatalog

CATALOG = FakeCatalog()


def error_of(sql: str) -> SqlError:
    with pytest.raises(SqlError) as info:
        bind(sql, CATALOG)
    return info.value


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(SqlError) as info:
        parse("SELECT date\nFROM access_log\nWHERE (status = 1")
    assert info.value.line == 3
    assert "syntax error" in str(info.value) and "line 3" in str(info.value)


def test_syntax_error_column_points_at_the_bad_token() -> None:
    with pytest.raises(SqlError) as info:
        parse("SELECT a FROM t WHERE a ==== 1")
    assert (info.value.line, info.value.column) == (1, 27)


def test_unterminated_string_points_at_its_quote() -> None:
    with pytest.raises(SqlError) as info:
        parse("SELECT 1\nFROM t WHERE x = 'abc")
    assert (info.value.line, info.value.column) == (2, 18)


def test_two_statements_are_rejected() -> None:
    with pytest.raises(SqlError, match="one statement"):
        parse("SELECT 1 FROM t; SELECT 2 FROM t")


@pytest.mark.parametrize(("sql", "construct", "line", "column"), [
    ("SELECT date,\n  count(*) OVER (ORDER BY date GROUPS 1 PRECEDING) FROM access_log",
     "GROUPS window frame", 2, 39),
    ("SELECT a.date FROM access_log a\nNATURAL JOIN users b", "NATURAL JOIN", 2, 1),
    ("SELECT date FROM access_log WHERE status = 1 OR user_id IN (SELECT user_id FROM users)",
     "IN (subquery) other than as a WHERE condition", 1, 49),
    ("SELECT date FROM access_log ORDER BY (SELECT max(date) FROM access_log)",
     "scalar subquery in ORDER BY", 1, 39),
    ("SELECT reverse(country) FROM users", "function reverse()", 1, 8),
    ("SELECT date, sum(DISTINCT bytes, status) FROM access_log GROUP BY date",
     "sum(DISTINCT ...) of several arguments", 1, 14),
    ("SELECT approx_percentile(bytes, 0.5) FROM access_log",
     "aggregate function approx_percentile()", 1, 8),
    ("INSERT INTO users SELECT * FROM users", "INSERT statement", 1, 1),
])
def test_unsupported_construct_is_named_with_position(sql: str, construct: str, line: int,
                                                      column: int) -> None:
    err = error_of(sql)
    assert "unsupported SQL" in str(err) and construct in str(err)
    assert (err.line, err.column) == (line, column)


def test_unknown_table_names_candidates_and_position() -> None:
    err = error_of("SELECT date\nFROM acess_log")
    assert isinstance(err, UnknownTableError)
    assert "'access_log'" in str(err) and (err.line, err.column) == (2, 6)


def test_unknown_column_names_candidates_and_position() -> None:
    err = error_of("SELECT date, user_idd FROM access_log")
    assert isinstance(err, UnknownColumnError)
    assert "Did you mean 'user_id'" in str(err) and (err.line, err.column) == (1, 14)


def test_unknown_qualifier_names_the_aliases_in_scope() -> None:
    err = error_of("SELECT c.date FROM access_log a JOIN users b ON b.user_id = a.user_id")
    assert isinstance(err, UnknownColumnError)
    assert "a, b" in str(err) and (err.line, err.column) == (1, 8)


def test_ambiguous_column() -> None:
    err = error_of("SELECT user_id FROM access_log a JOIN users b ON b.user_id = a.user_id")
    assert "ambiguous" in str(err) and "a.user_id" in str(err) and "b.user_id" in str(err)


def test_ungrouped_column_is_named() -> None:
    err = error_of("SELECT date, status, count(*) FROM access_log GROUP BY date")
    assert "'status'" in str(err) and "GROUP BY" in str(err)
    assert (err.line, err.column) == (1, 14)


def test_aggregate_in_where() -> None:
    err = error_of("SELECT date FROM access_log WHERE count(*) > 1")
    assert "not allowed in WHERE" in str(err) and err.column == 35


def test_type_errors_are_located() -> None:
    err = error_of("SELECT date FROM access_log WHERE country_x = 1 OR date + 1 > 2"
                   .replace("country_x = 1 OR ", ""))
    assert "operator +" in str(err)
    err = error_of("SELECT date FROM access_log WHERE user_id LIKE 'a%'")
    assert "LIKE" in str(err)
    err = error_of("SELECT date FROM access_log WHERE date = DATE '2017-13-01'")
    assert "invalid DATE literal" in str(err)


def test_group_by_position_out_of_range() -> None:
    err = error_of("SELECT date, count(*) FROM access_log GROUP BY 3")
    assert "position 3" in str(err) and err.column == 48


def test_join_needs_a_condition() -> None:
    err = error_of("SELECT a.date FROM access_log a\nLEFT JOIN users b")
    assert "LEFT JOIN needs ON or USING" in str(err) and (err.line, err.column) == (2, 6)


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT FROM access_log", "select list is empty"),
    ("SELECT date FROM access_log WHERE date IN ()", "IN needs at least one value"),
    ("SELECT 99999999999999999999 FROM access_log", "out of the BIGINT range"),
    ("SELECT date FROM access_log TABLESAMPLE BERNOULLI (10)", "TABLESAMPLE"),
    ("SELECT count(DISTINCT) FROM access_log", "needs an argument"),
    ("SELECT date FROM access_log FOR VERSION AS OF 123", "no snapshot 123 of table 'access_log'"),
    ("SELECT date FROM access_log GROUP BY ALL", "GROUP BY ALL"),
    ("SELECT date FROM access_log FETCH FIRST 3 ROWS WITH TIES", "WITH TIES"),
    ("SELECT date FROM access_log WHERE time = TIMESTAMP 'bad'", "invalid TIMESTAMP literal"),
])
def test_odd_input_gives_a_clear_error(sql: str, message: str) -> None:
    err = error_of(sql)
    assert message in str(err) and err.line == 1


def test_duplicate_alias() -> None:
    err = error_of("SELECT a.date FROM access_log a JOIN users a ON a.user_id = a.user_id")
    assert "used twice" in str(err)


@pytest.mark.parametrize(("sql", "message", "line", "column"), [
    ("SELECT date_diff('day', time) FROM access_log",
     "date_diff takes 3 arguments (unit, start, end)", 1, 8),
    ("SELECT date,\n  coalesce(date_trunc('day')) FROM access_log",
     "date_trunc takes 2 arguments (unit, value)", 2, 12),
    ("SELECT sum(bytes, status) FROM access_log", "sum takes 1 argument", 1, 8),
    ("SELECT upper() FROM users", "upper takes 1 argument", 1, 8),
    ("SELECT * FROM access_log WHERE", "WHERE needs a condition", 1, 26),
    ("SELECT *\nFROM access_log\nWHERE\n", "WHERE needs a condition", 3, 1),
    ("SELECT date FROM access_log GROUP BY date HAVING", "HAVING needs a condition", 1, 43),
    ("SELECT date FROM access_log ORDER BY", "ORDER BY needs at least one expression", 1, 29),
    ("SELECT date FROM access_log LIMIT", "LIMIT needs a row count", 1, 29),
    ("SELECT date FROM access_log WHERE status =", "operator = needs an operand", 1, 42),
    ("SELECT date FROM access_log WHERE status BETWEEN 1", "BETWEEN needs both bounds", 1, 50),
    ("SELECT date FROM access_log UNION", "UNION needs a query on each side", 1, 29),
    ("SELECT * FROM", "Expected table name but got the end of the query", 1, 10),
])
def test_incomplete_sql_is_named_without_sqlglot_internals(sql: str, message: str, line: int,
                                                           column: int) -> None:
    with pytest.raises(SqlError) as info:
        parse(sql)
    err = info.value
    assert str(err).startswith(f"syntax error: {message}")
    assert "sqlglot" not in str(err) and "Required keyword" not in str(err)
    assert "<Token" not in str(err)
    assert (err.line, err.column) == (line, column)


@pytest.mark.parametrize(("sql", "message", "column"), [
    ("SELECT date_diff('day', time, date, time) FROM access_log",
     "date_diff takes 3 arguments (unit, start, end), not 4", 8),
    ("SELECT date_trunc('day', time, 1) FROM access_log",
     "date_trunc takes 2 arguments (unit, value), not 3", 8),
    ("SELECT count(user_id, date) FROM access_log", "count takes 1 argument", 8),
    ("SELECT date FROM access_log GROUP BY", "GROUP BY needs at least one expression", 29),
    ("SELECT a.date FROM access_log a JOIN users b ON", "ON needs a condition", 46),
])
def test_surplus_arguments_and_dangling_clauses_sqlglot_accepts(sql: str, message: str,
                                                                column: int) -> None:
    """sqlglot drops date_diff's 4th argument and parses a bare GROUP BY or ON; mpp does not."""
    err = error_of(sql)
    assert message in str(err) and (err.line, err.column) == (1, column)


@pytest.mark.parametrize(("sql", "line", "column"), [
    ("SELECT date,\n status,\n rank() OVER (PARTITION BY date ORDER BY status) FROM access_log",
     3, 9),
    ("SELECT date,\n count(*) OVER (PARTITION BY date) FROM access_log", 2, 11),
    ("SELECT date,\n sum(bytes) OVER () FROM access_log WHERE status = 200", 2, 13),
])
def test_window_function_without_group_by_is_no_aggregate_query(sql: str, line: int,
                                                                 column: int) -> None:
    # count(*) OVER (...) does not make the query an aggregate query: its other columns need
    # no GROUP BY (window functions themselves are tested in tests/test_windows.py).
    assert bind(sql, CATALOG).output_names[0] == "date"


@pytest.mark.parametrize(("sql", "construct", "line", "column"), [
    ("SELECT date FROM access_log\nWHERE time > INTERVAL '1' DAY", "INTERVAL outside date",
     2, 14),
    ("SELECT date FROM access_log WHERE NOT (status = 1 AND EXISTS (SELECT 1 FROM users))",
     "EXISTS (subquery) other than as a WHERE condition", 1, 55),
    ("SELECT levenshtein(path, 'a') FROM access_log", "function levenshtein()", 1, 8),
    ("SELECT date, count(*) FROM access_log GROUP BY ROLLUP (date)", "GROUP BY ROLLUP", 1, 48),
    ("SELECT date, count(*) FROM access_log GROUP BY date, CUBE (status)", "GROUP BY CUBE",
     1, 54),
    ("SELECT date, count(*) FROM access_log\nGROUP BY GROUPING SETS ((date), ())",
     "GROUP BY GROUPING SETS", 2, 10),
    ("SELECT * FROM UNNEST(ARRAY[1, 2]) AS t (x)", "UNNEST", 1, 15),
    ("SELECT now() FROM users", "function now()", 1, 8),
    ("SELECT CAST(country AS varchar(3)) FROM users", "CAST to VARCHAR(3)", 1, 8),
    ("SELECT CAST(country AS char) FROM users", "CAST to CHAR", 1, 8),
])
def test_constructs_are_named_and_located_at_their_keyword(sql: str, construct: str, line: int,
                                                           column: int) -> None:
    err = error_of(sql)
    assert "unsupported SQL" in str(err) and construct in str(err)
    assert "expression '" not in str(err) and "EXPRESSIONS" not in str(err)
    assert (err.line, err.column) == (line, column)


@pytest.mark.parametrize(("sql", "message", "column"), [
    ("SELECT date FROM foo.bar.access_log", "unknown catalog 'foo' in 'foo.bar.access_log'", 18),
    ("SELECT date FROM hive.default.access_log", "unknown catalog 'hive'", 18),
    ("SELECT date FROM mpp.default.access_log", "unknown schema 'default'", 22),
    ("SELECT date FROM default.access_log", "unknown schema 'default'", 18),
    ("SELECT x.access_log.date FROM access_log", "unknown schema 'x'", 8),
])
def test_unknown_catalog_or_schema_qualifier_is_an_error(sql: str, message: str,
                                                         column: int) -> None:
    err = error_of(sql)
    assert message in str(err) and (err.line, err.column) == (1, column)


def test_mpp_qualifiers_name_the_one_catalog_and_schema() -> None:
    for sql in ("SELECT date FROM mpp.access_log", "SELECT date FROM mpp.mpp.access_log",
                "SELECT mpp.access_log.date FROM access_log"):
        assert bind(sql, CATALOG).output_names == ("date",)


def test_typed_literals_keep_working_beside_the_cast_parameter_check() -> None:
    plan = bind("SELECT CAST(date AS varchar) AS d FROM access_log "
                "WHERE time >= TIMESTAMP '2017-01-02 00:00:00.123'", CATALOG)
    assert plan.output_names == ("d",)


def test_errors_at_run_time_point_at_the_expression_as_written() -> None:
    # Division by zero and a failing CAST happen in the tasks; the error quotes the SQL of the
    # innermost call the user wrote (not an implicit cast the binder inserted) and its place.
    import pyarrow as pa

    from mpp.logical.evaluate import evaluate
    from mpp.logical.nodes import Project

    plan = bind("SELECT status,\n  bytes / (status - status) AS x FROM access_log", CATALOG)
    project = plan.root
    while not isinstance(project, Project):
        project = project.children[0]
    table = pa.table({f.name: pa.array([200], f.dtype) for f in project.input.schema})
    with pytest.raises(SqlError) as info:
        evaluate(project.exprs[1], table)
    assert str(info.value).startswith("cannot evaluate bytes / (status - status): divide by zero")
    assert (info.value.line, info.value.column) == (2, 3)
