"""The optimizer preserves results: every rule on, each rule off, and no rule at all give the
same rows, and those rows are DuckDB's.

Plans run on a small reference interpreter of logical plans (pyarrow + ``evaluate``), so this
checks binder, rules and expression evaluation without the Dask engine.
"""

from __future__ import annotations

import dataclasses
from functools import singledispatch
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mpp.catalog import Catalog
from mpp.config import PlannerContext, Settings
from mpp.datagen import DatagenSpec, generate
from mpp.logical.evaluate import evaluate
from mpp.logical.expr import AggFunc
from mpp.logical.nodes import (
    Aggregate,
    Filter,
    Join,
    JoinKind,
    Limit,
    LogicalNode,
    LogicalPlan,
    Project,
    Scan,
    Sort,
    Union,
    Values,
)
from mpp.logical.window import Window
from mpp.optimizer import RULES, optimize
from mpp.oracle import duckdb_sql, sql_type
from mpp.physical.window import evaluate_windows
from mpp.sql import bind
from mpp.storage import scan_fragment
from mpp.storage.predicates import filter_table
from tests.compare import assert_same_rows
from tests.test_optimizer_golden import CASES

QUERIES = [p.read_text() for p in sorted((Path(__file__).parent / "fixtures/queries").glob("*.sql"))]
QUERIES += sorted({c.sql for c in CASES if "LIMIT" not in c.sql})
QUERIES += [
    "SELECT a.status, count(*) FROM access_log a LEFT JOIN users b "
    "ON b.user_id = a.user_id AND a.status = 200 AND b.plan = 'free' "
    "WHERE b.country IS NULL OR a.url_id < 5 GROUP BY a.status",
    "SELECT date, url_id, count(*) c FROM access_log WHERE bytes BETWEEN 100 AND 5000 "
    "GROUP BY date, url_id HAVING count(*) > 1 AND date > DATE '2017-01-01' ORDER BY c DESC",
    # LIMITs whose rows are fixed: ordered by every output column, or only counted.
    "SELECT user_id, count(*) c FROM access_log GROUP BY user_id ORDER BY c DESC, user_id LIMIT 5",
    "SELECT u.user_id, a.bytes FROM users u LEFT JOIN access_log a ON a.user_id = u.user_id "
    "ORDER BY 1, 2 LIMIT 7 OFFSET 2",
    "SELECT count(*) FROM (SELECT user_id FROM access_log LIMIT 10) t",
]
Tables = dict[str, pa.Table]


@singledispatch
def run(node: LogicalNode, tables: Tables) -> pa.Table:
    raise NotImplementedError(type(node).__name__)


@run.register
def _scan(node: Scan, tables: Tables) -> pa.Table:
    t = filter_table(tables[node.table.name], node.predicates).select(list(node.columns))
    t = t if node.fetch is None else t.slice(0, node.fetch)
    return t.rename_columns([f"{node.alias}.{c}" for c in node.columns])


@run.register
def _filter(node: Filter, tables: Tables) -> pa.Table:
    t = run(node.input, tables)
    return t.filter(evaluate(node.predicate, t))


@run.register
def _project(node: Project, tables: Tables) -> pa.Table:
    t = run(node.input, tables)
    cols = [evaluate(e, t) for e in node.exprs]
    return pa.table([pc.cast(c, e.dtype) for c, e in zip(cols, node.exprs, strict=True)],
                    names=list(node.names))


_FUNCS = {AggFunc.COUNT: "count", AggFunc.SUM: "sum", AggFunc.MIN: "min", AggFunc.MAX: "max",
          AggFunc.AVG: "mean", AggFunc.SUM0: "sum"}


@run.register
def _aggregate(node: Aggregate, tables: Tables) -> pa.Table:
    t = run(node.input, tables)
    specs, names = [], []
    for a in node.aggregates:
        if a.func is AggFunc.COUNT_STAR:
            specs.append(([], "count_all"))
            names.append("count_all")
        else:
            fn = "count_distinct" if a.distinct else _FUNCS[a.func]
            opts = pc.CountOptions(mode="only_valid") if fn.startswith("count") else None
            specs.append((a.arg.name, fn, opts) if opts else (a.arg.name, fn))
            names.append(f"{a.arg.name}_{fn}")
    out = t.group_by([c.name for c in node.group_by]).aggregate(specs)
    cols = [out[c.name] for c in node.group_by] + [
        pc.fill_null(out[n], 0) if a.func is AggFunc.SUM0 else out[n]  # 0 over no rows
        for a, n in zip(node.aggregates, names, strict=True)]
    return pa.table(cols, names=list(node.field_names()))


