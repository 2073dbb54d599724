"""[warehouse]: a scenario names the warehouse it simulates; plans are made for that size,
run on the local cluster, checked against DuckDB, and replayed on the named warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpp.errors import ScenarioError
from mpp.execution.cluster import Cluster
from mpp.scenario.runner import run_scenario
from mpp.scenario.spec import parse_scenario

SPEC = """
name = "sized"
[data]
rows = 6_000
partitions = 30
seed = 5
users = 500
[warehouse]
nodes = 16
threads_per_node = 2
network_gbit = 10
[[variants]]
name = "default"
[[variants]]
name = "fixed"
settings = { "planning.workers" = 2, "planning.threads_per_worker" = 1 }
[[queries]]
name = "by_day"
sql = "SELECT date, count(DISTINCT user_id) AS users FROM access_log GROUP BY date"
[checks]
oracle = true
"""


def test_the_section_sets_planning_and_the_replay() -> None:
    import tomllib

    sc = parse_scenario(tomllib.loads(SPEC))
    default, fixed = sc.variants
    assert dict(default.settings) == {"planning.workers": 16, "planning.threads_per_worker": 2}
    assert dict(fixed.settings)["planning.workers"] == 2  # a variant's own setting wins
    assert 16 in sc.whatif.workers and sc.whatif.warehouse_threads == 2
    assert sc.whatif.bandwidth_bytes_per_s == pytest.approx(1.25e9)
    assert parse_scenario(sc.to_dict()) == sc  # round trip, nothing added twice


@pytest.mark.parametrize(("text", "message"), [
    ("[warehouse]\nthreads_per_node = 2", "warehouse.nodes: is required"),
    ("[warehouse]\nnodes = 0", "warehouse.nodes"),
    ("[warehouse]\nnodes = 4\nthreads_per_node = 0", "warehouse.threads_per_node: must be 1"),
    ("[warehouse]\nnodes = 4\nnetwork_gbit = -1", "warehouse.network_gbit: must be a finite"),
    ("[warehouse]\nnodes = 4\nnode = 3", "warehouse"),
])
def test_bad_sections_are_clear(text: str, message: str) -> None:
    import tomllib

    base = SPEC[:SPEC.index("[warehouse]")] + SPEC[SPEC.index("[[variants]]"):]
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        parse_scenario(tomllib.loads(base + "\n" + text))


def test_plans_for_the_named_size_run_here_and_replay_there(tmp_path: Path,
                                                             cluster: Cluster) -> None:
    out = run_scenario(parse_scenario(__import__("tomllib").loads(SPEC)), out=tmp_path,
                       cache=tmp_path / "cache", cluster=cluster, progress=False, echo=None)
    runs = {r.variant: r for r in out.data.runs}
    # 16 nodes x 2 threads: hash exchanges of 2 x 32 = 64 buckets, so 64 final tasks, ran here.
    final = runs["default"].final_stage
    assert final is not None and final.tasks == 64
    assert "hash exchanges into 64 buckets" in runs["default"].plan
    assert runs["fixed"].final_stage.tasks == 4
    assert all(r.oracle == "equal" for r in out.data.runs)
    # The replay on the named warehouse: 16 nodes with 2 threads each.
    assert 16 in runs["default"].whatif
    assert runs["default"].whatif[16].makespan > 0


SKEW = """
name = "skew128"
[data]
rows = 20_000
partitions = 30
days = 30
seed = 13
users = 2_000
hot_day = 13
hot_share = 0.4
[warehouse]
nodes = 128
threads_per_node = 1
[[variants]]
name = "single_step"
settings = { "aggregate.distinct_strategy" = "single_step" }
[[variants]]
name = "rewrite"
settings = { "aggregate.distinct_strategy" = "rewrite" }
[[queries]]
name = "count_distinct"
sql = "SELECT date, count(DISTINCT user_id) AS users FROM access_log GROUP BY date"
"""


def test_a_128_node_warehouse_runs_its_own_final_stage(tmp_path: Path, cluster: Cluster) -> None:
    import datetime as dt
    import tomllib

    from mpp.scenario.report import format_comparison, format_summary

    out = run_scenario(parse_scenario(tomllib.loads(SKEW)), out=tmp_path,
                       cache=tmp_path / "cache", cluster=cluster, progress=False, echo=None)
    runs = {r.variant: r for r in out.data.runs}
    single = runs["single_step"]
    # 128 nodes x 1 thread: 2 x 128 = 256 buckets, so the single-step final stage has 256
    # tasks (as that warehouse would run), most of them empty: 30 days hash to <= 30 buckets.
    final = single.final_stage
    assert final is not None and final.tasks == 256
    assert "hash exchanges into 256 buckets" in single.plan
    # The heaviest final task is the hot day's: every row of day 13 meets there.
    assert final.heaviest.hot_keys[0][0] == dt.date(2017, 1, 13)
    assert final.heaviest.rows_in > 0.3 * 20_000
    # The replay on the named warehouse, and the comparison the report shows.
    assert 128 in single.whatif and 128 in runs["rewrite"].whatif
    text = format_comparison(out.data)
    assert text.startswith("variants at W=128 ")
    rows = {line.split()[1]: line.split() for line in text.splitlines()[3:]}
    assert set(rows) == {"single_step", "rewrite"}
    for variant, row in rows.items():
        p = runs[variant].whatif[128]
        assert row[2] == f"{p.makespan:.3f}"
        longest = p.stage(p.critical_stage).longest_task_s
        assert row[4] == f"{longest:.3f}" and row[5] == f"{longest / p.makespan:.0%}"
        # The keys shown are those of the task the replay ran longest, a task of that stage.
        straggler = [r for r in runs[variant].records
                     if r.key == p.stage(p.critical_stage).longest_key]
        assert len(straggler) == 1 and straggler[0].stage == p.critical_stage
    # The warehouse runs no combine task: its CPU is the producers' (Dask's graph device).
    assert all("combine" not in s.longest_key for s in single.whatif[128].stages)
    assert single.calibration is not None
    assert single.calibration.graph_tasks > single.calibration.tasks  # split tasks counted
    assert "1.00x" in {row[3] for row in rows.values()}  # the fastest variant
    assert text in format_summary(out.data)
