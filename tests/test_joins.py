"""Join strategies: broadcast and partitioned hash joins equal DuckDB (inner, left, several
keys, duplicate keys, NULL keys, residual conditions); a broadcast join never exchanges its big
side (graph shape); the automatic choice flips exactly at the threshold; join input rows show
what filter pushdown saves."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

import mpp
from mpp.catalog import Catalog
from mpp.catalog.write import write_fragment
from mpp.execution.graph import build_graph
from mpp.logical.nodes import Join, JoinStrategy, LogicalNode
from mpp.optimizer.estimate import estimate
from mpp.oracle import run_oracle
from mpp.physical.operators.exchange import ExchangeKind
from mpp.storage.base import StorageFormat
from tests.compare import assert_same_rows
from tests.query_warehouses import read_queries, warehouse

QUERIES = Path(__file__).parent / "fixtures" / "queries"


def _write(cat: Catalog, name: str, parts: list[pa.Table], fmt: StorageFormat) -> None:
    target = cat.begin_write(name, parts[0].schema, fmt)
    cat.commit_write(target, [write_fragment(target, i, t) for i, t in enumerate(parts)])


@pytest.fixture(scope="module")
def join_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fact (3 Parquet fragments) and dim (Parquet and SQLite): duplicate and NULL keys on
    both sides, a second key column, keys present on one side only."""
    root = tmp_path_factory.mktemp("joins") / "w"
    cat = Catalog.open(root, create=True)
    k1 = [1, 1, 2, 3, None, 5, 7, 7, 2, None, 9, 1]
    fact = pa.table({"k1": pa.array(k1, pa.int64()),
                     "k2": ["a", "b", "a", "a", "a", None, "c", "c", "b", "b", "a", "a"],
                     "v": pa.array(range(12), pa.int64())})
    dim = pa.table({"k1": pa.array([1, 1, 2, 3, None, 5, 8], pa.int32()),
                    "k2": ["a", "a", "b", None, "a", "x", "a"],
                    "w": pa.array([3, 4, 5, 6, 7, 8, 9], pa.int64())})
    _write(cat, "fact", [fact.slice(0, 4), fact.slice(4, 4), fact.slice(8)],
           StorageFormat.PARQUET)
    _write(cat, "dim", [dim], StorageFormat.PARQUET)
    _write(cat, "dim_db", [dim.slice(0, 4), dim.slice(4)], StorageFormat.SQLITE)
    return root


JOIN_QUERIES = [
    "SELECT f.v, d.w FROM fact f JOIN {dim} d ON d.k1 = f.k1",
    "SELECT f.v, f.k1, d.w FROM fact f LEFT JOIN {dim} d ON d.k1 = f.k1",
    "SELECT f.v, d.w FROM fact f JOIN {dim} d ON d.k1 = f.k1 AND d.k2 = f.k2",
    "SELECT f.v, d.k2, d.w FROM fact f LEFT JOIN {dim} d ON d.k1 = f.k1 AND d.k2 = f.k2",
    "SELECT f.v, d.w FROM fact f JOIN {dim} d ON d.k1 = f.k1 AND f.v > d.w",
    "SELECT f.v, d.w FROM fact f LEFT JOIN {dim} d ON d.k1 = f.k1 AND f.v > d.w",
    "SELECT d.k2, count(*) c, sum(f.v) s FROM fact f JOIN {dim} d ON d.k1 = f.k1 "
    "WHERE d.w < 9 GROUP BY d.k2",
]


@pytest.mark.parametrize("strategy", ["broadcast", "partitioned"])
@pytest.mark.parametrize("dim", ["dim", "dim_db"])
def test_join_strategies_equal_duckdb(join_wh: Path, strategy: str, dim: str, cluster) -> None:
    with mpp.connect(join_wh, cluster=cluster) as session:
        for template in JOIN_QUERIES:
            sql = template.format(dim=dim)
            result = session.sql(sql, settings={"join.strategy": strategy})
            joins = [op for op in _ops(result.stats.plan.root) if op.word == "hashjoin"]
            assert [j.strategy.value for j in joins] == [strategy], sql
            assert_same_rows(result.to_arrow(), run_oracle(sql, session.catalog))


