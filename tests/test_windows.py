"""Window functions: every function and frame equals DuckDB over the same files; the plan
exchanges by the PARTITION BY keys (one exchange for windows sharing them), gathers a window
without PARTITION BY into one task, and pushes only partition-key filters below a window.

Functions whose value depends on the order of rows that tie on ORDER BY (row_number, lag,
first_value with ROWS frames, ...) are ordered by enough columns to make the order total, or
compared through aggregate facts that ties do not change (``max(rn)`` per partition is its row
count whatever the order).
"""

from __future__ import annotations

import pyarrow as pa
import pytest

import mpp
from mpp.errors import SqlError
from mpp.logical.expr import Column, SortKey
from mpp.logical.window import BoundKind, Frame, FrameBound, WindowCall, WindowFunc
from mpp.oracle import run_oracle
from mpp.physical.window import evaluate_windows
from mpp.physical.window_stream import stream_windows, streaming_reason
from mpp.session import Result, Session
from mpp.sql import bind
from tests.compare import assert_same_result
from tests.fake_catalog import FakeCatalog
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT, warehouse

# A total order of access_log rows (no two rows agree on all of these).
TOTAL = "time, user_id, session_id, url_id, bytes, status"
# Keys with NULLs: a NULL status group, and NULL byte counts below 1,000.
NSTATUS = "CASE WHEN status = 404 THEN NULL ELSE status END"
NBYTES = "CASE WHEN bytes < 1000 THEN NULL ELSE bytes END"

