"""Every join form equals DuckDB under every strategy: comma joins (keys from WHERE, order from
statistics), CROSS JOIN, RIGHT and FULL OUTER, USING, non-equality ON conditions beside keys
and alone; with NULL keys, duplicate keys, keys of different integer widths and empty sides.
EXPLAIN names each form and its distribution."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.write import write_fragment
from mpp.errors import SqlError
from mpp.metrics.whatif import DEFAULT_BANDWIDTH
from mpp.oracle import run_oracle
from mpp.physical.operators.exchange import ExchangeKind
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_rows


def _write(cat: Catalog, name: str, parts: list[pa.Table]) -> None:
    target = cat.begin_write(name, parts[0].schema, StorageFormat.PARQUET)
    cat.commit_write(target, [write_fragment(target, i, t) for i, t in enumerate(parts)])


@pytest.fixture(scope="module")
def forms_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lt (3 fragments, BIGINT k) and rt (2 fragments, INTEGER k): NULL and duplicate keys,
    keys on one side only; st a small third table; ut another single-fragment table (NULL and
    duplicate values); et an empty table."""
    root = tmp_path_factory.mktemp("join_forms") / "w"
    cat = Catalog.open(root, create=True)
    lt = pa.table({"k": pa.array([1, 1, 2, 3, None, 5, 7, 7, 2, None, 9, 4], pa.int64()),
                   "x": pa.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], pa.int64()),
                   "g": pa.array([1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], pa.int64())})
    rt = pa.table({"k": pa.array([1, 1, 2, 3, None, 5, 8, None], pa.int32()),
                   "y": pa.array([3, 4, 5, 6, 7, 8, 9, 2], pa.int64()),
                   "g": pa.array([1, 1, 2, 2, 1, 2, 1, 1], pa.int64())})
    st = pa.table({"g": pa.array([1, 2, 3], pa.int64()),
                   "z": pa.array([5, 10, None], pa.int64())})
    _write(cat, "lt", [lt.slice(0, 4), lt.slice(4, 4), lt.slice(8)])
    _write(cat, "rt", [rt.slice(0, 5), rt.slice(5)])
    _write(cat, "st", [st])
    _write(cat, "et", [rt.slice(0, 0)])
    _write(cat, "ut", [pa.table({"w": pa.array([1, 6, None, 6, 12], pa.int64()),
                                 "g": pa.array([1, 2, 2, None, 3], pa.int64())})])
    return root


