"""The scenario runner end to end: data cache, checks, run folder, exit codes, reproducibility."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import mpp
from mpp.cli import main
from mpp.execution.cluster import Cluster
from mpp.scenario import rows
from mpp.scenario.runner import RunOutcome, run_scenario
from mpp.scenario.spec import load_scenario
from mpp.scenario.warehouse import MARKER

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SCALE = 0.1  # quickstart at 20,000 rows: same code, same fragments, seconds


def _quickstart(tmp: Path, cluster: Cluster, cache: Path) -> RunOutcome:
    return run_scenario(SCENARIOS / "quickstart.toml", scale=SCALE, out=tmp / "runs",
                        cache=cache, cluster=cluster, progress=False, echo=None)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster) -> RunOutcome:
    tmp = tmp_path_factory.mktemp("runner")
    return _quickstart(tmp, cluster, tmp / "cache")


def test_quickstart_passes_and_writes_its_run_folder(first: RunOutcome) -> None:
    assert first.ok, [c.message for c in first.failures]
    assert first.folder.name.startswith("quickstart-")
    assert set(first.files) == {"json", "html", "dask"}
    for path in first.files.values():
        assert path.parent == first.folder and path.stat().st_size > 1000
    # the Dask performance report is inline (works offline): no CDN script tags
    dask_html = first.files["dask"].read_text()
    assert "Dask Performance Report" in dask_html and "cdn.bokeh.org" not in dask_html


def test_report_json_holds_data_plans_checks_and_tasks(first: RunOutcome) -> None:
    report = json.loads(first.files["json"].read_text())
    sc = first.scenario
    assert report["scenario"] == "quickstart" and report["ok"] is True
    assert report["data"] == {"hash": sc.data_hash(), "checksum": first.warehouse.checksum}
    assert report["spec"]["data"]["rows"] == 20_000
    runs = {r["query"]: r for r in report["runs"]}
    assert set(runs) == {q.name for q in sc.queries}
    for r in runs.values():
        assert r["oracle"] == "equal" and r["plan"].startswith("PhysicalPlan")
        assert r["task_count"] == len(r["tasks"]) > 0
        assert r["metrics"]["result_checksum"] and r["stage_deps"]
    # the 30 fragments packed into 5 scan tasks (count(*) reads no column data: each costs
    # its open cost), plus the combine task, checked by the scenario's own expectation too
    stage1 = runs["q0_rows_by_day"]["stages"][0]["metrics"]
    assert stage1["tasks"] == 5 + 1 < sc.data.partitions
    assert sum(1 for c in report["checks"] if c["check"].endswith("equals DuckDB")) == 4
    assert all(c["ok"] for c in report["checks"])


def test_same_scenario_and_seed_same_data_plans_and_rows(
        first: RunOutcome, tmp_path: Path, cluster: Cluster) -> None:
    again = _quickstart(tmp_path, cluster, tmp_path / "other-cache")  # generated afresh
    assert not again.warehouse.reused and again.warehouse.path != first.warehouse.path
    assert again.warehouse.checksum == first.warehouse.checksum
    for a, b in zip(first.data.runs, again.data.runs, strict=True):
        assert (a.variant, a.query, a.plan) == (b.variant, b.query, b.plan)
        assert a.result_rows == b.result_rows
        assert a.metrics["result_checksum"] == b.metrics["result_checksum"]


def test_cached_warehouse_is_reused_and_a_half_written_one_is_not(
        first: RunOutcome, tmp_path: Path, cluster: Cluster) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(first.warehouse.path.parent, cache)
    out = _quickstart(tmp_path, cluster, cache)
    assert out.warehouse.reused and out.warehouse.checksum == first.warehouse.checksum
    # an interrupted generation leaves no marker: the folder is generated again
    (out.warehouse.path / MARKER).unlink()
    (out.warehouse.path / "leftover.tmp").write_text("half")
    redo = _quickstart(tmp_path, cluster, cache)
    assert not redo.warehouse.reused and redo.warehouse.checksum == first.warehouse.checksum
    assert not (redo.warehouse.path / "leftover.tmp").exists()


FAILING = """
name = "failing"
[data]
rows = 3_000
partitions = 30
seed = 1
[[queries]]
name = "q0"
sql = "SELECT date, count(*) FROM access_log GROUP BY date"
[[checks.expect]]
query = "q0"
stage = "final"
metric = "max_over_median_rows"
op = ">="
value = 1000
"""


def test_cli_failed_check_exits_1_and_names_it(tmp_path: Path, cluster: Cluster) -> None:
    spec = tmp_path / "failing.toml"
    spec.write_text(FAILING)
    address = cluster.client.scheduler.address
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "runs"),
                                       "--cache", str(tmp_path / "cache"), "--scheduler",
                                       address, "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "default/q0 vs DuckDB: equal" in result.output
    assert "FAILED: */q0 stage final max_over_median_rows >= 1000: actual" in result.output
    assert "off by" in result.output and "report: " in result.output
    assert len(list((tmp_path / "runs").glob("failing-*/report.html"))) == 1


def test_cli_invalid_spec_runs_nothing(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(FAILING)
    bad.write_text(FAILING.replace("[data]", "[data]\nrowz = 5"))
    result = CliRunner().invoke(main, ["run", str(good), str(bad), "--out",
                                       str(tmp_path / "runs"), "--cache", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert f"{bad}" in result.output and "data.rowz: unknown key. Did you mean 'rows'?" \
        in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "c").exists()


def test_cli_local_cluster_larger_than_the_machine_runs_nothing(tmp_path: Path) -> None:
    good, big = tmp_path / "good.toml", tmp_path / "big.toml"
    good.write_text(FAILING)
    big.write_text(FAILING + '\n[cluster]\nworkers = 2\nmemory_limit = "1PiB"\n')
    result = CliRunner().invoke(main, ["run", str(good), str(big), "--out",
                                       str(tmp_path / "runs"), "--cache", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mpp: error: {big}: cluster.memory_limit: 2 workers x 1PiB "
                                    "= 2.00 PiB exceeds this machine's memory")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "c").exists()


def test_cli_query_error_names_scenario_query_and_variant(tmp_path: Path,
                                                         cluster: Cluster) -> None:
    spec = tmp_path / "typo.toml"
    spec.write_text(FAILING.replace("SELECT date, count(*)", "SELECT dte, count(*)"))
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "runs"),
                                       "--cache", str(tmp_path / "cache"), "--scheduler",
                                       cluster.client.scheduler.address, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"mpp: error: {spec}: query 'q0' (variant 'default'): unknown column 'dte'" \
        in result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "runs").glob("typo-*"))  # no half-written run folder


def test_scale_that_leaves_too_few_fragments_is_a_scenario_error(tmp_path: Path,
                                                                 cluster: Cluster) -> None:
    with pytest.raises(mpp.errors.ScenarioError, match=r"quickstart.toml.*partitions"):
        run_scenario(SCENARIOS / "quickstart.toml", scale=0.0001, out=tmp_path,
                     cache=tmp_path / "c", cluster=cluster, progress=False, echo=None)
    assert not list(tmp_path.glob("quickstart-*"))


def test_cli_list_shows_every_shipped_scenario() -> None:
    result = CliRunner().invoke(main, ["list", str(SCENARIOS)])
    assert result.exit_code == 0, result.output
    for path in SCENARIOS.glob("*.toml"):
        assert str(path) in result.output
    assert "INVALID" not in result.output


def test_row_difference_names_how_far_off() -> None:
    a = pa.table({"d": [1, 2, 3], "n": pa.array([10, 20, 30], pa.int32())})
    assert rows.difference(a, a.slice(0, 2)) == "3 rows, DuckDB has 2 (off by 1)"
    b = pa.table({"d": [3, 1, 2], "n": [30, 10, 21]})
    assert rows.difference(a, b) == \
        "1 of 3 rows differ; first (sorted order): mpp (2, 20) vs DuckDB (2, 21)"
    assert rows.difference(a, b.set_column(1, "n", pa.array([30, 10, 20]))) is None
    assert rows.checksum(a) == rows.checksum(b.set_column(1, "n", pa.array([30, 10, 20])))
    assert rows.checksum(a) != rows.checksum(b)


def test_run_scenario_is_exported() -> None:
    assert "run_scenario" in mpp.__all__ and callable(load_scenario)


def test_keep_open_waits_for_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    from mpp.scenario import runner

    calls: list[float] = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.time, "sleep", sleep)
    lines: list[str] = []
    runner._wait_for_ctrl_c("http://127.0.0.1:8787/status", lines.append)
    assert len(calls) == 3
    assert lines == ["cluster kept open; dashboard: http://127.0.0.1:8787/status; "
                     "press Ctrl-C to stop", "stopping the cluster"]