QUERIES = [
    # ranking, with a total order and with ties (rank and dense_rank are defined under ties)
    f"SELECT user_id, time, row_number() OVER (PARTITION BY user_id ORDER BY {TOTAL}) rn "
    "FROM access_log",
    "SELECT user_id, status, date, rank() OVER (PARTITION BY user_id ORDER BY date) r, "
    "dense_rank() OVER (PARTITION BY user_id ORDER BY date DESC) d FROM access_log",
    f"SELECT user_id, time, ntile(3) OVER (PARTITION BY user_id ORDER BY {TOTAL}) n3, "
    f"ntile(7) OVER (PARTITION BY status ORDER BY {TOTAL}) n7 FROM access_log",
    # lag / lead with offsets and defaults
    f"SELECT user_id, time, bytes, lag(bytes) OVER (PARTITION BY user_id ORDER BY {TOTAL}) a, "
    f"lead(bytes, 2, -1) OVER (PARTITION BY user_id ORDER BY {TOTAL}) b, "
    f"lag(status, 0) OVER (PARTITION BY user_id ORDER BY {TOTAL}) c, "
    f"lead(time, 1, time) OVER (PARTITION BY user_id ORDER BY {TOTAL}) d FROM access_log",
    # first / last value with the default frame (peers included) and ROWS frames
    f"SELECT user_id, time, first_value(status) OVER (PARTITION BY user_id ORDER BY {TOTAL}) f, "
    f"last_value(bytes) OVER (PARTITION BY user_id ORDER BY {TOTAL} ROWS BETWEEN CURRENT ROW "
    "AND UNBOUNDED FOLLOWING) l, last_value(status) OVER (PARTITION BY user_id ORDER BY "
    f"{TOTAL} ROWS BETWEEN 2 PRECEDING AND 1 PRECEDING) lp FROM access_log",
    # aggregates over default, whole-partition, ROWS and RANGE frames
    "SELECT user_id, date, sum(bytes) OVER (PARTITION BY user_id ORDER BY date) s, "
    "avg(bytes) OVER (PARTITION BY user_id) a, count(*) OVER (PARTITION BY date) c, "
    "min(status) OVER (PARTITION BY user_id ORDER BY date DESC) mn, "
    "max(time) OVER (PARTITION BY user_id ORDER BY date) mx FROM access_log",
    f"SELECT user_id, time, count(*) OVER (PARTITION BY user_id ORDER BY {TOTAL} ROWS BETWEEN "
    "2 PRECEDING AND 1 FOLLOWING) c, sum(bytes) OVER (PARTITION BY user_id ORDER BY "
    f"{TOTAL} ROWS 3 PRECEDING) s, min(bytes) OVER (PARTITION BY user_id ORDER BY {TOTAL} "
    "ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) mn, max(status) OVER (PARTITION BY user_id "
    f"ORDER BY {TOTAL} ROWS BETWEEN 1 FOLLOWING AND 3 FOLLOWING) mx, min(time) OVER (PARTITION "
    f"BY user_id ORDER BY {TOTAL} ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) mt, "
    f"max(bytes) OVER (PARTITION BY user_id ORDER BY {TOTAL} ROWS BETWEEN 1 PRECEDING AND "
    "UNBOUNDED FOLLOWING) mf FROM access_log",
    "SELECT user_id, bytes, count(bytes) OVER (PARTITION BY user_id ORDER BY bytes RANGE "
    "BETWEEN 1000 PRECEDING AND 500 FOLLOWING) c, sum(bytes) OVER (PARTITION BY user_id "
    "ORDER BY bytes DESC RANGE BETWEEN 1000 PRECEDING AND CURRENT ROW) s, avg(bytes) OVER "
    "(PARTITION BY user_id ORDER BY bytes RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) "
    "a, max(bytes) OVER (PARTITION BY user_id ORDER BY bytes RANGE BETWEEN 2000 FOLLOWING "
    "AND 3000 FOLLOWING) mx FROM access_log",
    # ORDER BY prefixes share one sort: the shorter ones keep their own peers and RANGE frames
    f"SELECT user_id, date, time, sum(bytes) OVER (PARTITION BY user_id ORDER BY date) s, "
    f"rank() OVER (PARTITION BY user_id ORDER BY date) r, count(*) OVER (PARTITION BY user_id "
    f"ORDER BY bytes RANGE BETWEEN 100 PRECEDING AND CURRENT ROW) c, lag(bytes) OVER "
    f"(PARTITION BY user_id ORDER BY {TOTAL}) l, max(status) OVER (PARTITION BY user_id ORDER "
    f"BY bytes, {TOTAL} ROWS 2 PRECEDING) m FROM access_log",
    # doubles: frame sums and a fractional RANGE offset (the leading columns identify rows, so
    # the comparison never orders rows by a float)
    f"SELECT {TOTAL}, sum(CAST(bytes AS DOUBLE) / 3) OVER (PARTITION BY date ORDER BY {TOTAL} "
    "ROWS BETWEEN 5 PRECEDING AND 5 FOLLOWING) s, avg(CAST(bytes AS DOUBLE)) OVER (ORDER BY "
    "bytes RANGE BETWEEN 10.5 PRECEDING AND 10.5 FOLLOWING) a FROM access_log",
    # no PARTITION BY: one partition (gathered), a running total
    "SELECT date, status, sum(bytes) OVER (ORDER BY date) s, count(*) OVER () n FROM access_log",
    # NULLs in partition and order keys (NULLs last, and NULLS FIRST / DESC)
    f"SELECT {NSTATUS} k, {NBYTES} v, rank() OVER (PARTITION BY {NSTATUS} ORDER BY {NBYTES}) r, "
    f"dense_rank() OVER (PARTITION BY {NSTATUS} ORDER BY {NBYTES} DESC NULLS FIRST) d, "
    f"sum(bytes) OVER (PARTITION BY {NSTATUS} ORDER BY {NBYTES} NULLS FIRST) s, "
    f"count({NBYTES}) OVER (PARTITION BY {NSTATUS} ORDER BY {NBYTES} DESC) c FROM access_log",
    f"SELECT {NSTATUS} k, {NBYTES} v, count(*) OVER (PARTITION BY {NSTATUS} ORDER BY {NBYTES} "
    "RANGE BETWEEN 500 PRECEDING AND 500 FOLLOWING) c, min(user_id) OVER (PARTITION BY "
    f"{NSTATUS} ORDER BY {NBYTES} DESC) m, first_value({NBYTES}) OVER (PARTITION BY {NSTATUS} "
    f"ORDER BY {NBYTES} NULLS FIRST) f FROM access_log",
    # row_number under ties: only the facts ties do not change
    "SELECT status, count(*) n, max(rn) m, sum(rn) s FROM (SELECT status, row_number() OVER "
    "(PARTITION BY status ORDER BY date) rn FROM access_log) t GROUP BY status",
    # windows over GROUP BY output
    "SELECT date, status, count(*) c, rank() OVER (PARTITION BY date ORDER BY count(*) DESC) r, "
    "sum(count(*)) OVER (PARTITION BY date) tot, sum(sum(bytes)) OVER (ORDER BY date, status "
    "ROWS UNBOUNDED PRECEDING) run FROM access_log GROUP BY date, status",
    # top-N per group, de-duplication, DISTINCT and ORDER BY over a window
    f"SELECT d, u FROM (SELECT date d, user_id u, row_number() OVER (PARTITION BY date ORDER BY "
    f"{TOTAL}) rn FROM access_log) t WHERE rn <= 3",
    "SELECT DISTINCT status, count(*) OVER (PARTITION BY status) n FROM access_log "
    "ORDER BY n DESC",
    # strings and dates through min/max/first_value frames; a window over a join
    "SELECT u.user_id, u.country, u.plan, min(u.country) OVER (PARTITION BY u.plan ORDER BY "
    "u.user_id ROWS 2 PRECEDING) m, max(u.created_at) OVER (PARTITION BY u.plan ORDER BY "
    "u.user_id ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING) d, first_value(u.country) OVER "
    "(PARTITION BY u.country ORDER BY u.user_id) f FROM users u",
    "SELECT a.user_id, u.country, a.bytes, rank() OVER (PARTITION BY u.country ORDER BY "
    "a.bytes DESC) r, lag(a.status, 2, 0) OVER (PARTITION BY u.country ORDER BY a.time, "
    "a.user_id, a.session_id, a.url_id, a.bytes, a.status) l FROM access_log a "
    "JOIN users u ON u.user_id = a.user_id",
    # a window only in ORDER BY (hidden), and one over aggregates in ORDER BY
    f"SELECT user_id, time FROM access_log ORDER BY row_number() OVER (ORDER BY {TOTAL}) "
    "LIMIT 5",
    "SELECT date, count(*) c FROM access_log GROUP BY date "
    "ORDER BY rank() OVER (ORDER BY count(*) DESC), date",
    # empty input
    "SELECT user_id, row_number() OVER (PARTITION BY user_id ORDER BY time) rn, "
    "sum(bytes) OVER () s FROM access_log WHERE status = 999",
]