QUERIES = [
    # comma joins: WHERE equalities become keys, the order comes from statistics
    "SELECT lt.x, rt.y FROM lt, rt WHERE lt.k = rt.k",
    "SELECT lt.x, rt.y, st.z FROM st, lt, rt WHERE lt.k = rt.k AND rt.g = st.g AND lt.x < st.z",
    "SELECT lt.x, rt.y FROM lt, rt WHERE lt.k = rt.k AND lt.x + 1 < rt.y",
    "SELECT lt.g, count(*) c, sum(rt.y) s FROM lt, rt, st WHERE lt.g = st.g AND rt.g = st.g "
    "AND lt.x > 3 GROUP BY lt.g",
    # cross joins
    "SELECT lt.x, rt.y FROM lt CROSS JOIN rt",
    "SELECT lt.x, rt.y FROM lt, rt WHERE lt.x < rt.y",
    "SELECT lt.x, st.z FROM lt CROSS JOIN st WHERE st.z > 5",
    "SELECT lt.x, et.y FROM lt CROSS JOIN et",
    # RIGHT and FULL OUTER, with and without a residual
    "SELECT lt.x, rt.k, rt.y FROM lt RIGHT JOIN rt ON lt.k = rt.k",
    "SELECT lt.x, lt.k, rt.k, rt.y FROM lt FULL JOIN rt ON lt.k = rt.k",
    "SELECT lt.x, lt.k, rt.k, rt.y FROM lt FULL OUTER JOIN rt ON lt.k = rt.k AND lt.x < rt.y",
    "SELECT lt.x, rt.y FROM lt RIGHT JOIN rt ON lt.k = rt.k AND lt.x < rt.y",
    "SELECT lt.x, rt.y FROM lt LEFT JOIN rt ON lt.k = rt.k AND lt.x < rt.y",
    "SELECT lt.x, rt.y FROM lt FULL JOIN rt ON lt.k = rt.k AND lt.g = rt.g AND rt.y > 4",
    "SELECT lt.k, count(*) c, count(rt.y) n FROM lt FULL JOIN rt ON lt.k = rt.k GROUP BY lt.k",
    "SELECT lt.x, et.y FROM lt FULL JOIN et ON lt.k = et.k",
    "SELECT lt.x, et.y FROM et RIGHT JOIN lt ON lt.k = et.k",
    # USING
    "SELECT k, lt.x, rt.y FROM lt JOIN rt USING (k)",
    "SELECT k, x, y FROM lt LEFT JOIN rt USING (k)",
    "SELECT k, x, y FROM lt RIGHT JOIN rt USING (k)",
    "SELECT k, x, y FROM lt FULL JOIN rt USING (k)",
    "SELECT k, g, x, y FROM lt FULL JOIN rt USING (k, g)",
    "SELECT k, count(*) c FROM lt FULL JOIN rt USING (k) GROUP BY k",
    # ON with only non-equality conditions: a nested loop
    "SELECT lt.x, rt.y FROM lt JOIN rt ON lt.x < rt.y",
    "SELECT lt.x, rt.y FROM lt LEFT JOIN rt ON lt.x < rt.y - 5",
    "SELECT lt.x, rt.y FROM lt RIGHT JOIN rt ON lt.x > rt.y + 3",
    "SELECT lt.x, rt.y FROM lt FULL JOIN rt ON lt.x > rt.y + 3",
    "SELECT lt.x, rt.y FROM lt FULL JOIN rt ON TRUE",
    # mixed and nested forms
    "SELECT k, g, x, y, st.z FROM lt JOIN rt USING (k, g) JOIN st USING (g)",
    "SELECT lt.x, rt.y, st.z FROM lt, rt LEFT JOIN st ON rt.g = st.g WHERE lt.k = rt.k",
    "SELECT lt.x, r.y FROM lt, (SELECT k, y FROM rt WHERE y > 3) r WHERE lt.k = r.k",
    "SELECT count(*) c FROM lt a, lt b, lt c WHERE a.k = b.k AND b.x = c.x",
    "SELECT a.x, b.x FROM lt a, lt b WHERE a.k = b.k AND a.x <> b.x",
    "SELECT lt.x, rt.y FROM lt JOIN rt ON lt.k + 1 = rt.k + 1 WHERE lt.g = rt.g",
]


