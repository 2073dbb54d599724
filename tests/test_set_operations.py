"""UNION [ALL] / INTERSECT / EXCEPT, VALUES, SELECT without FROM, FROM-item column aliases and
WITH: results against DuckDB, plan shapes (a union is one stage of concatenated partitions),
column pruning through a union, and the errors of branches that do not fit together."""

from __future__ import annotations

import re

import pytest

import mpp
from mpp.config import PlannerContext, Settings
from mpp.errors import SqlError
from mpp.logical.explain import explain_logical
from mpp.logical.nodes import Project, Scan, Union
from mpp.optimizer import optimize
from mpp.oracle import run_oracle
from mpp.sql import bind
from tests.compare import assert_same_result
from tests.fake_catalog import FakeCatalog
from tests.query_warehouses import warehouse

CTE_TWICE = ("WITH c AS (SELECT user_id FROM users), d AS (SELECT 1 one) "
             "SELECT x.user_id FROM c x JOIN c y ON x.user_id = y.user_id JOIN d ON d.one * 0 = x.user_id * 0")
QUERIES = [
    # UNION ALL keeps duplicates; branches of different widths of integer.
    "SELECT status FROM access_log WHERE status = 200 "
    "UNION ALL SELECT status FROM access_log WHERE status = 404",
    # UNION removes duplicates, NULLs included (they compare equal in set operations).
    "SELECT url_id FROM access_log UNION SELECT url_id FROM access_log WHERE user_id < 10",
    # Mixed types: smallint / bigint and integer / double columns meet at the super type.
    "SELECT user_id, status FROM access_log "
    "UNION ALL SELECT url_id, bytes / 2.0 FROM access_log WHERE status = 500",
    # date and timestamp meet as timestamp.
    "SELECT date FROM access_log UNION SELECT created_at FROM users WHERE user_id < 20",
    # An empty branch.
    "SELECT user_id FROM access_log WHERE 1 = 0 "
    "UNION ALL SELECT user_id FROM users WHERE user_id < 5",
    "SELECT user_id FROM users WHERE user_id < 5 UNION SELECT user_id FROM access_log WHERE 1 = 0",
    # INTERSECT / EXCEPT are distinct; NULLs match NULLs.
    "SELECT user_id FROM access_log WHERE status = 404 "
    "INTERSECT SELECT user_id FROM users WHERE country = 'JP'",
    "SELECT url_id, status FROM access_log EXCEPT SELECT url_id, status FROM access_log "
    "WHERE status = 200",
    "SELECT url_id FROM access_log INTERSECT SELECT url_id FROM access_log WHERE bytes < 500",
    "SELECT status FROM access_log EXCEPT SELECT status FROM access_log WHERE 1 = 0",
    # INTERSECT ALL keeps a row min(m, n) times, EXCEPT ALL m - n times; NULLs match.
    "SELECT url_id FROM access_log WHERE status = 200 "
    "INTERSECT ALL SELECT url_id FROM access_log WHERE bytes < 2000",
    "SELECT status, url_id FROM access_log EXCEPT ALL SELECT status, url_id FROM access_log "
    "WHERE user_id < 100",
    "SELECT * FROM (VALUES 1, 1, 1, 2, NULL, NULL) t (x) "
    "EXCEPT ALL SELECT * FROM (VALUES 1, NULL, 3) u (x)",
    "SELECT * FROM (VALUES 1, 1, 1, 2, NULL, NULL) t (x) "
    "INTERSECT ALL SELECT * FROM (VALUES 1, 1, NULL, 3) u (x)",
    # INTERSECT binds tighter than UNION; chains run left to right; parentheses group.
    "SELECT status FROM access_log UNION SELECT 1 INTERSECT SELECT 2",
    "SELECT status FROM access_log EXCEPT SELECT 200 UNION ALL SELECT 200",
    "SELECT status FROM access_log EXCEPT (SELECT 200 UNION ALL SELECT 404)",
    # ORDER BY / LIMIT after the last branch apply to the whole result; a parenthesised
    # branch keeps its own.
    "SELECT user_id u FROM users UNION SELECT session_id FROM sessions ORDER BY u DESC LIMIT 5",
    "(SELECT user_id FROM users ORDER BY user_id LIMIT 3) "
    "UNION ALL (SELECT user_id FROM users ORDER BY user_id DESC LIMIT 2) ORDER BY 1",
    "SELECT country, plan FROM users UNION SELECT plan, country FROM users "
    "ORDER BY 2, 1 LIMIT 4 OFFSET 2",
    "SELECT user_id u, status FROM access_log UNION SELECT user_id, 1 FROM users "
    "ORDER BY -u, status LIMIT 7",
    # A LIMIT over UNION ALL (each branch's scan stops early; any rows will do, so count them).
    "SELECT count(*) FROM (SELECT user_id FROM access_log WHERE status = 404 "
    "UNION ALL SELECT user_id FROM users LIMIT 7) t",
    "SELECT count(*) FROM (SELECT user_id FROM access_log UNION ALL SELECT user_id FROM users "
    "LIMIT 5000 OFFSET 4200) t",
    # Aggregates and joins inside branches; an aggregate and a filter over a union.
    "SELECT 'log' k, count(*) n FROM access_log UNION ALL SELECT 'users', count(*) FROM users",
    "SELECT u.country FROM access_log a JOIN users u ON u.user_id = a.user_id "
    "WHERE a.status = 404 UNION SELECT plan FROM users",
    "SELECT k, count(*) FROM (SELECT status k FROM access_log "
    "UNION ALL SELECT user_id FROM users UNION ALL SELECT url_id FROM urls) t GROUP BY k",
    "SELECT * FROM (SELECT user_id, status FROM access_log "
    "UNION ALL SELECT user_id, 0 FROM users) t WHERE user_id < 50",
    "SELECT count(*), count(DISTINCT x) FROM (SELECT url_id x FROM access_log "
    "UNION SELECT user_id FROM users) t",
    # A branch whose every fragment is pruned away; count(*) over a union (one column kept).
    "SELECT user_id FROM access_log WHERE date = DATE '1999-01-01' "
    "UNION ALL SELECT user_id FROM users WHERE user_id < 3",
    "SELECT count(*) FROM (SELECT user_id, status FROM access_log "
    "UNION ALL SELECT user_id, 1 FROM users) t",
    # A union as the input of a partitioned join and of a sort.
    "SELECT t.k, u.country FROM (SELECT user_id k FROM access_log WHERE status = 404 "
    "UNION SELECT user_id FROM sessions) t JOIN users u ON u.user_id = t.k ORDER BY 1, 2",
    # With the other join forms: a comma join over a union, CROSS and FULL joins of VALUES.
    "SELECT count(*) FROM (SELECT user_id FROM users UNION ALL SELECT user_id FROM sessions) t, "
    "urls u WHERE u.url_id = t.user_id",
    "SELECT * FROM (VALUES 1, 2) a (x) CROSS JOIN (VALUES 'a', 'b') b (y)",
    "SELECT a.x, b.y FROM (VALUES 1, 2, NULL) a (x) FULL JOIN (VALUES 2, 3) b (y) ON a.x = b.y",
    # VALUES as a relation and as a statement; SELECT without FROM.
    "SELECT * FROM (VALUES (NULL, 1), (NULL, NULL)) AS t (a, b)",
    "SELECT NULL UNION SELECT NULL",
    "SELECT NULL x INTERSECT SELECT NULL",
    "SELECT * FROM (VALUES (1, 'a'), (2, NULL), (1, 'a')) AS t (a, b)",
    "SELECT t.name, count(*) FROM access_log a JOIN (VALUES (200, 'ok'), (404, 'missing')) "
    "AS t (code, name) ON a.status = t.code GROUP BY t.name",
    "SELECT DISTINCT v FROM (VALUES 1, 2, NULL, 2, 3.5) AS t (v)",
    "VALUES (1, 'x'), (2, 'y')",
    "SELECT 1 AS x, 'y' AS s, 2.5 * 2, CAST(NULL AS bigint)",
    "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 2",
    # Column aliases on FROM items.
    "SELECT u, c FROM users AS x (u, cr, c, p) WHERE u < 10",
    "SELECT a, b FROM (SELECT status, count(*) FROM access_log GROUP BY status) AS t (a, b)",
    # Several CTEs; one used twice; a CTE with column aliases.
    "WITH s AS (SELECT status, count(*) n FROM access_log GROUP BY status), "
    "t AS (SELECT max(n) m FROM s) SELECT s.status FROM s JOIN t ON s.n = t.m",
    "WITH c AS (SELECT user_id FROM users WHERE user_id < 20) "
    "SELECT user_id FROM c UNION ALL SELECT user_id FROM c",
    CTE_TWICE,
    "WITH c (k, v) AS (SELECT status, bytes FROM access_log) SELECT k, sum(v) FROM c GROUP BY k",
    "WITH a AS (SELECT user_id FROM users), b AS (SELECT user_id FROM access_log) "
    "SELECT user_id FROM a EXCEPT SELECT user_id FROM b",
]
SHAPES = [("parquet", 3), ("csv", 1)]