SHAPES = [("parquet", 8), ("csv", 3)]


@pytest.mark.parametrize("fmt,fragments", SHAPES, ids=[f"{f}-{n}" for f, n in SHAPES])
def test_window_functions_match_duckdb(fmt: str, fragments: int, cluster) -> None:
    failures = []
    with mpp.connect(warehouse(cluster.client, fmt, fragments), cluster=cluster) as session:
        for sql in QUERIES:
            try:
                actual = session.sql(sql).to_arrow()
                assert_same_result(actual, run_oracle(sql, session.catalog), sql)
            except (AssertionError, SqlError) as exc:
                failures.append(f"{sql}\n  {exc}")
    assert not failures, "\n".join(failures)


def test_windows_in_batches_match_duckdb(cluster) -> None:
    # execution.window_batch_rows = 5 streams every task of more than 5 rows through the
    # batch path (sorted order, batches cut at peer groups, running state carried); windows
    # it cannot stream (lead, ntile, FOLLOWING frames) keep whole partitions. Same results.
    failures = []
    settings = {"execution.window_batch_rows": 5}
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        for sql in QUERIES:
            try:
                actual = session.sql(sql, settings=settings).to_arrow()
                assert_same_result(actual, run_oracle(sql, session.catalog), sql)
            except (AssertionError, SqlError) as exc:
                failures.append(f"{sql}\n  {exc}")
        running = ("SELECT date, max(running) m, sum(running) s FROM (SELECT date, sum(bytes) "
                   "OVER (PARTITION BY date ORDER BY time) running FROM access_log) t "
                   "GROUP BY date")
        result = session.sql(running, settings=settings)
        assert_same_result(result.to_arrow(), run_oracle(running, session.catalog), running)
        assert "[streamed in batches of 5 rows when a task holds more]" in \
            result.explain_analyze
        lead = session.explain("SELECT lead(bytes) OVER (PARTITION BY date ORDER BY time) "
                               "FROM access_log", settings=settings)
        assert "WindowExec" in lead and "streamed" not in lead
    assert not failures, "\n".join(failures)