@pytest.mark.parametrize("strategy", ["auto", "broadcast", "partitioned"])
def test_join_forms_equal_duckdb(forms_wh: Path, strategy: str, cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        for sql in QUERIES:
            result = session.sql(sql, settings={"join.strategy": strategy})
            try:
                assert_same_rows(result.to_arrow(), run_oracle(sql, session.catalog))
            except AssertionError as e:
                raise AssertionError(f"{sql}: {e}") from None


def _explain(session: mpp.Session, sql: str, **settings: object) -> str:
    return session.explain(sql, settings=settings)


def test_explain_names_each_form_and_its_distribution(forms_wh: Path, cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        cross = _explain(session, "SELECT lt.x, rt.y FROM lt CROSS JOIN rt")
        assert "NestedLoopJoinExec(BROADCAST): cross [cross join: nothing to partition on" in cross
        assert "-> ExchangeExec(BROADCAST)" in cross and "-> ExchangeExec(HASH)" not in cross
        full = _explain(session, "SELECT lt.x FROM lt FULL JOIN rt ON lt.k = rt.k",
                        **{"join.strategy": "broadcast"})
        # rt.k (INTEGER) is cast to lt.k's BIGINT in a Project below: the key is _k0
        assert "HashJoinExec(PARTITIONED): full on lt.k = _k0 [FULL join: partitioned" in full
        assert "join.strategy=broadcast cannot apply" in full
        right = _explain(session, "SELECT lt.x FROM lt RIGHT JOIN rt ON lt.k = rt.k",
                         **{"join.strategy": "partitioned"})
        assert "HashJoinExec(PARTITIONED): right on lt.k = _k0" in right
        flipped = _explain(session, "SELECT lt.x FROM lt RIGHT JOIN rt ON lt.k = rt.k",
                           **{"join.strategy": "broadcast"})
        assert "HashJoinExec(BROADCAST): left on _k0 = lt.k" in flipped
        assert "RIGHT join flipped to LEFT" in flipped
        loop = _explain(session, "SELECT lt.x FROM lt FULL JOIN rt ON lt.x < rt.y")
        assert "NestedLoopJoinExec(SINGLE): full on (lt.x < rt.y)" in loop
        residual = _explain(session, "SELECT lt.x FROM lt LEFT JOIN rt ON lt.k = rt.k "
                                     "AND lt.x < rt.y", **{"join.strategy": "partitioned"})
        assert "HashJoinExec(PARTITIONED): left on lt.k = _k0 AND (lt.x < rt.y)" in residual


def test_full_join_exchanges_both_sides_and_cross_join_broadcasts(forms_wh: Path,
                                                                   cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        for sql, kinds in [
            ("SELECT lt.x FROM lt FULL JOIN rt ON lt.k = rt.k", [ExchangeKind.HASH] * 2),
            ("SELECT lt.x FROM lt CROSS JOIN rt", [ExchangeKind.BROADCAST]),
            ("SELECT lt.x FROM lt FULL JOIN rt ON lt.x < rt.y", [ExchangeKind.GATHER] * 2),
        ]:
            ctx = session.context()
            plan = session.physical(session.optimize(session.bind(sql), ctx), ctx)
            sinks = sorted((s.sink.kind for s in plan.stages if s.sink is not None),
                           key=lambda k: k.value)
            assert sinks == kinds, sql


def test_comma_join_order_comes_from_statistics(forms_wh: Path, cluster) -> None:
    """The same tables in any FROM order give the same join order: the biggest relation
    first (lt, 12 rows), then the smallest connected join."""
    with mpp.connect(forms_wh, cluster=cluster) as session:
        texts = {session.explain(
            f"SELECT lt.x, rt.y, st.z FROM {a}, {b}, {c} WHERE lt.k = rt.k AND rt.g = st.g",
            "optimized") for a, b, c in [("st", "lt", "rt"), ("rt", "st", "lt"),
                                         ("lt", "rt", "st")]}
        assert len(texts) == 1
        (text,) = texts
        lines = [ln.strip("│├└─ ") for ln in text.splitlines()]
        scans = [ln.split()[1] for ln in lines if ln.startswith("Scan:")]
        assert scans == ["lt", "rt", "st"]
        off = session.explain("SELECT lt.x, rt.y, st.z FROM st, rt, lt WHERE lt.k = rt.k AND "
                              "rt.g = st.g", "optimized",
                              settings={"optimizer.reorder_joins": False})
        scans = [ln.strip("│├└─ ").split()[1] for ln in off.splitlines()
                 if ln.strip("│├└─ ").startswith("Scan:")]
        assert scans == ["st", "rt", "lt"]  # FROM order, still with keys from WHERE
        assert "Join: cross" not in off and "Join: inner on st.g = rt.g" in off


BOTH_OFF = {"optimizer.pushdown_predicates": False, "optimizer.reorder_joins": False}


@pytest.mark.parametrize("sql", [
    # FROM order st, lt, rt: lt is not connected to st, so it waits for rt (no cross join)
    "SELECT lt.x, rt.y, st.z FROM st, lt, rt WHERE lt.k = rt.k AND rt.g = st.g AND lt.x > 1",
    # the plain WHERE conjuncts sit below the IN and EXISTS semi joins, directly above the
    # comma join, so its equality is still a join key
    "SELECT lt.x, rt.y FROM lt, rt WHERE lt.k = rt.k AND lt.g IN (SELECT g FROM st) "
    "AND EXISTS (SELECT 1 FROM st WHERE st.g = rt.g) AND rt.y > 3",
])
def test_comma_join_is_an_equi_join_with_pushdown_and_reorder_off(forms_wh: Path, cluster,
                                                                  sql: str) -> None:
    """With ``pushdown_predicates`` and ``reorder_joins`` both off, a comma join is still
    a hash join on the WHERE equalities, in FROM order (Trino's ELIMINATE_CROSS_JOINS): the
    binder puts the WHERE conjuncts without subqueries directly above the FROM relation."""
    with mpp.connect(forms_wh, cluster=cluster) as session:
        optimized = session.explain(sql, "optimized", settings=BOTH_OFF)
        assert "Join: cross" not in optimized, optimized
        # the key lt.k = rt.k (rt.k, an INTEGER, is widened to BIGINT by a Project below)
        assert re.search(r"Join: inner on (_jk\d+|rt\.k) = lt\.k|Join: inner on lt\.k = ",
                         optimized), optimized
        scans = [ln.strip("│├└─ ").split()[1] for ln in optimized.splitlines()
                 if ln.strip("│├└─ ").startswith("Scan:")]
        # (push_down_semi_joins, still on, puts each subquery's st beside the relation it tests)
        joined = scans if sql.startswith("SELECT lt.x, rt.y, st.z") else \
            [s for s in scans if s != "st"]
        assert joined[:3] == (["st", "rt", "lt"] if sql.startswith("SELECT lt.x, rt.y, st.z")
                              else ["lt", "rt"]), optimized
        physical = session.explain(sql, "physical", settings=BOTH_OFF)
        assert "HashJoinExec" in physical and "NestedLoop" not in physical, physical
        assert_same_rows(session.sql(sql, settings=BOTH_OFF).to_arrow(),
                         run_oracle(sql, session.catalog))


# RIGHT and FULL joins on an inequality only, between single-fragment tables (st, ut, et):
# both sides (each one partition already) are read by the one task of the join's stage.
SINGLE_FRAGMENT_THETA = [
    "SELECT st.z, ut.w FROM st RIGHT JOIN ut ON st.z < ut.w",
    "SELECT st.z, ut.w FROM st FULL JOIN ut ON st.z < ut.w",
    "SELECT st.z, ut.w FROM st FULL JOIN ut ON st.z < ut.w AND ut.g <> st.g",
    "SELECT st.g, ut.g FROM st FULL JOIN ut ON st.g <= ut.g",
    "SELECT st.z, et.y FROM st FULL JOIN et ON st.z < et.y",
    "SELECT st.z, et.y FROM et FULL JOIN st ON st.z < et.y",
    "SELECT st.z, et.y FROM et RIGHT JOIN st ON st.z > et.y",
    "SELECT st.z, et.y FROM st RIGHT JOIN et ON st.z > et.y",
    "SELECT st.z, ut.w, et.y FROM st FULL JOIN ut ON st.z < ut.w FULL JOIN et ON ut.w > et.y",
    "SELECT ut.g, count(*) c, count(st.z) n FROM st RIGHT JOIN ut ON st.z <> ut.w GROUP BY ut.g",
]


@pytest.mark.parametrize("sql", SINGLE_FRAGMENT_THETA)
def test_outer_theta_join_of_single_fragment_tables(forms_wh: Path, cluster, sql: str) -> None:
    """Both scans run in the join's one task, each reading its own fragment (the planner
    once asserted 'two scans feed the same task of a stage'): equal to DuckDB under every
    strategy, with NULLs, duplicates and an empty side."""
    with mpp.connect(forms_wh, cluster=cluster) as session:
        expected = run_oracle(sql, session.catalog)
        for strategy in ("auto", "broadcast", "partitioned"):
            result = session.sql(sql, settings={"join.strategy": strategy})
            assert_same_rows(result.to_arrow(), expected)
        ctx = session.context()
        plan = session.physical(session.optimize(session.bind(sql), ctx), ctx)
        (stage,) = [s for s in plan.stages if len(s.scans) >= 2]
        assert stage.tasks == 1 and not stage.exchanges
        assert sorted(s.slot for s in stage.scans) == list(range(len(stage.scans)))


def test_using_star_lists_the_using_column_once_and_first(forms_wh: Path, cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        for kind in ("", "LEFT ", "RIGHT ", "FULL "):
            result = session.sql(f"SELECT * FROM lt {kind}JOIN rt USING (k)")
            assert result.to_arrow().column_names == ["k", "x", "g", "y", "g"]
            expected = run_oracle(f"SELECT k, lt.x, lt.g, rt.y, rt.g FROM lt {kind}JOIN rt "
                                  "USING (k)", session.catalog)
            assert_same_rows(result.to_arrow(), expected)


def test_using_after_a_full_join_uses_the_coalesced_column(forms_wh: Path, cluster) -> None:
    """``(lt FULL JOIN rt USING (k, g)) LEFT JOIN st USING (g)`` joins on coalesce(lt.g,
    rt.g), the one g column of the first join (Trino, the SQL standard); DuckDB joins on lt.g,
    so the oracle gets the query written with ON."""
    sql = "SELECT g, k, x, y, z FROM lt FULL JOIN rt USING (k, g) LEFT JOIN st USING (g)"
    oracle = ("SELECT coalesce(lt.g, rt.g) g, coalesce(lt.k, rt.k) k, x, y, z FROM lt "
              "FULL JOIN rt ON lt.k = rt.k AND lt.g = rt.g "
              "LEFT JOIN st ON coalesce(lt.g, rt.g) = st.g")
    with mpp.connect(forms_wh, cluster=cluster) as session:
        expected = run_oracle(oracle, session.catalog)
        duckdb_using = run_oracle(sql, session.catalog)  # the edge: rt-only rows find no z
        assert pc.count(expected["z"]).as_py() > pc.count(duckdb_using["z"]).as_py()
        for strategy in ("auto", "partitioned"):
            result = session.sql(sql, settings={"join.strategy": strategy})
            assert_same_rows(result.to_arrow(), expected)
        # A qualified star drops the USING column too, as Trino's does (trinodb/trino#29696).
        result = session.sql("SELECT rt.*, lt.x FROM lt JOIN rt USING (k)")
        assert result.to_arrow().column_names == ["y", "g", "x"]
        assert_same_rows(result.to_arrow(), run_oracle(
            "SELECT rt.y, rt.g, lt.x FROM lt JOIN rt USING (k)", session.catalog))


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT lt.x FROM lt JOIN rt", "INNER JOIN needs ON or USING"),
    ("SELECT lt.x FROM lt LEFT JOIN rt", "LEFT JOIN needs ON or USING"),
    ("SELECT x FROM lt JOIN rt USING (y)", "unknown column 'y'"),
    ("SELECT g FROM lt JOIN rt USING (k)", "ambiguous"),
    ("SELECT k FROM lt JOIN rt USING (k, k)", "appears twice in USING"),
])
def test_join_errors_name_the_problem(forms_wh: Path, sql: str, message: str, cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session, pytest.raises(SqlError,
                                                                         match=message):
        session.bind(sql)


def test_whatif_charges_a_cross_joins_broadcast_to_every_worker(forms_wh: Path,
                                                                 cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        stats = session.sql("SELECT lt.x, rt.y FROM lt CROSS JOIN rt").stats
        build = next(s for s in stats.plan.stages
                     if s.sink is not None and s.sink.kind is ExchangeKind.BROADCAST)
        probe = stats.plan.final_stage
        # The warehouse has no collect task: the producers send their own output to each
        # worker (what-if model: docs/architecture/whatif-model.md).
        sent = sum(r.bytes_sent for r in stats.tasks if r.name == build.name)
        assert sent > 0
        for w in (8, 128):
            exchange = stats.predict(w).stage(probe.id).exchange_s
            assert exchange == pytest.approx(sent * (w - 1) / DEFAULT_BANDWIDTH)


@pytest.mark.parametrize("sql", [
    # ON a constant that is never true: every left (or right, or both) row unmatched, and no
    # pair is ever formed (the nested loop would otherwise try them all)
    "SELECT lt.x, rt.y FROM lt LEFT JOIN rt ON NULL",
    "SELECT lt.x, rt.y FROM lt FULL JOIN rt ON FALSE",
    "SELECT lt.x, s.y FROM lt RIGHT JOIN (SELECT y, NULL AS n FROM rt) s ON s.n",
    # an unused column that would fail if it were evaluated: Trino never evaluates it
    "SELECT count(*) c FROM lt LEFT JOIN (SELECT CAST(3000000000 AS INTEGER) AS bad, NULL AS n "
    "FROM rt) s ON s.n",
    "SELECT count(*) c FROM (SELECT 1 / (k - k) AS bad FROM lt WHERE k IS NOT NULL) s",
])
def test_never_true_conditions_and_unused_failing_columns(forms_wh: Path, sql: str,
                                                          cluster) -> None:
    with mpp.connect(forms_wh, cluster=cluster) as session:
        assert_same_rows(session.sql(sql).to_arrow(), run_oracle(sql, session.catalog))