@pytest.fixture(scope="module")
def sessions(cluster):  # type: ignore[no-untyped-def]
    opened = {shape: mpp.connect(warehouse(cluster.client, *shape), cluster=cluster)
              for shape in SHAPES}
    yield opened
    for s in opened.values():
        s.close()


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{f}-{n}" for f, n in SHAPES])
def test_queries_match_duckdb(shape, sessions) -> None:  # type: ignore[no-untyped-def]
    session = sessions[shape]
    failures = []
    for sql in QUERIES:
        # Joins also partitioned: a union then feeds (or sits beside) hash exchanges.
        for settings in [{}] + ([{"join.strategy": "partitioned"}] if "JOIN" in sql else []):
            try:
                actual = session.sql(sql, settings=settings).to_arrow()
                assert_same_result(actual, run_oracle(sql, session.catalog), sql)
            except Exception as exc:  # collect all, report together
                failures.append(f"{type(exc).__name__}: {exc}\n  {sql} {settings}")
    assert not failures, "\n".join(failures)


UNION_SQL = ("SELECT status FROM access_log WHERE status = 404 UNION ALL SELECT a.status "
             "FROM access_log a JOIN users u ON u.user_id = a.user_id WHERE u.country = 'JP' "
             "UNION ALL SELECT 200")