def test_empty_buckets_and_a_partition_over_every_fragment(cluster) -> None:
    # 16 buckets for 5 status values: most buckets receive no rows; each status value's rows
    # come from all 8 fragments.
    sql = (f"SELECT status, time, row_number() OVER (PARTITION BY status ORDER BY {TOTAL}) rn, "
           "count(*) OVER (PARTITION BY status) n FROM access_log")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        result = session.sql(sql, settings={"execution.hash_buckets": 16,
                                            **ONE_TASK_PER_FRAGMENT})
        assert_same_result(result.to_arrow(), run_oracle(sql, session.catalog), sql)
        assert result.stats.plan.stages[0].tasks == 8
        assert result.stats.plan.stages[-1].tasks == 16


def test_ntile_puts_the_larger_buckets_first(cluster) -> None:
    # Trino: bucket sizes differ by at most one, the remainder going one row per bucket from
    # the first. 10 rows into 4 buckets: 3, 3, 2, 2.
    sql = ("SELECT x, ntile(4) OVER (ORDER BY x) b FROM (VALUES 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) "
           "AS t (x)")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        actual = session.sql(sql).to_arrow()
        assert_same_result(actual, run_oracle(sql, session.catalog), sql)
    assert actual.sort_by("x")["b"].to_pylist() == [1, 1, 1, 2, 2, 2, 3, 3, 4, 4]


def test_nulls_sort_last_in_either_direction_as_in_trino(cluster) -> None:
    # Trino: "the default null ordering is NULLS LAST, regardless of the ordering direction".
    # The oracle gets the ordering written out, so the check does not rest on DuckDB's default.
    sql = ("SELECT x, rank() OVER (ORDER BY x DESC) a, rank() OVER (ORDER BY x) b, "
           "sum(x) OVER (ORDER BY x DESC) s FROM (VALUES 1, NULL, 3, 3, NULL) AS t (x)")
    oracle = sql.replace("x DESC)", "x DESC NULLS LAST)").replace("BY x)", "BY x NULLS LAST)")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        actual = session.sql(sql).to_arrow()
        assert_same_result(actual, run_oracle(oracle, session.catalog), sql)
    nulls = [r for r in actual.to_pylist() if r["x"] is None]
    assert {(r["a"], r["b"]) for r in nulls} == {(4, 4)}


def _plan(sql: str, session: Session) -> str:
    return session.explain(sql)


def test_windows_sharing_partition_by_share_one_exchange(cluster) -> None:
    sql = ("SELECT user_id, rank() OVER (PARTITION BY user_id ORDER BY date) r, "
           "sum(bytes) OVER (PARTITION BY user_id ORDER BY date) s, "
           "count(*) OVER (PARTITION BY user_id) n FROM access_log")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        text = _plan(sql, session)
        plan = session.sql(sql).stats.plan
    assert text.count("ExchangeExec(HASH): by access_log.user_id") == 1
    assert len(plan.stages) == 2
    # The same ORDER BY: one WindowExec (one sort) for rank and sum; count(*) another.
    assert text.count("WindowExec:") == 2
    assert "rank() AS _w0, sum(access_log.bytes) AS _w1" in text


