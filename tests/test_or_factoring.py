"""Conjuncts common to every branch of an OR are factored out while binding; the results, NULLs
included (three-valued logic), equal DuckDB's, and the plan shows the factored form."""

from __future__ import annotations

import pytest

from mpp.oracle import run_oracle
from tests.compare import assert_same_result
from tests.test_extract_substring import session  # noqa: F401  (the module's fixture)

QUERIES = [
    "SELECT id FROM t WHERE (s = 'a' AND id > 1) OR (s = 'a' AND id < 5) OR (id = 3 AND s = 'a')",
    "SELECT id, (d > DATE '2000-01-01' AND s <> '') OR (d > DATE '2000-01-01' AND id > 2) AS x "
    "FROM t",
    "SELECT id, s = 'hello' OR (s = 'hello' AND id = 0) AS x FROM t",
    "SELECT id, (s <> '' AND id > 2) OR (id > 2 AND d IS NULL) OR id = 1 AS x FROM t",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_factored_or_equals_duckdb(session, sql: str) -> None:  # noqa: F811
    assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)


def test_the_common_conjunct_is_pulled_out(session) -> None:  # noqa: F811
    text = session.explain("SELECT id FROM t WHERE (s = 'a' AND id > 1) OR (s = 'a' AND id < 5)",
                           "logical")
    assert "Filter: (t.s = 'a') AND ((t.id > 1) OR (t.id < 5))" in text, text