def test_union_all_is_one_stage_of_concatenated_partitions(sessions) -> None:  # type: ignore[no-untyped-def]
    session = sessions[("parquet", 3)]
    result = session.sql(UNION_SQL)
    plan = result.stats.plan
    union_stage = plan.final_stage
    # 3 fragments + 3 fragments probing the broadcast + 1 values task; no exchange between them.
    assert union_stage.tasks == 3 + 3 + 1
    assert [(i.first, i.tasks) for i in union_stage.inputs] == [(0, 3), (3, 3), (3, 3), (6, 1)]
    assert [e.kind.name for e in union_stage.exchanges] == ["BROADCAST"]
    assert len(plan.stages) == 2  # the broadcast's producer and the union
    # The what-if model's dependencies: the union stage waits for the broadcast's stage only.
    assert result.stats.stage_deps == {1: (), 2: (1,)}
    prediction = result.stats.predict_many()
    assert all(p.stage(2).ready >= p.stage(1).finish for p in prediction.values())
    records = [r for r in result.stats.tasks if r.stage == union_stage.id]
    assert sorted(r.partition for r in records) == list(range(7))
    assert sum(r.rows_out for r in records) == result.to_arrow().num_rows
    assert "UnionExec(UNION ALL): 3 inputs [status], partitions 3 + 3 + 1" in result.explain_analyze


def test_union_distinct_and_intersect_exchange_once_by_every_column(sessions) -> None:  # type: ignore[no-untyped-def]
    session = sessions[("parquet", 3)]
    text = session.explain("SELECT url_id, status FROM access_log UNION SELECT url_id, 1 FROM urls")
    assert text.count("ExchangeExec(HASH): by url_id, status") == 1
    assert "UnionExec(UNION): 2 inputs [url_id, status], partitions 3 + 1" in text
    text = session.explain("SELECT url_id FROM access_log EXCEPT SELECT url_id FROM urls")
    assert "UnionExec(EXCEPT): 2 inputs [url_id, _in1, _in2]" in text
    assert "FilterExec: ((_rows1 > 0) AND (_rows2 = 0))" in text
    text = session.explain("SELECT url_id FROM access_log EXCEPT ALL SELECT url_id FROM urls")
    assert "UnionExec(EXCEPT ALL)" in text and "ReplicateExec: each row _times times" in text


def _optimized(sql: str):  # type: ignore[no-untyped-def]
    return optimize(bind(sql, FakeCatalog()), PlannerContext(Settings())).root


def test_pruning_keeps_positions_in_every_branch() -> None:
    # The outer query uses only the union's second column; each branch names it differently.
    root = _optimized("SELECT b FROM (SELECT user_id a, status b FROM access_log "
                      "UNION ALL SELECT bytes, url_id FROM access_log) t")
    union = next(n for n in root.walk() if isinstance(n, Union))
    scans = [n for n in root.walk() if isinstance(n, Scan)]
    assert [s.columns for s in scans] == [("status",), ("url_id",)]
    assert all(len(b.schema) == 1 for b in union.branches)
    assert isinstance(union.branches[1], Project)


def test_pruning_a_node_with_several_inputs_needs_a_rule() -> None:
    from dataclasses import dataclass

    from mpp.logical.nodes import LogicalNode
    from mpp.optimizer.prune_projections import _prune

    @dataclass(frozen=True)
    class Pair(LogicalNode):
        a: LogicalNode
        b: LogicalNode

        @property
        def inputs(self):  # type: ignore[no-untyped-def]
            return (self.a, self.b)

    scan = bind("SELECT user_id FROM users", FakeCatalog()).root
    with pytest.raises(NotImplementedError, match="Pair, a node with several inputs"):
        _prune(Pair(scan, scan), set())


