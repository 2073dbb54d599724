"""Oracle tests: every fixture query runs on the cluster over 1, 3 and 8 fragments, Parquet and
CSV, and must return DuckDB's rows over the same files: the same multiset of rows and, for a
query with a top-level ORDER BY, the same sequence of ORDER BY key values."""

from __future__ import annotations

from pathlib import Path

import pytest

import mpp
from mpp.oracle import run_oracle
from tests.compare import assert_same_result
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT, read_queries, warehouse
from tests.test_physical_golden import parse_fixture

FIXTURES = Path(__file__).parent / "fixtures"

# Queries beyond the fixture files: each construct of the SQL subset at least once.
EXTRA = [
    "SELECT status, count(*) c, sum(bytes) s, avg(bytes) a FROM access_log "
    "WHERE status IN (200, 404) AND bytes BETWEEN 100 AND 50000 GROUP BY status HAVING count(*) > 1",
    "SELECT u.country, count(DISTINCT a.user_id) n, max(a.bytes) m FROM access_log a "
    "JOIN users u ON u.user_id = a.user_id WHERE NOT (u.country LIKE 'K%') OR a.status = 500 "
    "GROUP BY 1",
    "SELECT count(*), count(DISTINCT user_id) FROM access_log WHERE url_id IS NOT NULL",
    "SELECT date, status, count(*) FROM access_log WHERE status >= 400 GROUP BY date, status "
    "ORDER BY 3 DESC, 1, 2 LIMIT 4",
    "SELECT DISTINCT status FROM access_log",
    "SELECT status, count(DISTINCT url_id), count(*), sum(bytes) FROM access_log GROUP BY status",
    "SELECT u.plan, count(a.user_id) c FROM users u LEFT JOIN access_log a "
    "ON a.user_id = u.user_id AND a.status = 404 GROUP BY u.plan",
    "SELECT count(*) FROM access_log WHERE 1 = 0",
    "SELECT u.user_id, a.bytes FROM users u LEFT JOIN access_log a "
    "ON a.user_id = u.user_id AND a.bytes < u.user_id * 3 WHERE u.user_id < 40",
    "SELECT count(*), sum(a.bytes) FROM access_log a JOIN users u "
    "ON a.user_id = u.user_id AND a.bytes > u.user_id * 100",
    "SELECT min(time), max(time) FROM access_log WHERE date > DATE '2017-01-01'",
    "SELECT date, count(DISTINCT user_id) u, count(DISTINCT url_id) v, count(*) c "
    "FROM access_log GROUP BY date",
    "SELECT a.user_id, s.session_id FROM access_log a JOIN sessions s "
    "ON s.session_id = a.session_id AND s.user_id = a.user_id WHERE a.bytes < 300",
    # Mixed-case names fold to lower case; NULL sort keys come last, ASC or DESC (Trino's
    # default, and DuckDB's).
    "SELECT Status, COUNT(*) AS N FROM Access_Log GROUP BY STATUS ORDER BY n DESC, status",
    "SELECT u.plan, a.status, count(*) c FROM users u LEFT JOIN access_log a "
    "ON a.user_id = u.user_id AND a.status = 404 GROUP BY 1, 2 ORDER BY a.status DESC, 1",
    "SELECT u.plan, a.status, count(*) c FROM users u LEFT JOIN access_log a "
    "ON a.user_id = u.user_id AND a.status = 404 GROUP BY 1, 2 ORDER BY 2, 1",
    # Trino's text of timestamps, doubles, dates and booleans.
    "SELECT CAST(time AS varchar) t, CAST(bytes / 4.0 AS varchar) b, CAST(date AS varchar) d, "
    "CAST(status = 200 AS varchar) ok FROM access_log WHERE user_id < 30 ORDER BY t, b",
]
PARTITIONED = {"join.strategy": "partitioned"}


def _cases() -> list[tuple[str, str, dict]]:
    cases = []
    for path in sorted((FIXTURES / "physical").glob("*.sql")):
        _, settings, sql, _ = parse_fixture(path)
        cases.append((path.stem, sql, settings))
    for path in sorted((FIXTURES / "queries").glob("*.sql")):
        cases += [(f"{path.stem}[{i}]", sql, {}) for i, sql in enumerate(read_queries(path))]
    cases += [(f"extra{i}", sql, {}) for i, sql in enumerate(EXTRA)]
    cases += [(f"extra{i}-partitioned", sql, PARTITIONED)
              for i, sql in enumerate(EXTRA) if "JOIN" in sql]
    return cases


CASES = _cases()
# Planned for one thread and one task per thread, a table's small fragments all pack into one
# scan task
# (scan.max_task_bytes): aggregates over it run in one step, a sort needs no gather.
ONE_SCAN_TASK = {"planning.workers": 1, "planning.threads_per_worker": 1,
                 "scan.min_tasks_per_thread": 1}
# Fragment counts 1, 3, 8 on Parquet (8 fragments pack two to a task by default; 3 do not,
# their open costs already fill a task of the split size), 8 packed into one task; CSV (a row
# format with its own scanner) at 3.
SHAPES = [("parquet", 1, {}), ("parquet", 3, {}), ("parquet", 8, {}),
          ("parquet", 8, ONE_SCAN_TASK), ("csv", 3, {})]


@pytest.mark.parametrize("fmt,fragments,base", SHAPES,
                         ids=[f"{f}-{n}{'-one-task' if b else ''}" for f, n, b in SHAPES])
def test_queries_match_duckdb(fmt: str, fragments: int, base: dict, cluster) -> None:
    with mpp.connect(warehouse(cluster.client, fmt, fragments), cluster=cluster,
                     settings=base) as session:
        failures = []
        for name, sql, settings in CASES:
            try:
                actual = session.sql(sql, settings=settings).to_arrow()
                assert_same_result(actual, run_oracle(sql, session.catalog), sql)
            except Exception as exc:  # collect all, report together
                failures.append(f"{name}: {type(exc).__name__}: {exc}\n  {sql}")
        assert not failures, "\n".join(failures)


def test_result_carries_stats_and_analyze(cluster) -> None:
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        result = session.sql("SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date",
                             settings={"aggregate.distinct_strategy": "pre_aggregate",
                                       **ONE_TASK_PER_FRAGMENT})
        stats = result.stats
        assert stats.rows_read == 4_000
        assert stats.plan.stages[0].tasks == 8
        names = {r.name for r in stats.tasks}
        assert names == {"stage1-scan-partial-agg", "stage1-combine", "stage2-final-agg-project"}
        leaf = [r for r in stats.tasks if r.name == "stage1-scan-partial-agg"]
        assert sorted(r.partition for r in leaf) == list(range(8))
        assert all(r.bytes_read > 0 and r.bytes_sent > 0 and r.hot_keys for r in leaf)
        assert stats.bytes_exchanged == sum(r.bytes_sent for r in leaf)
        text = result.explain_analyze
        assert "measured stage1-scan-partial-agg: 8 tasks, rows in 4,000" in text
        assert "Wall time" in text and "task time min/median/max" in text
