"""Binding: every seed query binds; names, types and plan shapes follow the conventions of
mpp/logical/nodes.py (unique field names, Column keys, Trino's output names)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mpp.logical.explain import explain_logical, format_expr
from mpp.logical.expr import AggFunc, Column
from mpp.logical.nodes import Aggregate, Join, JoinKind, Limit, LogicalNode, Project, Scan, Sort
from mpp.sql import bind
from tests.fake_catalog import FakeCatalog

CATALOG = FakeCatalog()
QUERIES = sorted((Path(__file__).parent / "fixtures" / "queries").glob("*.sql"))


def nodes(root: LogicalNode, kind: type) -> list:
    return [n for n in root.walk() if isinstance(n, kind)]


def check_conventions(root: LogicalNode) -> None:
    """Field names unique per node; keys are Columns of the node's input."""
    for node in root.walk():
        names = node.field_names()
        assert len(names) == len(set(names)), f"duplicate field names in {names}"
        inputs = {f.name for child in node.inputs for f in child.schema}
        cols: list[Column] = []
        if isinstance(node, Aggregate):
            cols = list(node.group_by) + [a.arg for a in node.aggregates if a.arg is not None]
        elif isinstance(node, Join):
            cols = list(node.left_keys) + list(node.right_keys)
        elif isinstance(node, Sort):
            cols = [k.column for k in node.keys]
        for col in cols:
            assert isinstance(col, Column) and col.name in inputs, (col, inputs)


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
def test_every_seed_query_binds(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("-- title:")
    plan = bind(text, CATALOG)
    check_conventions(plan.root)
    assert len(plan.output_names) == len(plan.root.schema)


def test_output_names_follow_trino() -> None:
    plan = bind("SELECT date, count(*), count(DISTINCT user_id) AS users, a.status + 1 "
                "FROM access_log a GROUP BY date, a.status", CATALOG)
    assert plan.output_names == ("date", "_col1", "users", "_col3")


def test_unquoted_names_are_case_insensitive_and_lower_case() -> None:
    plan = bind('SELECT Date, count(*) AS Users, A.STATUS FROM ACCESS_LOG A GROUP BY 1, 3',
                CATALOG)
    assert plan.output_names == ("date", "users", "status")


def test_select_star_and_qualified_star() -> None:
    plan = bind("SELECT b.*, a.url_id FROM access_log a JOIN users b ON b.user_id = a.user_id",
                CATALOG)
    assert plan.output_names == ("user_id", "created_at", "country", "plan", "url_id")
    assert [f.dtype for f in plan.root.schema][:2] == [pa.int64(), pa.timestamp("us")]


def test_seed_mart_query_shape() -> None:
    plan = bind((Path(__file__).parent / "fixtures/queries/seed_mart_basic.sql").read_text(),
                CATALOG)
    assert plan.output_names == ("time", "days", "count")
    (agg,) = nodes(plan.root, Aggregate)
    assert [c.dtype for c in agg.group_by] == [pa.timestamp("us"), pa.int64()]
    below = agg.input
    assert isinstance(below, Project)
    assert [str(e) for e in below.exprs] == [
        "date_trunc(a.time, unit='day')", "date_diff(b.min_time, a.time, unit='day')"]
    (join,) = nodes(plan.root, Join)
    assert join.kind is JoinKind.INNER and [k.name for k in join.left_keys] == ["a.session_id"]


def test_group_by_ordinal_name_expression_and_alias_agree() -> None:
    texts = [
        "SELECT date_trunc('month', time) m, count(*) FROM access_log GROUP BY 1",
        "SELECT date_trunc('month', time) m, count(*) FROM access_log "
        "GROUP BY date_trunc('month', time)",
        "SELECT date_trunc('month', time) m, count(*) FROM access_log GROUP BY m",
    ]
    plans = [explain_logical(bind(t, CATALOG)) for t in texts]
    assert plans[0] == plans[1] == plans[2]


def test_distinct_is_an_aggregate_without_aggregates() -> None:
    plan = bind("SELECT DISTINCT date, user_id FROM access_log", CATALOG)
    assert isinstance(plan.root, Aggregate) and plan.root.aggregates == ()
    assert [c.name for c in plan.root.group_by] == ["date", "user_id"]


def test_count_distinct_and_types() -> None:
    plan = bind("SELECT sum(status), avg(bytes), min(time), count(DISTINCT user_id) "
                "FROM access_log", CATALOG)
    (agg,) = nodes(plan.root, Aggregate)
    assert [a.func for a in agg.aggregates] == [AggFunc.SUM, AggFunc.AVG, AggFunc.MIN,
                                                AggFunc.COUNT]
    assert [a.dtype for a in agg.aggregates] == [pa.int64(), pa.float64(),
                                                 pa.timestamp("us"), pa.int64()]
    assert agg.aggregates[3].distinct


def test_order_by_alias_ordinal_expression_and_hidden_column() -> None:
    plan = bind("SELECT date d, count(*) c FROM access_log GROUP BY date "
                "ORDER BY c DESC, 1, max(bytes) LIMIT 5 OFFSET 2", CATALOG)
    assert isinstance(plan.root, Limit) and (plan.root.count, plan.root.offset) == (5, 2)
    project = plan.root.input
    assert isinstance(project, Project) and project.names == ("d", "c")  # hidden key dropped
    sort = project.input
    assert isinstance(sort, Sort)
    assert [str(k) for k in sort.keys] == ["c DESC", "d ASC", "_o0 ASC"]


def test_a_non_integer_number_is_a_constant_not_a_position() -> None:
    """ORDER BY 0E0 and GROUP BY 1.5 name no select item: they are constant expressions
    (binding them used to fail with a ValueError from int('0E0'))."""
    plan = bind("SELECT user_id FROM access_log ORDER BY 0E0, 1", CATALOG)
    (sort,) = nodes(plan.root, Sort)
    assert [str(k) for k in sort.keys] == ["_o0 ASC", "user_id ASC"]
    plan = bind("SELECT 1.5 x, count(*) FROM access_log GROUP BY 1.5", CATALOG)
    (agg,) = nodes(plan.root, Aggregate)
    assert len(agg.group_by) == 1 and plan.output_names == ("x", "_col1")


def test_fetch_first_is_a_limit() -> None:
    plan = bind("SELECT date FROM access_log ORDER BY date OFFSET 2 ROWS FETCH NEXT 3 ROWS ONLY",
                CATALOG)
    assert isinstance(plan.root, Limit) and (plan.root.count, plan.root.offset) == (3, 2)


def test_order_by_expression_over_output_names() -> None:
    plan = bind("SELECT date d, count(*) users FROM access_log GROUP BY date "
                "ORDER BY users * -1, d", CATALOG)
    project = plan.root  # Project (drops the hidden key) <- Sort <- Project
    assert isinstance(project, Project) and isinstance(project.input, Sort)
    assert [str(k) for k in project.input.keys] == ["_o0 ASC", "d ASC"]
    assert "_a0 * -1 AS _o0" in explain_logical(plan)


def test_order_by_input_column_not_selected() -> None:
    plan = bind("SELECT user_id FROM access_log ORDER BY time DESC NULLS FIRST", CATALOG)
    assert plan.output_names == ("user_id",)
    (sort,) = nodes(plan.root, Sort)
    assert sort.keys[0].nulls_first and not sort.keys[0].ascending


def test_having_without_group_by_is_a_global_aggregate() -> None:
    plan = bind("SELECT count(*) FROM access_log HAVING count(*) > 0", CATALOG)
    (agg,) = nodes(plan.root, Aggregate)
    assert agg.group_by == ()


def test_join_with_computed_and_residual_conditions() -> None:
    plan = bind("SELECT a.url_id FROM access_log a LEFT JOIN urls u "
                "ON u.url_id = a.url_id + 1 AND u.category = 'ads' AND a.status > u.url_id",
                CATALOG)
    (join,) = nodes(plan.root, Join)
    assert join.kind is JoinKind.LEFT
    assert isinstance(join.left, Project) and join.left_keys[0].name.startswith("_k")
    assert format_expr(join.residual) == (
        "(u.category = 'ads') AND (CAST(a.status AS int32) > u.url_id)")


def test_cte_and_subquery_without_alias() -> None:
    plan = bind("WITH daily AS (SELECT date, count(*) n FROM access_log GROUP BY date) "
                "SELECT d.date, n FROM daily d WHERE n > 10", CATALOG)
    assert plan.output_names == ("date", "n")
    plan = bind("SELECT count(*) FROM (SELECT DISTINCT user_id FROM access_log)", CATALOG)
    assert plan.output_names == ("_col0",)


def test_literals_compare_in_the_column_type() -> None:
    plan = bind("SELECT date FROM access_log WHERE status = 200 AND date = '2017-01-03' "
                "AND time < DATE '2017-02-01'", CATALOG)
    text = explain_logical(plan)
    assert "access_log.status = 200" in text
    assert "access_log.date = DATE '2017-01-03'" in text
    assert "access_log.time < TIMESTAMP '2017-02-01 00:00:00'" in text


def test_midnight_timestamp_literal_compares_as_a_date() -> None:
    text = explain_logical(bind("SELECT 1 FROM access_log WHERE date >= TIMESTAMP "
                                "'2017-01-05 00:00:00' AND date < TIMESTAMP '2017-01-06 12:00:00'",
                                CATALOG))
    assert "access_log.date >= DATE '2017-01-05'" in text
    assert "CAST(access_log.date AS timestamp[us]) < TIMESTAMP '2017-01-06 12:00:00'" in text


def test_scans_read_every_column_before_optimization() -> None:
    (scan,) = nodes(bind("SELECT date FROM access_log", CATALOG).root, Scan)
    assert scan.columns == tuple(CATALOG.table("access_log").schema.names)
    assert scan.schema[0].name == "access_log.time"