def _ops(op):  # type: ignore[no-untyped-def]
    yield op
    for child in op.children:
        yield from _ops(child)


def test_broadcast_never_exchanges_the_big_side(join_wh: Path, cluster) -> None:
    sql = "SELECT f.v, d.w FROM fact f JOIN dim d ON d.k1 = f.k1"
    with mpp.connect(join_wh, cluster=cluster) as session:
        ctx = session.context({"join.strategy": "broadcast"})
        plan = session.physical(session.optimize(session.bind(sql), ctx), ctx)
        fact = next(s for s in plan.stages if s.scan is not None and s.scan.table == "fact")
        dim = next(s for s in plan.stages if s.scan is not None and s.scan.table == "dim")
        assert fact.sink is None and fact.tasks == 3  # the fact stage is the result stage
        assert dim.sink is not None and dim.sink.kind is ExchangeKind.BROADCAST
        graph = build_graph(plan, "q", "tok")
        names = {k[0] for k in graph.dsk}
        assert not any("combine" in n or "split" in n for n in names)
        collect = (f"stage{dim.id}-collect-tok", 0)
        fact_tasks = [t for k, t in graph.dsk.items() if k[0] == f"{fact.name}-tok"]
        assert len(fact_tasks) == 3
        # every fact task reads the one broadcast key and nothing else from other tasks
        assert all([a for a in t if isinstance(a, tuple) and a in graph.dsk] == [collect]
                   for t in fact_tasks)

        ctx = session.context({"join.strategy": "partitioned"})
        plan = session.physical(session.optimize(session.bind(sql), ctx), ctx)
        sinks = [s.sink.kind for s in plan.stages if s.scan is not None]
        assert sinks == [ExchangeKind.HASH, ExchangeKind.HASH]


def _join(node: LogicalNode) -> Join:
    if isinstance(node, Join):
        return node
    return next(_join(i) for i in node.inputs if _has_join(i))


def _has_join(node: LogicalNode) -> bool:
    return isinstance(node, Join) or any(_has_join(i) for i in node.inputs)


def test_automatic_choice_flips_at_the_threshold(join_wh: Path, cluster) -> None:
    sql = "SELECT f.v, d.w FROM fact f JOIN dim d ON d.k1 = f.k1"
    with mpp.connect(join_wh, cluster=cluster) as session:
        bound = session.bind(sql)
        # the sizes the rule sees: after pushdown and pruning, as EXPLAIN prints them
        chosen = _join(session.optimize(bound, session.context()).root)
        right, left = estimate(chosen.right).bytes, estimate(chosen.left).bytes
        assert left > right  # the fact side is the bigger one: no side swap below
        # (the byte comparison of optimizer.broadcast_max_bytes off: the threshold alone)
        at = _join(session.optimize(bound, session.context(
            {"optimizer.broadcast_threshold_bytes": math.ceil(right),
             "optimizer.broadcast_max_bytes": 0})).root)
        below = _join(session.optimize(bound, session.context(
            {"optimizer.broadcast_threshold_bytes": math.ceil(right) - 1,
             "optimizer.broadcast_max_bytes": 0})).root)
    assert at.strategy is JoinStrategy.BROADCAST
    assert below.strategy is JoinStrategy.PARTITIONED
    for j in (at, below):  # the reason names both sides' sizes and the threshold
        assert "left ~" in j.reason and "right ~" in j.reason
        assert "optimizer.broadcast_threshold_bytes" in j.reason
    assert f"{round(estimate(at.right).rows)} rows" in at.reason