def test_a_cte_used_twice_is_inlined_twice_and_explain_says_so(sessions) -> None:  # type: ignore[no-untyped-def]
    text = explain_logical(bind(CTE_TWICE, FakeCatalog()))
    assert text.count("Scan: users") == 2
    assert "x.user_id" in text and "y.user_id" in text
    assert text.splitlines()[0] == "Note: WITH c: used 2 times, inlined (planned and run) at each use"
    assert "WITH d" not in text
    physical = sessions[("parquet", 3)].explain(CTE_TWICE)
    assert physical.splitlines()[1] == text.splitlines()[0]
    assert physical.count("ScanExec: users") == 2


@pytest.mark.parametrize("sql,message,where", [
    ("SELECT user_id, status FROM access_log UNION SELECT user_id FROM users",
     "UNION: the branches have 2 and 1 columns", (1, 53)),
    ("SELECT user_id, status FROM access_log\nUNION ALL SELECT user_id, country FROM users",
     "UNION ALL: column 2 has types smallint and varchar, which have no common type", (2, 27)),
    ("SELECT date FROM access_log EXCEPT SELECT 1",
     "EXCEPT: column 1 has types date and integer", (1, 43)),
    ("SELECT a FROM users AS u (a, b)", "table users has 4 columns but 2 column aliases",
     (1, 24)),
    ("SELECT * FROM (SELECT 1, 2) AS t (a)", "subquery t has 2 columns but 1 column aliases",
     (1, 32)),
    ("WITH c (a) AS (SELECT 1, 2) SELECT * FROM c",
     "WITH query c has 2 columns but 1 column aliases", (1, 43)),
    ("SELECT * FROM (VALUES (1, 2), (3)) AS t (a, b)",
     "VALUES rows have different numbers of columns (1, 2)", (1, 24)),
    ("SELECT * FROM (VALUES 1, 'a') AS t (a)",
     "VALUES column 1 has types integer and varchar", (1, 26)),
    ("SELECT user_id FROM users UNION SELECT user_id FROM users ORDER BY country",
     "ORDER BY 'country': not an output column of the set operation", (1, 68)),
    ("SELECT user_id FROM users UNION SELECT user_id FROM users ORDER BY users.user_id + 1",
     "column 'users.user_id': no table or alias 'users' in scope", (1, 68)),
])
def test_set_operation_errors_name_the_position_and_types(sql: str, message: str,
                                                          where: tuple[int, int]) -> None:
    with pytest.raises(SqlError, match=re.escape(message)) as err:
        bind(sql, FakeCatalog())
    assert (err.value.line, err.value.column) == where


def test_values_and_select_without_from_are_one_task(sessions) -> None:  # type: ignore[no-untyped-def]
    session = sessions[("parquet", 3)]
    text = session.explain("SELECT 1 + 1 AS two")
    assert "Stage 1 [stage1-values-project]: 1 task (one, for the rows written in the query)" in text
    assert "ValuesExec: 1 row [no columns]" in text
    result = session.sql("SELECT a, count(*) FROM (VALUES (1, 'x'), (1, 'y'), (2, NULL)) AS t (a, b) "
                         "GROUP BY a")
    assert [s.tasks for s in result.stats.plan.stages] == [1]
    assert "ValuesExec: 3 rows [t.a]" in result.explain_analyze  # b is pruned


def test_each_union_input_reads_only_its_own_exchange(sessions) -> None:  # type: ignore[no-untyped-def]
    from mpp.execution.graph import build_graph

    session = sessions[("parquet", 3)]
    sql = ("SELECT status, count(*) FROM access_log GROUP BY status "
           "UNION ALL SELECT 0, count(*) FROM access_log WHERE user_id < 100")
    result = session.sql(sql)
    plan = result.stats.plan
    union = plan.final_stage
    producers = [e.id for e in union.exchanges]
    assert len(producers) == 2 and result.stats.stage_deps[union.id] == tuple(sorted(producers))
    # Input 1: the hash buckets of the GROUP BY (tasks 0..3); input 2: one gathered task.
    ranges = [(i.first, i.tasks) for i in union.inputs]
    assert ranges == [(0, plan.hash_buckets), (plan.hash_buckets, 1)]
    graph = build_graph(plan, "q", "0123abcd")
    tasks = [v for k, v in graph.dsk.items() if k[0].startswith(union.name)]
    assert len(tasks) == union.tasks
    # Each task gets one exchange input; the other is None (not read).
    assert all(sum(arg is None for arg in task[4:]) == 1 for task in tasks)
    assert_same_result(result.to_arrow(), run_oracle(sql, session.catalog), sql)