def test_a_window_without_partition_by_gathers_and_says_why(cluster) -> None:
    sql = "SELECT date, sum(bytes) OVER (ORDER BY date) s FROM access_log"
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        text = _plan(sql, session)
        plan = session.sql(sql).stats.plan
    assert "ExchangeExec(GATHER)" in text
    assert "no PARTITION BY: the whole input is one partition, gathered into one task" in text
    assert plan.stages[-1].tasks == 1


def test_only_partition_key_filters_go_below_a_window(cluster) -> None:
    sql = ("SELECT * FROM (SELECT date, status, row_number() OVER (PARTITION BY date ORDER BY "
           "time) rn FROM access_log) t WHERE date = DATE '2017-01-02' AND status = 200")
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        optimized = session.explain(sql, "optimized")
    scan = next(line for line in optimized.splitlines() if "Scan:" in line)
    assert "date = DATE '2017-01-02'" in scan and "status" not in scan.split("filter=")[1]
    above = optimized.split("Window:")[0]
    assert "Filter: access_log.status = 200" in above


@pytest.mark.parametrize(("sql", "message", "line", "column"), [
    ("SELECT date FROM access_log\nWHERE row_number() OVER (ORDER BY date) = 1",
     "window functions are not allowed in WHERE", 2, 20),
    ("SELECT date, count(*) FROM access_log GROUP BY date\nHAVING rank() OVER (ORDER BY date) "
     "= 1", "window functions are not allowed in HAVING", 2, 15),
    ("SELECT date,\n  first_value(date) IGNORE NULLS OVER (ORDER BY time) FROM access_log",
     "IGNORE NULLS", 2, 3),
    ("SELECT date,\n  count(*) OVER (ORDER BY date GROUPS 1 PRECEDING) FROM access_log",
     "GROUPS window frame", 2, 39),
    ("SELECT sum(bytes) OVER w FROM access_log\nWINDOW w AS (PARTITION BY date)",
     "WINDOW clause", 2, 8),
    ("SELECT sum(bytes) OVER w FROM access_log", "named window", 1, 8),
    ("SELECT percent_rank() OVER (ORDER BY time) FROM access_log",
     "window function percent_rank()", 1, 8),
    ("SELECT foo(bytes) OVER () FROM access_log",
     "window function foo() is not in mpp's SQL subset (the window functions are row_number", 1,
     8),
    ("SELECT count(*) FILTER (WHERE status = 200) OVER () FROM access_log",
     "FILTER (WHERE ...) on a window function", 1, 8),
    ("SELECT sum(bytes) OVER (ORDER BY date RANGE 1 PRECEDING) FROM access_log",
     "needs exactly one numeric ORDER BY key", 1, 45),
    ("SELECT sum(bytes) OVER (ORDER BY time ROWS BETWEEN 1 FOLLOWING AND CURRENT ROW) "
     "FROM access_log", "starting from FOLLOWING cannot end with CURRENT ROW", 1, 52),
    ("SELECT lag(bytes, -1) OVER (ORDER BY time) FROM access_log",
     "lag's offset must be an integer constant", 1, 20),
    ("SELECT sum(rank() OVER (ORDER BY date)) FROM access_log",
     "window functions are not allowed in an aggregate function's argument", 1, 19),
    ("SELECT user_id FROM users u WHERE 1 IN (SELECT rank() OVER (ORDER BY a.time) "
     "FROM access_log a WHERE a.user_id = u.user_id)", "window functions", 1, 41),
])
def test_refused_window_forms_name_line_and_column(sql: str, message: str, line: int,
                                                   column: int) -> None:
    with pytest.raises(SqlError) as info:
        bind(sql, FakeCatalog())
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def test_window_types_follow_trino() -> None:
    plan = bind("SELECT row_number() OVER () a, sum(status) OVER () b, avg(status) OVER () c, "
                "max(date) OVER () d, lag(status, 1, 0) OVER () e FROM access_log",
                FakeCatalog())
    types = [f.dtype for f in plan.root.schema]
    assert types[:4] == [pa.int64(), pa.int64(), pa.float64(), pa.date32()]


