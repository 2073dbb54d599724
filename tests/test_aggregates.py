"""The aggregate functions (docs/aggregates.md): each equals DuckDB over the same files, with
NULLs, empty groups, empty input, no GROUP BY and partial rows merged from many fragments, under
every DISTINCT strategy; approx_distinct stays within its standard error of the exact count."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import mpp
from mpp.errors import SqlError
from mpp.logical.expr import AggFunc, AggregateCall, Column
from mpp.oracle import run_oracle
from mpp.physical.aggregates import AggregateKernel
from mpp.physical.aggspecs import AGGREGATES, HLL_SPARSE_MAX
from tests.compare import assert_each_matches_oracle, assert_same_rows
from tests.query_warehouses import warehouse

STRATEGIES = ("automatic", "single_step", "pre_aggregate", "rewrite")
# fan-in 2: several combine tasks per exchange, so partial rows of one group arrive from
# several upstream outputs and are merged more than once.
FAN_INS = (32, 2)

PLAIN = [
    # url_id has NULLs; status = 999 never occurs, so those FILTERed aggregates see no row.
    "SELECT date, stddev(bytes) s, stddev_samp(status) ss, stddev_pop(bytes) sp, "
    "variance(bytes) v, var_samp(url_id) vs, var_pop(url_id) vp FROM access_log GROUP BY date",
    "SELECT stddev(bytes) s, variance(status) v, var_pop(bytes) vp, stddev_pop(url_id) sp "
    "FROM access_log",
    "SELECT status, count_if(bytes > 5000) c, count_if(url_id IS NULL) n, "
    "bool_and(bytes > 100) a, every(url_id < 30) e, bool_or(bytes > 60000) o "
    "FROM access_log GROUP BY status",
    "SELECT date, count(*) FILTER (WHERE status = 404) c, sum(bytes) FILTER (WHERE status = 999) "
    "s, avg(bytes) FILTER (WHERE url_id IS NOT NULL) a, stddev(bytes) FILTER (WHERE status = 200)"
    " d, count_if(bytes > 1000) FILTER (WHERE status = 999) ci, min(user_id) FILTER "
    "(WHERE bytes > 20000) lo, max(time) FILTER (WHERE status <> 200) hi, "
    "bool_or(status = 500) FILTER (WHERE url_id > 10) b FROM access_log GROUP BY date",
    # DECIMAL arguments: the variances are doubles (Trino casts), min/max/min_by keep DECIMAL.
    "SELECT date, stddev(CAST(bytes AS DECIMAL(12, 2)) / 7) s, "
    "var_pop(DISTINCT CAST(status AS DECIMAL(5, 1))) v, max(CAST(bytes AS DECIMAL(12, 2))) m, "
    "min_by(CAST(bytes AS DECIMAL(12, 2)), time) b FROM access_log GROUP BY date",
    # A group with a single row: the sample variance is NULL (Trino), the population one 0.
    "SELECT user_id, stddev(bytes) s, var_pop(bytes) v, count(*) c FROM access_log "
    "WHERE user_id < 40 GROUP BY user_id",
    # Empty input, without and with GROUP BY: counts 0, everything else NULL.
    "SELECT count(*) c, count_if(status = 200) ci, stddev(bytes) s, var_pop(bytes) v, "
    "bool_and(status = 200) a, bool_or(status = 200) o, min_by(user_id, time) mb, "
    "max_by(user_id, time) xb, sum(bytes) FILTER (WHERE status = 200) f "
    "FROM access_log WHERE bytes < 0",
    "SELECT date, count_if(status = 200) ci, stddev(bytes) s FROM access_log WHERE bytes < 0 "
    "GROUP BY date",
    # min_by/max_by: ordering values unique per group (users.user_id), a NULL value (url_id),
    # NULL ordering values skipped (url_id as the ordering value).
    "SELECT plan, min_by(country, user_id) a, max_by(created_at, user_id) b, "
    "min_by(user_id, created_at) c FROM users GROUP BY plan",
    "SELECT min_by(country, user_id) a, max_by(plan, user_id) b FROM users",
    "SELECT date, max_by(user_id, url_id * 100000 + bytes) a, "
    "min_by(url_id, time) FILTER (WHERE status = 404) b FROM access_log GROUP BY date",
    # In HAVING and ORDER BY too.
    "SELECT date, count_if(status = 404) c FROM access_log GROUP BY date "
    "HAVING count(*) FILTER (WHERE status = 404) > 0 AND stddev(bytes) > 0 "
    "ORDER BY var_pop(bytes) DESC",
    # Functionally dependent on the group: any value is the value.
    "SELECT user_id, arbitrary(user_id * 2) a, any_value(date) FILTER (WHERE false) b "
    "FROM access_log GROUP BY user_id",
]

DISTINCT = [
    "SELECT date, sum(DISTINCT status) s, avg(DISTINCT bytes) a, count(*) c FROM access_log "
    "GROUP BY date",
    "SELECT date, stddev(DISTINCT status) s, var_pop(DISTINCT status) v, "
    "min(DISTINCT bytes) lo, max(DISTINCT url_id) hi, bool_and(DISTINCT bytes > 100) b "
    "FROM access_log GROUP BY date",
    "SELECT sum(DISTINCT status) s, avg(DISTINCT status) a, count(DISTINCT url_id) u "
    "FROM access_log",
    "SELECT sum(DISTINCT status) s, avg(DISTINCT status) a, stddev(DISTINCT bytes) d "
    "FROM access_log WHERE bytes < 0",
    # Beside plain aggregates the rewrite can split (count_if, bool_or) and one it cannot
    # (stddev: the query stays pre_aggregate), and over several DISTINCT arguments.
    "SELECT date, sum(DISTINCT status) s, count_if(bytes > 5000) c, bool_or(status = 404) o "
    "FROM access_log GROUP BY date",
    "SELECT date, avg(DISTINCT user_id) a, stddev(bytes) d FROM access_log GROUP BY date",
    "SELECT date, sum(DISTINCT status) s, avg(DISTINCT user_id) a, var_samp(bytes) v, "
    "min_by(url_id, time) m, approx_distinct(session_id) ad, bool_and(bytes > 100) b, "
    "arbitrary(date) d, count_if(status = 404) c FROM access_log GROUP BY date",
    "SELECT sum(DISTINCT status) s, count(DISTINCT user_id) u, max_by(url_id, time) m, "
    "approx_distinct(session_id) ad, stddev(bytes) sd FROM access_log",
    # Every other one-argument aggregate over DISTINCT values (approx_distinct is exact below
    # HLL_SPARSE_MAX values a group, and the oracle query counts exactly).
    "SELECT date, count_if(DISTINCT status = 200) ci, bool_or(DISTINCT bytes > 60000) o, "
    "stddev_pop(DISTINCT bytes) sp, variance(DISTINCT url_id) v, stddev_samp(DISTINCT status) ss,"
    " arbitrary(DISTINCT date) a, approx_distinct(DISTINCT user_id) ad FROM access_log "
    "GROUP BY date",
    "SELECT date, sum(DISTINCT status) FILTER (WHERE bytes > 1000) s, "
    "count(DISTINCT user_id) FILTER (WHERE status = 200) u FROM access_log GROUP BY date",
]


@pytest.fixture(scope="module")
def session(cluster):
    with mpp.connect(warehouse(cluster.client, "parquet", 8), cluster=cluster) as s:
        yield s


def _check_all(session, queries: list[str], strategies: tuple[str, ...]) -> None:
    assert_each_matches_oracle(session, queries, [
        {"aggregate.distinct_strategy": strategy, "execution.exchange_fan_in": fan_in}
        for strategy in strategies for fan_in in FAN_INS])


def test_plain_aggregates_match_duckdb(session) -> None:
    _check_all(session, PLAIN, ("automatic",))


def test_distinct_aggregates_match_duckdb_under_every_strategy(session) -> None:
    _check_all(session, DISTINCT, STRATEGIES)


def test_states_merged_from_many_fragments_match_duckdb(cluster) -> None:
    """24 fragments, exchange fan-in 2: each group's states are merged in several rounds of
    combine tasks before the final one."""
    queries = [q for q in PLAIN + DISTINCT if "FROM access_log" in q][::2] + [
        "SELECT date, approx_distinct(user_id) a FROM access_log GROUP BY date"]
    with mpp.connect(warehouse(cluster.client, "parquet", 24), cluster=cluster) as s:
        failures = []
        for sql in queries:
            expected = run_oracle(sql, s.catalog)
            for strategy in ("pre_aggregate", "rewrite"):
                result = s.sql(sql, settings={"aggregate.distinct_strategy": strategy,
                                              "execution.exchange_fan_in": 2})
                if " WHERE " not in sql:  # (a WHERE may prune every fragment: one stage)
                    assert len(result.stats.plan.stages) >= 2
                try:
                    assert_same_rows(result.to_arrow(), expected)
                except AssertionError as exc:
                    failures.append(f"{strategy}: {sql}\n{exc}")
        assert not failures, "\n".join(failures)


def test_min_by_ordering_values_have_no_ties_in_the_compared_queries(session) -> None:
    """The min_by/max_by queries compared with DuckDB must not depend on a tie (either row's
    value would be right)."""
    ties = run_oracle("SELECT count(*) n FROM (SELECT date, time FROM access_log "
                      "WHERE time IS NOT NULL GROUP BY date, time HAVING count(*) > 1)",
                      session.catalog)
    assert ties.column(0).to_pylist() == [0]


def test_min_by_with_ties_returns_a_value_of_a_tied_row(session) -> None:
    # Every row of a date ties on the ordering value: any of the date's statuses is right.
    sql = "SELECT date, min_by(status, date) s, max_by(user_id, 1) u FROM access_log GROUP BY date"
    got = session.sql(sql).to_arrow().to_pylist()
    rows = run_oracle("SELECT DISTINCT date, status, user_id FROM access_log",
                      session.catalog).to_pylist()
    statuses = {(r["date"], r["status"]) for r in rows}
    users = {(r["date"], r["user_id"]) for r in rows}
    assert got and all((r["date"], r["s"]) in statuses for r in got)
    assert all((r["date"], r["u"]) in users for r in got)


def test_arbitrary_returns_a_non_null_value_of_the_group(session) -> None:
    sql = "SELECT date, arbitrary(url_id) a, any_value(status) s FROM access_log GROUP BY date"
    for strategy in ("automatic", "single_step"):
        got = session.sql(sql, settings={"aggregate.distinct_strategy": strategy}).to_arrow()
        rows = run_oracle("SELECT DISTINCT date, url_id, status FROM access_log",
                          session.catalog).to_pylist()
        urls = {(r["date"], r["url_id"]) for r in rows if r["url_id"] is not None}
        statuses = {(r["date"], r["status"]) for r in rows}
        assert got.num_rows == len({d for d, _ in statuses})
        assert all((r["date"], r["a"]) in urls and (r["date"], r["s"]) in statuses
                   for r in got.to_pylist())


TRINO_STANDARD_ERROR = 0.023
# One estimate of a dense sketch is off by more than 3 standard errors 0.3% of the time.
ESTIMATE_BOUND = 3 * TRINO_STANDARD_ERROR


@pytest.mark.parametrize("sql", [
    # Up to HLL_SPARSE_MAX distinct values a group, the sketch is sparse (exact hashes).
    "SELECT date, approx_distinct(user_id) a, count(DISTINCT user_id) c FROM access_log "
    "GROUP BY date",
    "SELECT status, approx_distinct(DISTINCT url_id) a, count(DISTINCT url_id) c "
    "FROM access_log GROUP BY status",
    "SELECT plan, approx_distinct(country) a, count(DISTINCT country) c FROM users GROUP BY plan",
    "SELECT approx_distinct(date) a, count(DISTINCT date) c FROM access_log WHERE bytes < 0",
    # ~4,000 and ~150K distinct values: dense sketches, merged from every fragment's.
    "SELECT approx_distinct(time) a, count(DISTINCT time) c FROM access_log",
    "SELECT approx_distinct(a.session_id * 100 + u.url_id) a, "
    "count(DISTINCT a.session_id * 100 + u.url_id) c FROM access_log a CROSS JOIN urls u",
])
def test_approx_distinct_is_within_its_standard_error_of_the_exact_count(session, sql) -> None:
    def by_key(table: pa.Table, column: str) -> dict[tuple, int]:
        keys = [k for k in table.column_names if k not in ("a", "c")]
        return {tuple(r[k] for k in keys): r[column] for r in table.to_pylist()}

    exact = by_key(run_oracle(sql, session.catalog), "c")
    for fan_in in FAN_INS:
        got = by_key(session.sql(sql, settings={"execution.exchange_fan_in": fan_in}).to_arrow(),
                     "a")
        assert got.keys() == exact.keys()
        for key, approx in got.items():
            if exact[key] <= HLL_SPARSE_MAX:
                assert approx == exact[key], (key, approx)
            else:
                assert abs(approx - exact[key]) <= ESTIMATE_BOUND * exact[key], (key, approx)


def test_approx_distinct_sketches_merge_in_two_phases() -> None:
    """Partial sketches of four slices, merged and finalized, estimate 100 groups of ~20,000
    distinct values each with Trino's standard error: root-mean-square relative error <= 2.3%,
    no estimate beyond 3 standard errors."""
    rng = np.random.default_rng(7)
    values = rng.integers(0, 10**12, 2_000_000)
    groups = values % 100
    table = pa.table({"g": groups, "x": values})
    call = AggregateCall(AggFunc.APPROX_DISTINCT, Column("x", pa.int64()), False, pa.int64())
    kernel = AggregateKernel(("g",), (call,), ("a",))
    partials = pa.concat_tables([kernel.partial(table.slice(i * 500_000, 500_000))
                                 for i in range(4)])
    assert partials.num_rows == 400  # one sketch per (task, group)
    merged = kernel.merge(partials)
    assert merged.num_rows == 100
    result = kernel.final(pa.concat_tables([merged, partials]))  # merging is idempotent
    exact = np.bincount(groups[np.unique(values, return_index=True)[1]], minlength=100)
    got = np.array(result["a"].to_pylist())[np.argsort(result["g"].to_pylist())]
    relative = (got - exact) / exact
    assert np.sqrt(np.mean(relative ** 2)) <= TRINO_STANDARD_ERROR
    assert np.abs(relative).max() <= ESTIMATE_BOUND


def test_variance_merge_keeps_precision_far_from_zero() -> None:
    """Chan's merge of (n, mean, M2) states: values around 1e9 with a spread of 1 keep their
    variance (a sum of squares would cancel it away)."""
    rng = np.random.default_rng(3)
    values = 1e9 + rng.standard_normal(200_000)
    table = pa.table({"g": np.zeros(len(values), dtype=np.int64), "x": values})
    calls = tuple(AggregateCall(f, Column("x", pa.float64()), False, pa.float64())
                  for f in (AggFunc.VAR_SAMP, AggFunc.STDDEV_POP))
    kernel = AggregateKernel(("g",), calls, ("v", "s"))
    partials = pa.concat_tables([kernel.partial(table.slice(i * 20_000, 20_000))
                                 for i in range(10)])
    result = kernel.final(partials)
    assert result["v"][0].as_py() == pytest.approx(np.var(values, ddof=1), rel=1e-9)
    assert result["s"][0].as_py() == pytest.approx(np.std(values), rel=1e-9)


def test_every_aggregate_has_one_spec() -> None:
    assert set(AGGREGATES) == set(AggFunc)


@pytest.mark.parametrize(("sql", "message", "line", "column"), [
    ("SELECT date,\n  foo_agg(bytes) FROM access_log GROUP BY date", "function foo_agg()", 2, 3),
    ("SELECT array_agg(bytes) FROM access_log", "aggregate function array_agg()", 1, 8),
    # Other dialects' names that sqlglot reads as these functions: not Trino's.
    ("SELECT date, stdev(bytes) FROM access_log GROUP BY date",
     "function stdev() is not in mpp's SQL subset (did you mean stddev", 1, 14),
    ("SELECT arg_min(user_id, time) FROM access_log", "function arg_min()", 1, 8),
    ("SELECT approx_count_distinct(user_id) FROM access_log", "function approx_count_distinct()",
     1, 8),
    ("SELECT covar_pop(bytes, status) FROM access_log",
     "aggregate function covar_pop() is not in mpp's SQL subset (closest aggregate functions: "
     "var_pop)", 1, 8),
    ("SELECT count_if(bytes) FROM access_log", "count_if() cannot be applied to int32", 1, 8),
    ("SELECT stddev(date) FROM access_log", "stddev() cannot be applied to date32", 1, 8),
    ("SELECT bool_or(status) FROM access_log", "bool_or() cannot be applied to int16", 1, 8),
    ("SELECT min_by(DISTINCT user_id, time) FROM access_log",
     "min_by(DISTINCT ...) of several arguments", 1, 8),
    ("SELECT max_by(user_id) FROM access_log", "max_by takes 2 arguments", 1, 8),
    ("SELECT sum(bytes) FILTER (WHERE count(*) > 1) FROM access_log",
     "FILTER (WHERE ...) cannot contain an aggregate", 1, 33),
    ("SELECT date FROM access_log WHERE min_by(bytes, time) FILTER (WHERE status = 1) > 1",
     "aggregate function min_by() is not allowed in WHERE", 1, 35),
])
def test_aggregate_errors_name_the_call_with_its_position(session, sql, message, line,
                                                          column) -> None:
    with pytest.raises(SqlError) as info:
        session.sql(sql)
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)
