"""Every shipped scenario validates; the small ones run end to end at a tiny --scale and pass
their own checks (DuckDB equality and their expectations)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mpp.execution.cluster import Cluster
from mpp.scenario.runner import run_scenario
from mpp.scenario.spec import load_scenario
from mpp.scenario.warehouse import datagen_spec

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = ("quickstart", "mpp_1000_tasks", "skew_distinct", "join_strategies", "row_vs_column",
           "early_filter", "federation", "tpch", "skew_window", "ingestion", "data_mart",
           "skew_warehouse")
# Run end to end here, at these scales. quickstart runs in test_runner.py; row_vs_column,
# join_strategies, federation and (with fewer fragments) skew_distinct run in the notebooks
# (test_notebooks.py), which assert their checks pass; mpp_1000_tasks is validated only:
# generating 1,000 files takes too long for a test; skew_warehouse's 128-node plan runs at a
# tiny size in test_warehouse_size.py.
TINY = {"early_filter": 0.002, "tpch": 0.1,  # tpch: SF 0.1 x 0.1
        "skew_window": 0.005}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_validates_at_every_scale(name: str) -> None:
    path = SCENARIOS / f"{name}.toml"
    sc = load_scenario(path)
    assert sc.name == name and sc.description and sc.queries
    datagen_spec(sc.data, sc.source)  # the generator accepts the knobs too
    small = load_scenario(path, scale=TINY.get(name, 0.002))
    size = (lambda d: d.scale_factor) if sc.data.tpch else (lambda d: d.rows)
    assert size(small.data) < size(sc.data) and small.data_hash() != sc.data_hash()


def test_every_scenario_file_is_shipped() -> None:
    assert {p.stem for p in SCENARIOS.glob("*.toml")} == set(SHIPPED)


def test_tpch_scenario_runs_the_queries_mpp_supports() -> None:
    """Every query of RUNS_TODAY, read from the package's TPC-H queries (``tpch = "qNN"``)."""
    from mpp.datagen.tpch_queries import load_queries
    from tests.test_tpch import RUNS_TODAY

    texts = load_queries()
    sc = load_scenario(SCENARIOS / "tpch.toml")
    assert sc.data.tpch and sc.data.scale_factor == 0.1
    assert [q.name for q in sc.queries] == RUNS_TODAY
    assert all(q.tpch == q.name and q.sql == texts[q.name].strip() for q in sc.queries)
    assert sc.whatif.workers[0] == 2 and sc.whatif.workers[-1] == 128


def test_seed_scenarios_use_the_seed_settings() -> None:
    mpp1000 = load_scenario(SCENARIOS / "mpp_1000_tasks.toml")
    assert (mpp1000.data.rows, mpp1000.data.partitions) == (100_000_000, 1_000)
    # the showcase of 1,000 partition tasks keeps one scan task per fragment
    assert [v.settings_dict().get("scan.max_task_bytes") for v in mpp1000.variants] == [0]
    skew = load_scenario(SCENARIOS / "skew_distinct.toml")
    assert (skew.data.hot_day, skew.data.hot_share) == (13, 0.4)
    joins = load_scenario(SCENARIOS / "join_strategies.toml")
    assert {v.settings_dict()["join.strategy"] for v in joins.variants} == \
        {"broadcast", "partitioned", "auto"}
    rvc = load_scenario(SCENARIOS / "row_vs_column.toml")
    assert set(rvc.data.copies) == {"orc", "csv", "sqlite"}
    fed = load_scenario(SCENARIOS / "federation.toml")
    assert dict(fed.data.table_formats) == {"users": "sqlite"}


@pytest.mark.parametrize("name", sorted(TINY))
def test_small_scenario_runs_and_passes_its_checks(name: str, tmp_path: Path,
                                                   cluster: Cluster) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.toml", scale=TINY[name])
    sc = dataclasses.replace(sc, repeats=1)
    if name == "tpch":  # the runner on the TPC-H dataset; test_tpch.py checks all 22 queries
        sc = dataclasses.replace(sc, queries=type(sc.queries)(
            q for q in sc.queries if q.name in ("q01", "q03", "q13", "q18")))
    out = run_scenario(sc, out=tmp_path, cache=tmp_path / "cache", cluster=cluster,
                       progress=False, echo=None)
    assert out.ok, [c.message for c in out.failures]
    assert len(out.data.runs) == len(sc.variants) * len(sc.queries)
    assert all(r.oracle == "equal" for r in out.data.runs)
    assert len(out.data.checks) == len(out.data.runs) + sum(
        1 for c in out.data.checks if not c.check.endswith("equals DuckDB"))