TOP_N = [
    f"SELECT user_id, time FROM (SELECT user_id, time, row_number() OVER (PARTITION BY user_id "
    f"ORDER BY {TOTAL}) rn FROM access_log) t WHERE rn = 1",
    "SELECT * FROM (SELECT date, status, rank() OVER (PARTITION BY date ORDER BY status DESC) r, "
    "dense_rank() OVER (PARTITION BY date ORDER BY status DESC) d FROM access_log) t "
    "WHERE 2 >= d",
    "SELECT * FROM (SELECT user_id, bytes, rank() OVER (ORDER BY bytes DESC) r FROM access_log) "
    "t WHERE r < 6",
    # Only the partition and order keys: each task's first row per key is a group-by min/max
    # (W1's shape); with NULL keys and NULL order values, either direction, NULLS FIRST.
    "SELECT user_id, time FROM (SELECT user_id, time, row_number() OVER (PARTITION BY user_id "
    "ORDER BY time) rn FROM access_log) t WHERE rn = 1",
    f"SELECT s, b FROM (SELECT s, b, row_number() OVER (PARTITION BY s ORDER BY b DESC) rn "
    f"FROM (SELECT {NSTATUS} s, {NBYTES} b FROM access_log) x) t WHERE rn = 1",
    f"SELECT s, b FROM (SELECT s, b, row_number() OVER (PARTITION BY s ORDER BY b NULLS FIRST) "
    f"rn FROM (SELECT {NSTATUS} s, {NBYTES} b FROM access_log) x) t WHERE rn = 1",
    # Other columns too (de-duplication keeping the message), a string key: each task's first
    # row per key by a hash of the key and a scatter of the smallest order value. The extra
    # column follows from the order key, so ties on it do not change the result.
    "SELECT k, time, d FROM (SELECT k, time, d, row_number() OVER (PARTITION BY k ORDER BY "
    "time DESC) rn FROM (SELECT CAST(user_id AS VARCHAR) k, time, CAST(time AS DATE) d "
    "FROM access_log) x) t WHERE rn = 1",
]


@pytest.mark.parametrize("sql", TOP_N)
def test_top_n_per_group_cuts_rows_before_the_exchange(sql: str, cluster) -> None:
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as session:
        expected = run_oracle(sql, session.catalog)
        on = session.sql(sql)
        off = session.sql(sql, settings={"optimizer.push_down_topn_per_group": False})
        assert_same_result(on.to_arrow(), expected, sql)
        assert_same_result(off.to_arrow(), expected, sql)
        assert "WindowTopNExec(partial)" in session.explain(sql)

    def sent(result: Result) -> int:  # rows the scan tasks handed to the exchange
        stage = result.stats.plan.stage(1)
        return sum(g.rows_out for g in result.stats.stages[1] if g.name.endswith(stage.name))

    assert sent(on) < sent(off) == 4_000


FRAMES = [(rows, FrameBound(BoundKind(s), a), FrameBound(BoundKind(e), b)) for rows, s, a, e, b in [
    (True, "UNBOUNDED PRECEDING", None, "CURRENT ROW", None),
    (True, "PRECEDING", 2, "PRECEDING", 1),
    (True, "PRECEDING", 1, "FOLLOWING", 2),
    (True, "CURRENT ROW", None, "UNBOUNDED FOLLOWING", None),
    (True, "FOLLOWING", 1, "FOLLOWING", 3),
    (True, "PRECEDING", 3, "UNBOUNDED FOLLOWING", None),
    (False, "UNBOUNDED PRECEDING", None, "CURRENT ROW", None),
    (False, "CURRENT ROW", None, "UNBOUNDED FOLLOWING", None),
    (False, "PRECEDING", 5, "FOLLOWING", 5),
    (False, "PRECEDING", 0, "FOLLOWING", 3),
    (False, "FOLLOWING", 2, "FOLLOWING", 6),
    (False, "PRECEDING", 4, "PRECEDING", 1),
    (False, "UNBOUNDED PRECEDING", None, "UNBOUNDED FOLLOWING", None),
]]
FUNCS = [WindowFunc.COUNT_STAR, WindowFunc.COUNT, WindowFunc.SUM, WindowFunc.AVG,
         WindowFunc.MIN, WindowFunc.MAX, WindowFunc.FIRST_VALUE, WindowFunc.LAST_VALUE]