def test_over_the_threshold_a_side_is_broadcast_when_it_moves_fewer_bytes(join_wh: Path,
                                                                       cluster) -> None:
    """Above optimizer.broadcast_threshold_bytes and up to optimizer.broadcast_max_bytes, the
    right side is broadcast exactly while right x workers <= left + right (the bytes a
    partitioned join moves); its table is built once per worker, so tasks do not count."""
    sql = "SELECT f.v, d.w FROM fact f JOIN dim d ON d.k1 = f.k1"
    with mpp.connect(join_wh, cluster=cluster) as session:
        bound = session.bind(sql)
        chosen = _join(session.optimize(bound, session.context()).root)
        right, left = estimate(chosen.right).bytes, estimate(chosen.left).bytes
        base = {"optimizer.broadcast_threshold_bytes": 1}  # (0 turns broadcasting off)
        workers = math.floor((left + right) / right)  # the most workers a broadcast is for
        joins = {w: _join(session.optimize(bound, session.context(
            {**base, "planning.workers": w})).root) for w in (workers, workers + 1)}
        capped = _join(session.optimize(bound, session.context(
            {**base, "planning.workers": workers,
             "optimizer.broadcast_max_bytes": math.ceil(right) - 1})).root)
    assert joins[workers].strategy is JoinStrategy.BROADCAST
    assert f"x {workers} workers <= left" in joins[workers].reason
    assert "optimizer.broadcast_max_bytes" in joins[workers].reason
    assert joins[workers + 1].strategy is JoinStrategy.PARTITIONED
    assert capped.strategy is JoinStrategy.PARTITIONED


def test_seed_join_queries_match_duckdb_and_show_join_input(cluster) -> None:
    with mpp.connect(warehouse(cluster.client, "parquet", 3), cluster=cluster) as session:
        for name in ("seed_join_efficient", "seed_join_inefficient",
                     "seed_join_users_created_since", "seed_mart_basic"):
            sql = read_queries(QUERIES / f"{name}.sql")[0]
            expected = run_oracle(sql, session.catalog)
            rows = {}
            for pushdown in (True, False):
                result = session.sql(sql, settings={"optimizer.pushdown_predicates": pushdown})
                assert_same_rows(result.to_arrow(), expected)
                rows[pushdown] = _join_input(result)
                assert "join input rows left" in result.explain_analyze
            if name == "seed_mart_basic":  # the BETWEEN covers every row: nothing to save
                assert rows[True] == rows[False], name
            else:  # users filtered before the join rather than after it
                assert rows[True][1] < rows[False][1], (name, rows)


def _join_input(result: mpp.session.Result) -> tuple[int, int]:
    groups = [g for gs in result.stats.stages.values() for g in gs if any(g.join_rows)]
    return (sum(g.join_rows[0] for g in groups), sum(g.join_rows[1] for g in groups))


def test_threshold_knob_is_per_query(join_wh: Path, cluster) -> None:
    sql = "SELECT f.v, d.w FROM fact f JOIN dim d ON d.k1 = f.k1"
    with mpp.connect(join_wh, cluster=cluster,
                     settings={"optimizer.broadcast_threshold_bytes": 0}) as session:
        text = session.explain(sql)
        assert "HashJoinExec(PARTITIONED)" in text and "> optimizer.broadcast_threshold" in text
        forced = session.explain(sql, settings={"join.strategy": "broadcast"})
        assert "HashJoinExec(BROADCAST)" in forced and "join.strategy=broadcast" in forced




def test_dask_sizes_a_hash_bucket_by_its_rows() -> None:
    import numpy as np
    from dask.sizeof import sizeof

    from mpp.execution import sizing
    from mpp.physical.operators.exchange import split_by_bucket

    sizing.register()
    table = pa.table({"k": np.arange(100_000), "s": [str(i) for i in range(100_000)]})
    buckets = split_by_bucket(table, ("k",), 8)
    # each bucket is a slice of one sorted copy: Dask must not count the whole copy 8 times
    assert sum(sizeof(b) for b in buckets) < 1.2 * sizeof(table)