@run.register
def _join(node: Join, tables: Tables) -> pa.Table:
    left = run(node.left, tables)
    left = left.append_column("_lid", pa.array(range(left.num_rows), pa.int64()))
    right = run(node.right, tables)
    right = right.append_column("_rid", pa.array(range(right.num_rows), pa.int64()))
    lkeys, rkeys = [k.name for k in node.left_keys], [k.name for k in node.right_keys]
    if not lkeys:  # every pair: join on a constant
        left = left.append_column("_one", pa.array([1] * left.num_rows, pa.int8()))
        right = right.append_column("_one_r", pa.array([1] * right.num_rows, pa.int8()))
        lkeys, rkeys = ["_one"], ["_one_r"]
    out = left.join(right, lkeys, rkeys, join_type="inner", coalesce_keys=False)
    if node.residual is not None:
        out = out.filter(evaluate(node.residual, out))
    names = list(node.field_names())
    if node.kind.filters_left:  # semi / anti: each left row once, by whether it matched
        keep = pc.is_in(left["_lid"], out["_lid"])
        if node.kind is JoinKind.ANTI:
            keep = pc.invert(keep)
            if node.null_aware and right.num_rows:  # Trino's NOT IN over a non-empty set
                if any(right[k].null_count for k in rkeys):
                    keep = pa.array([False] * left.num_rows)  # a NULL in it: never TRUE
                for k in lkeys:  # NULL NOT IN (non-empty) is NULL: dropped
                    keep = pc.and_(keep, pc.is_valid(left[k]))
        return left.filter(keep).select(names)
    parts = [out.select(names)]
    for kind, side, other, ids in ((JoinKind.LEFT, left, node.right, "_lid"),
                                   (JoinKind.RIGHT, right, node.left, "_rid")):
        if node.kind in (kind, JoinKind.FULL):
            missing = side.filter(pc.invert(pc.is_in(side[ids], out[ids])))
            nulls = {f.name: pa.nulls(missing.num_rows, f.dtype) for f in other.schema}
            parts.append(pa.table({**{c: missing[c] for c in missing.column_names},
                                   **nulls}).select(names))
    return pa.concat_tables(parts, promote_options="permissive")


@run.register
def _sort(node: Sort, tables: Tables) -> pa.Table:
    t = run(node.input, tables)
    t = t.sort_by([(k.column.name, "ascending" if k.ascending else "descending")
                   for k in node.keys])
    return t if node.fetch is None else t.slice(0, node.fetch)


@run.register
def _limit(node: Limit, tables: Tables) -> pa.Table:
    return run(node.input, tables).slice(node.offset, node.count)


@run.register
def _union(node: Union, tables: Tables) -> pa.Table:
    names = list(node.names)
    return pa.concat_tables([run(b, tables).rename_columns(names).cast(
        pa.schema([(f.name, f.dtype) for f in node.schema])) for b in node.branches])


@run.register
def _values(node: Values, tables: Tables) -> pa.Table:
    one = pa.table({"_": [None]}).select([])
    columns = [pa.concat_arrays([pa.array(evaluate(row[i], one)) for row in node.rows])
               for i in range(len(node.schema))]
    if not columns:
        return pa.table({"_": [None] * len(node.rows)}).select([])
    return pa.table(columns, names=list(node.field_names()))


@run.register
def _window(node: Window, tables: Tables) -> pa.Table:
    # The engine's kernel (checked against DuckDB in tests/test_windows.py): here the binder's
    # and the rules' plans around it are checked. A top-N only allows dropping rows early.
    t = run(node.input, tables)
    return evaluate_windows(t, tuple(c.name for c in node.partition_by), node.order_by,
                            node.calls, node.names)


@pytest.fixture(scope="module")
def warehouse(cluster, tmp_path_factory) -> tuple[Catalog, Tables]:  # type: ignore[no-untyped-def]
    spec = DatagenSpec(rows=2_000, partitions=3, days=3, hot_day=2, users=150, sessions=200,
                       urls=20)
    catalog = generate(tmp_path_factory.mktemp("semantics") / "w", spec,
                       client=cluster.client, progress=False)
    tables = {}
    for name in catalog.tables():
        info = catalog.table(name)
        parts = [scan_fragment(f, info.schema.names).table for f in catalog.fragments(info)]
        tables[name] = pa.concat_tables(parts).cast(info.schema)
    return catalog, tables


def duckdb_result(sql: str, tables: Tables) -> pa.Table:
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    schema = {n: {f.name: sql_type(f.type) for f in t.schema} for n, t in tables.items()}
    return con.sql(duckdb_sql(sql, schema)).to_arrow_table()


def variants() -> list[tuple[str, dict]]:
    out = [("all rules", {})] + [(f"{r.name} off", {f"optimizer.{r.name}": False})
                                 for r in RULES]
    return out + [("broadcast forced", {"join.strategy": "broadcast"})]


@pytest.mark.parametrize("sql", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_optimized_plans_give_duckdbs_rows(sql: str, warehouse: tuple[Catalog, Tables]) -> None:
    catalog, tables = warehouse
    plan = bind(sql, catalog)
    expected = duckdb_result(sql, tables)
    assert_same_rows(run(plan.root, tables), expected)
    for _, settings in variants():
        optimized = optimize(plan, PlannerContext(Settings(settings)))
        assert isinstance(optimized, LogicalPlan)
        assert_same_rows(run(optimized.root, tables), expected)


def test_rules_are_switchable_and_traced(warehouse: tuple[Catalog, Tables]) -> None:
    catalog, _ = warehouse
    plan = bind(QUERIES[0], catalog)
    trace: list = []
    optimize(plan, PlannerContext(Settings()), trace=trace)
    assert [name for name, _ in trace] == [r.name for r in RULES]
    off = {f"optimizer.{r.name}": False for r in RULES}
    bound_scan = next(n for n in plan.root.walk() if isinstance(n, Scan))
    unoptimized = optimize(plan, PlannerContext(Settings(off)))
    assert dataclasses.replace(bound_scan) in list(unoptimized.root.walk())
