"""LIMIT and top-N with optimizer.push_down_limit on and off give DuckDB's answers.

ORDER BY ... LIMIT queries order by every output column, so the rows are fixed and compared
with DuckDB's exactly (in order). A LIMIT without ORDER BY may return any rows: the result must
have DuckDB's row count and be a sub-multiset of the query's rows without the LIMIT.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

import mpp
from mpp.oracle import run_oracle
from tests.compare import assert_same_result, normalise
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT, warehouse

ORDERED = [
    "SELECT user_id, count(*) c FROM access_log GROUP BY user_id ORDER BY c DESC, user_id LIMIT 5",
    "SELECT time, user_id, session_id FROM access_log "
    "ORDER BY time DESC, user_id, session_id LIMIT 7 OFFSET 3",
    "SELECT a.bytes, a.time, a.user_id, u.country FROM access_log a JOIN users u "
    "ON u.user_id = a.user_id ORDER BY 1 DESC, 2, 3, 4 LIMIT 6",
    "SELECT u.user_id, a.bytes, a.time FROM users u LEFT JOIN access_log a "
    "ON a.user_id = u.user_id AND a.status = 404 ORDER BY 2 DESC, 1, 3 LIMIT 8",
    "SELECT path FROM urls ORDER BY category, url_id LIMIT 4",  # a sort key not selected
    "SELECT user_id, status FROM access_log ORDER BY user_id, status LIMIT 0",
    "SELECT url_id FROM urls ORDER BY url_id LIMIT 100000",  # more than the table holds
    "SELECT count(*) FROM (SELECT user_id FROM access_log LIMIT 10) t",
    "SELECT count(*) FROM (SELECT user_id FROM access_log LIMIT 0) t",
    "SELECT t.user_id, t.bytes FROM (SELECT user_id, bytes FROM access_log "
    "ORDER BY bytes DESC, user_id LIMIT 20) t WHERE t.user_id < 150",
]

# (the query without its LIMIT, the LIMIT clause)
UNORDERED = [
    ("SELECT user_id, status FROM access_log", "LIMIT 25"),
    ("SELECT user_id, status FROM access_log WHERE status = 404", "LIMIT 5"),
    # ~35 rows of status 500 spread over every fragment: the first fragments do not hold 30.
    ("SELECT user_id, status FROM access_log WHERE status = 500", "LIMIT 30"),
    ("SELECT user_id FROM access_log", "LIMIT 10 OFFSET 5"),
    ("SELECT status, count(*) FROM access_log GROUP BY status", "LIMIT 3"),
    ("SELECT a.user_id, u.country FROM access_log a JOIN users u ON u.user_id = a.user_id",
     "LIMIT 9"),
    ("SELECT u.user_id, a.bytes FROM users u LEFT JOIN access_log a "
     "ON a.user_id = u.user_id AND a.status = 404", "LIMIT 11"),
    ("SELECT url_id, path FROM (SELECT url_id, path FROM urls LIMIT 10) t", "LIMIT 5 OFFSET 8"),
    ("SELECT user_id, status FROM access_log", "LIMIT 0"),
]

SHAPES = [("parquet", 8), ("csv", 3)]
SWITCH = [True, False]


def _rows(table: pa.Table) -> Counter:
    return Counter(tuple(r.values()) for r in normalise(table).to_pylist())


@pytest.mark.parametrize("on", SWITCH, ids=["rule on", "rule off"])
@pytest.mark.parametrize("fmt,fragments", SHAPES, ids=[f"{f}-{n}" for f, n in SHAPES])
def test_limits_match_duckdb(fmt: str, fragments: int, on: bool, cluster) -> None:
    settings = {"optimizer.push_down_limit": on}
    with mpp.connect(warehouse(cluster.client, fmt, fragments), cluster=cluster) as session:
        failures = []
        for sql in ORDERED:
            try:
                actual = session.sql(sql, settings=settings).to_arrow()
                assert_same_result(actual, run_oracle(sql, session.catalog), sql)
            except AssertionError as exc:
                failures.append(f"{sql}\n  {exc}")
        for base, limit in UNORDERED:
            sql = f"{base} {limit}"
            actual = session.sql(sql, settings=settings).to_arrow()
            expected = run_oracle(sql, session.catalog)
            if actual.num_rows != expected.num_rows or actual.num_columns != expected.num_columns:
                failures.append(f"{sql}\n  {actual.num_rows} rows x {actual.num_columns}, "
                                f"DuckDB {expected.num_rows} x {expected.num_columns}")
                continue
            extra = _rows(actual) - _rows(run_oracle(base, session.catalog))
            if extra:
                failures.append(f"{sql}\n  rows not in the unlimited result: {list(extra)[:3]}")
        assert not failures, "\n".join(failures)


def test_the_optimized_plan_shows_the_limit_decisions_and_the_scan_follows(cluster) -> None:
    sql = "SELECT user_id, status FROM access_log LIMIT 10"
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        optimized = session.explain(sql, "optimized")
        assert "Scan: access_log [user_id, status] fetch=10" in optimized
        on = session.sql(sql)
        assert on.stats.plan.stages[0].tasks == 1  # one fragment holds 10 rows
        assert "ScanExec: access_log [user_id, status] fragments=1 of 8 fetch=10" in \
            session.explain(sql)
        off = session.sql(sql, settings={"optimizer.push_down_limit": False,
                                         **ONE_TASK_PER_FRAGMENT})
        assert off.stats.plan.stages[0].tasks == 8
        assert on.to_arrow().num_rows == off.to_arrow().num_rows == 10

        top = "SELECT user_id, bytes FROM access_log ORDER BY bytes DESC, user_id LIMIT 3"
        assert "Sort: bytes DESC, user_id ASC fetch=3" in session.explain(top, "optimized")
        plain = session.explain(top, "optimized", settings={"optimizer.push_down_limit": False})
        assert "Limit: 3" in plain and "fetch=" not in plain
        assert "SortExec(partial)" in session.explain(top)
        assert "SortExec(partial)" not in session.explain(
            top, settings={"optimizer.push_down_limit": False})


def test_a_sqlite_scan_does_not_trust_registration_row_counts(tmp_path, cluster) -> None:
    # SQLite is a live database: rows deleted after registration must not make LIMIT return
    # fewer rows than the table holds (the first rowid ranges are empty now).
    import sqlite3

    from mpp.catalog import Catalog
    from mpp.catalog.sqlite_source import register_sqlite

    db = tmp_path / "live.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (id INTEGER)")
        con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 101)])
    wh = tmp_path / "w"
    register_sqlite(Catalog.open(wh, create=True), "t", db, fragments=4)
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM t WHERE id <= 50")
    with mpp.connect(wh, cluster=cluster) as session:
        assert "fetch=30" in session.explain("SELECT id FROM t LIMIT 30", "optimized")
        ids = session.sql("SELECT id FROM t LIMIT 30").to_arrow()["id"].to_pylist()
    assert len(ids) == 30 and all(50 < i <= 100 for i in ids)


def test_order_by_a_name_two_outputs_share_for_one_column(cluster) -> None:
    # difftest seed 2, cases 54 and 389: `SELECT day, void.day ... ORDER BY day` names one
    # column twice; Trino orders by it (only different expressions so named are ambiguous).
    sql = ("SELECT date, access_log.date, status FROM access_log "
           "ORDER BY date DESC, status LIMIT 7")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        assert_same_result(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog), sql)
        with pytest.raises(mpp.MppError, match="ORDER BY 'x' is ambiguous"):
            session.sql("SELECT date x, status x FROM access_log ORDER BY x")
