"""Golden physical plans: tests/fixtures/physical/*.sql hold SQL, then ``----``, then the
EXPLAIN text. ``# config: name=value`` headers set settings. ``UPDATE_GOLDEN=1`` rewrites."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dask.utils import key_split

from mpp.catalog import Catalog
from mpp.config import PlannerContext, Settings, parse_assignments
from mpp.execution.graph import build_graph
from mpp.optimizer import optimize
from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan, plan_physical
from mpp.sql import bind
from tests.query_warehouses import ONE_TASK_PER_FRAGMENT, warehouse

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "physical").glob("*.sql"))


def parse_fixture(path: Path) -> tuple[list[str], dict[str, object], str, str]:
    """(header lines, settings, sql, expected plan) of a golden file."""
    text = path.read_text()
    head, _, expected = text.partition("\n----\n")
    header = [line for line in head.splitlines() if line.startswith("#")]
    config = [line.split(":", 1)[1].strip() for line in header if line.startswith("# config:")]
    settings = parse_assignments([item for c in config for item in c.split()])
    sql = "\n".join(line for line in head.splitlines() if not line.startswith("#")).strip()
    return header, settings, sql.rstrip(";"), expected



def physical_plan(catalog: Catalog, sql: str, settings: dict[str, object]) -> PhysicalPlan:
    """The physical plan of ``sql`` on a fixed 2 x 1-thread cluster shape, one scan task per
    fragment (the shapes the golden plans document: exchanges, a union's task ranges, the
    single-fragment sides of joins) unless the fixture's header sets scan.max_task_bytes."""
    ctx = PlannerContext(Settings({**ONE_TASK_PER_FRAGMENT, **settings}), workers=2, threads=2)
    plan = optimize(bind(sql, catalog), ctx)
    return plan_physical(plan, ctx, lambda s: catalog.fragments(s.table, s.predicates))


def physical_text(catalog: Catalog, sql: str, settings: dict[str, object]) -> str:
    """EXPLAIN of ``sql`` on a fixed 2 x 1-thread cluster shape (so the text is stable)."""
    return explain_physical(physical_plan(catalog, sql, settings))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_physical_plan_matches_golden(path: Path, cluster) -> None:
    catalog = Catalog.open(warehouse(cluster.client, "parquet", 8))
    header, settings, sql, expected = parse_fixture(path)
    actual = physical_text(catalog, sql, settings)
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text("\n".join(header) + f"\n{sql};\n----\n{actual}")
        return
    assert actual == expected, f"{path.name}: plan changed (UPDATE_GOLDEN=1 to accept)"


def test_explain_is_deterministic(cluster) -> None:
    catalog = Catalog.open(warehouse(cluster.client, "parquet", 8))
    _, settings, sql, _ = parse_fixture(FIXTURES[0])
    assert physical_text(catalog, sql, settings) == physical_text(catalog, sql, settings)


def test_graph_has_explains_tasks_named_as_the_dashboard_shows(cluster) -> None:
    # The dashboard's task stream groups keys with Dask's key_split, which stops at a word that
    # is not alphabetic and drops 8-letter words starting with a-f (it takes "finalagg" for a
    # hex token). Every task of every golden plan, exchanges included, must keep its whole
    # name (the part before the query's token), whatever the token looks like.
    catalog = Catalog.open(warehouse(cluster.client, "parquet", 8))
    seen: set[str] = set()
    for path in FIXTURES:
        _, settings, sql, _ = parse_fixture(path)
        plan = physical_plan(catalog, sql, settings)
        # EXPLAIN's task counts (stages, and each exchange's combine/split/collect tasks)
        # add up to the graph's.
        explained = sum(s.tasks + sum(plan.exchange_tasks(s)) for s in plan.stages)
        assert len(build_graph(plan, "q", "0123abcd").dsk) == explained, path.name
        for token in ("0123abcd", "abcdefab", "9f86d081884c"):
            for name, _ in build_graph(plan, "q", token).dsk:
                stage_name = name.removesuffix(f"-{token}")
                assert key_split(name) == stage_name, f"{path.name}: {name}"
                seen.add(stage_name.split("-", 1)[1])
    # The fixtures reach every kind of task name: fused pipelines and each exchange's tasks.
    assert {"combine", "split", "collect", "scan-partial-agg", "final-agg-project"} <= seen
