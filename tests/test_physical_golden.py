"""Golden physical plans: tests/fixtures/physical/*.sql hold SQL, then ``----``, then the
EXPLAIN text. ``# config: name=value`` headers set settings. ``UPDATE_GOLDEN=1`` rewrites."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpp.catalog import Catalog
from mpp.config import PlannerContext, Settings, parse_assignments
from mpp.optimizer import optimize
from mpp.physical.explain import explain_physical
from mpp.physical.planner import plan_physical
from mpp.sql import bind
from tests.query_warehouses import warehouse

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


def physical_text(catalog: Catalog, sql: str, settings: dict[str, object]) -> str:
    """EXPLAIN of ``sql`` on a fixed 2 x 1-thread cluster shape (so the text is stable)."""
    ctx = PlannerContext(Settings(settings), workers=2, threads=2)
    plan = optimize(bind(sql, catalog), ctx)
    return explain_physical(plan_physical(plan, ctx, lambda s: catalog.fragments(s.table,
                                                                                  s.predicates)))


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
