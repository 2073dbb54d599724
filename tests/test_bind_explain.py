"""EXPLAIN text of logical plans: every node type, deterministic, SQL-like literals."""

from __future__ import annotations

from mpp.config import PlannerContext, Settings
from mpp.logical.explain import explain_logical, explain_trace
from mpp.optimizer import RULES, optimize
from mpp.sql import bind
from tests.fake_catalog import FakeCatalog

CATALOG = FakeCatalog()


def explain(sql: str) -> str:
    return explain_logical(bind(sql, CATALOG))


def test_every_node_type_prints_one_line() -> None:
    text = explain(
        "SELECT DISTINCT u.category, count(*) n FROM access_log a "
        "LEFT JOIN urls u ON u.url_id = a.url_id AND a.status > 300 "
        "WHERE u.path LIKE 'it''s%' GROUP BY u.category ORDER BY n DESC NULLS FIRST "
        "LIMIT 5 OFFSET 1")
    assert text.splitlines() == [
        "Limit: 5 offset 1",
        "└─ Sort: n DESC NULLS FIRST",
        "   └─ Aggregate: group by [category, n]",
        "      └─ Project: u.category AS category, _a0 AS n",
        "         └─ Aggregate: group by [u.category]; count(*) AS _a0",
        "            └─ Filter: u.path LIKE 'it''s%'",
        "               └─ Join: left on a.url_id = u.url_id residual (a.status > 300), "
        "strategy=auto",
        "                  ├─ Scan: access_log AS a [time, date, user_id, session_id, url_id, "
        "status, bytes]",
        "                  └─ Scan: urls AS u [url_id, path, category]",
    ]


def test_output_line_only_when_names_differ_from_fields() -> None:
    assert not explain("SELECT date FROM access_log").startswith("Output:")
    assert explain("SELECT date, date FROM access_log").startswith("Output: date, date")


def test_scan_predicates_print_as_sql_literals() -> None:
    plan = optimize(bind("SELECT count(*) FROM access_log WHERE date IN ('2017-01-02', "
                         "'2017-01-03') AND time < TIMESTAMP '2017-01-05 10:00:00' "
                         "AND url_id IS NULL", CATALOG), PlannerContext(Settings()))
    line = explain_logical(plan).splitlines()[-1]
    assert line.endswith("filter=(date IN (DATE '2017-01-02', DATE '2017-01-03') AND "
                         "time < TIMESTAMP '2017-01-05 10:00:00' AND url_id IS NULL)"), line


def test_global_aggregate_and_case_print() -> None:
    text = explain("SELECT count(CASE WHEN status >= 500 THEN 1 END) FROM access_log")
    assert "CASE WHEN access_log.status >= 500 THEN 1 END AS _arg0" in text
    assert "Aggregate: count(_arg0) AS _a0" in text


def test_explain_is_deterministic_across_binds() -> None:
    sql = ("SELECT a.user_id, b.country FROM access_log a JOIN users b "
           "ON b.user_id = a.user_id WHERE b.plan = 'pro'")
    ctx = PlannerContext(Settings())
    texts = {explain_logical(optimize(bind(sql, CATALOG), ctx)) for _ in range(3)}
    assert len(texts) == 1


def test_trace_names_each_rule() -> None:
    plan = bind("SELECT date, count(*) FROM access_log WHERE status = 200 GROUP BY date",
                CATALOG)
    trace: list = []
    optimize(plan, PlannerContext(Settings()), trace=trace)
    text = explain_trace(plan, trace)
    assert "== after pushdown_predicates ==" in text
    assert "== after prune_projections ==" in text
    assert f"== {RULES[-1].name}: no change ==" in text  # no join to choose for


def test_rules_are_one_module_one_function_one_switch() -> None:
    from mpp.config import SETTINGS

    for rule in RULES:
        assert rule.fn.__name__ == rule.name
        assert rule.fn.__module__ == f"mpp.optimizer.{rule.name}"
        doc = __import__(rule.fn.__module__, fromlist=["_"]).__doc__
        assert "Used configurations" in doc and f"optimizer.{rule.name}" in doc
        assert SETTINGS[f"optimizer.{rule.name}"].default is True


def test_docstring_examples_run() -> None:
    import doctest
    import importlib

    for name in ["mpp.oracle"] + [f"mpp.optimizer.{r.name}" for r in RULES]:
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0, name