def evaluate(table: pa.Table, partition: tuple[str, ...], order: tuple[SortKey, ...],
             calls: tuple[WindowCall, ...], names: tuple[str, ...],
             batch: int | None) -> pa.Table:
    """The kernel over whole partitions (``batch`` None), or in batches of ``batch`` rows
    for the calls that allow it (the whole-partition kernel for the others), ordered by
    ``id``."""
    if batch is None:
        return evaluate_windows(table, partition, order, calls, names).sort_by("id")
    out = table.sort_by("id")
    for call, name in zip(calls, names, strict=True):
        if streaming_reason(order, (call,)) is None:
            done = pa.concat_tables(stream_windows(table, partition, order, (call,), (name,),
                                                   batch))
        else:
            done = evaluate_windows(table, partition, order, (call,), (name,))
        out = out.append_column(name, done.sort_by("id")[name])
    return out


@pytest.mark.parametrize("batch", [None, 1, 7, 64], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("ascending,nulls_first", [(True, False), (False, False),
                                                    (True, True), (False, True)])
def test_every_frame_of_the_kernel_matches_duckdb(ascending: bool, nulls_first: bool,
                                                  batch: int | None) -> None:
    # The kernel alone on one table with NULL and tied keys, every frame x function, against
    # DuckDB's window over the same Arrow table. ROWS frames (and first/last_value, which
    # ties would leave open) order by (o, id), a total order; RANGE frames by o alone.
    import duckdb
    import numpy as np

    rng = np.random.default_rng(14)
    n = 400
    table = pa.table({
        "id": pa.array(np.arange(n)),
        "k": pa.array(rng.integers(0, 6, n), mask=rng.random(n) < 0.1),
        "o": pa.array(rng.integers(0, 40, n), mask=rng.random(n) < 0.15),
        "v": pa.array(rng.integers(-50, 50, n), mask=rng.random(n) < 0.2),
    })
    direction = ("ASC" if ascending else "DESC") + (" NULLS FIRST" if nulls_first else
                                                     " NULLS LAST")
    o = SortKey(Column("o", pa.int64()), ascending, nulls_first)
    tie = SortKey(Column("id", pa.int64()))
    v = Column("v", pa.int64())
    failures = []
    for rows, start, end in FRAMES:
        frame = Frame(rows, start, end)
        for func in FUNCS:
            if not rows and func in (WindowFunc.FIRST_VALUE, WindowFunc.LAST_VALUE):
                continue
            order = (o, tie) if rows else (o,)
            dtype = pa.float64() if func is WindowFunc.AVG else pa.int64()
            call = WindowCall(func, None if func is WindowFunc.COUNT_STAR else v, dtype, frame)
            ours = evaluate(table, ("k",), order, (call,), ("w",), batch).select(["id", "w"])
            name = "count" if func is WindowFunc.COUNT_STAR else func.value
            arg = "*" if func is WindowFunc.COUNT_STAR else "v"
            keys = f"o {direction}" + (", id" if rows else "")
            sql = (f"SELECT id, {name}({arg}) OVER (PARTITION BY k ORDER BY {keys} {frame}) "
                   "AS w FROM t")
            con = duckdb.connect()
            con.register("t", table)
            theirs = con.sql(sql).to_arrow_table()
            a = ours.sort_by("id")["w"].to_pylist()
            b = theirs.sort_by("id")["w"].to_pylist()
            if any(x != y and not (x is not None and y is not None and abs(x - y) < 1e-9)
                   for x, y in zip(a, b, strict=True)):
                failures.append(sql)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("batch", [None, 3], ids=lambda b: f"batch{b}")
def test_decimal_frames_are_exact_and_avg_rounds_half_up(batch: int | None) -> None:
    # sum of decimal(10, 2) is decimal(38, 2) and avg a decimal(10, 2) rounded half up
    # (Trino); the oracle query is translated (DuckDB's avg is a double).
    import decimal

    import duckdb
    import numpy as np

    from mpp.oracle import duckdb_sql

    rng = np.random.default_rng(7)
    n = 300
    cents = rng.integers(-100_000, 100_000, n)
    values = [None if i % 11 == 0 else decimal.Decimal(int(c)).scaleb(-2)
              for i, c in enumerate(cents)]
    table = pa.table({"id": pa.array(np.arange(n)), "k": pa.array(rng.integers(0, 4, n)),
                      "v": pa.array(values, pa.decimal128(10, 2))})
    v = Column("v", pa.decimal128(10, 2))
    order = (SortKey(Column("id", pa.int64())),)
    frames = [Frame(True, FrameBound(BoundKind.PRECEDING, 1), FrameBound(BoundKind.FOLLOWING, 1)),
              Frame(True, FrameBound(BoundKind.UNBOUNDED_PRECEDING),
                    FrameBound(BoundKind.CURRENT_ROW)),
              Frame(True, FrameBound(BoundKind.FOLLOWING, 5), FrameBound(BoundKind.FOLLOWING, 9))]
    calls = [WindowCall(f, v, t, frame) for frame in frames for f, t in
             ((WindowFunc.SUM, pa.decimal128(38, 2)), (WindowFunc.AVG, pa.decimal128(10, 2)),
              (WindowFunc.MIN, v.dtype), (WindowFunc.MAX, v.dtype))]
    names = tuple(f"w{i}" for i in range(len(calls)))
    ours = evaluate(table, ("k",), order, tuple(calls), names, batch).sort_by("id")
    items = ", ".join(f"{c.func.value}(v) OVER (PARTITION BY k ORDER BY id {c.frame}) AS {name}"
                      for c, name in zip(calls, names, strict=True))
    sql = duckdb_sql(f"SELECT id, {items} FROM t",
                     {"t": {"id": "BIGINT", "k": "BIGINT", "v": "DECIMAL(10, 2)"}})
    con = duckdb.connect()
    con.register("t", table)
    theirs = con.sql(sql).to_arrow_table().sort_by("id")
    for name in names:
        assert ours[name].to_pylist() == theirs[name].to_pylist(), name


def test_only_windows_that_look_back_stream() -> None:
    # A running total, ranks, lag and ROWS n PRECEDING stream; what needs later rows, a
    # look-back by value or an extreme without an element-wise kernel keeps whole partitions.
    o = (SortKey(Column("o", pa.int64())),)
    v, flag = Column("v", pa.int64()), Column("b", pa.bool_())
    back = Frame(True, FrameBound(BoundKind.PRECEDING, 3), FrameBound(BoundKind.CURRENT_ROW))
    by_value = Frame(False, FrameBound(BoundKind.PRECEDING, 3), FrameBound(BoundKind.CURRENT_ROW))
    ahead = Frame(True, FrameBound(BoundKind.CURRENT_ROW), FrameBound(BoundKind.FOLLOWING, 1))
    streams = [WindowCall(WindowFunc.SUM, v, pa.int64()), WindowCall(WindowFunc.RANK, None,
               pa.int64()), WindowCall(WindowFunc.LAG, v, pa.int64(), offset=2),
               WindowCall(WindowFunc.MAX, v, pa.int64(), back)]
    whole = [WindowCall(WindowFunc.LEAD, v, pa.int64()),
             WindowCall(WindowFunc.NTILE, None, pa.int64(), offset=3),
             WindowCall(WindowFunc.SUM, v, pa.int64(), by_value),
             WindowCall(WindowFunc.SUM, v, pa.int64(), ahead),
             WindowCall(WindowFunc.MIN, flag, pa.bool_())]
    assert streaming_reason(o, tuple(streams)) is None
    assert streaming_reason((), (streams[0],)) is not None  # no ORDER BY: one peer group
    for call in whole:
        assert streaming_reason(o, (call,)) is not None, call
