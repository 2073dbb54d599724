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
    ("SELECT date FROM access_log\nUNION SELECT date FROM access_log", "UNION", 2, 1),
    ("SELECT date,\n  row_number() OVER (ORDER BY date) FROM access_log", "window function",
     2, 16),
    ("SELECT a.date FROM access_log a\nRIGHT JOIN users b ON b.user_id = a.user_id",
     "RIGHT JOIN", 2, 1),
    ("SELECT a.date FROM access_log a FULL OUTER JOIN users b ON b.user_id = a.user_id",
     "FULL JOIN", 1, 33),
    ("SELECT date FROM access_log WHERE user_id IN (SELECT user_id FROM users)",
     "IN (subquery)", 1, 35),
    ("SELECT (SELECT max(date) FROM access_log) FROM users", "scalar subquery", 1, 9),
    ("SELECT upper(country) FROM users", "function upper()", 1, 8),
    ("SELECT a.date FROM access_log a CROSS JOIN users b", "CROSS JOIN", 1, 33),
    ("SELECT a.date FROM access_log a JOIN users b USING (user_id)", "USING", 1, 46),
    ("SELECT date, sum(DISTINCT bytes) FROM access_log GROUP BY date",
     "sum(DISTINCT ...)", 1, 14),
    ("SELECT stddev(bytes) FROM access_log", "stddev", 1, 8),
    ("INSERT INTO users SELECT * FROM users", "INSERT statement", 1, 1),
    ("SELECT 1", "SELECT without FROM", 1, 8),
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


def test_join_needs_an_equality() -> None:
    err = error_of("SELECT a.date FROM access_log a JOIN users b ON b.user_id < a.user_id")
    assert "equality" in str(err)


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT FROM access_log", "select list is empty"),
    ("SELECT date FROM access_log WHERE date IN ()", "IN needs at least one value"),
    ("SELECT 99999999999999999999 FROM access_log", "out of the BIGINT range"),
    ("SELECT date FROM access_log TABLESAMPLE BERNOULLI (10)", "TABLESAMPLE"),
    ("SELECT count(DISTINCT) FROM access_log", "needs an argument"),
    ("SELECT date FROM access_log FOR VERSION AS OF 123", "VERSION on a FROM item"),
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
