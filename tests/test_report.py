"""report.json, report.html and the terminal summary hold what they promise."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mpp.errors import MppError
from mpp.metrics.records import TaskRecord
from mpp.scenario.report import (
    CheckResult,
    QueryRun,
    RunData,
    environment,
    format_summary,
    query_run,
    write_report,
)
from mpp.scenario.spec import WhatIf

WORKERS = ("tcp://127.0.0.1:40001", "tcp://127.0.0.1:40002")
SCAN_TASKS, FINAL_TASKS = 12, 6


def _records(hot_rows: int) -> list[TaskRecord]:
    """Scan stage 0 on two workers, then final stage 1 where partition 3 holds ``hot_rows``."""
    recs: list[TaskRecord] = []
    clock = dict.fromkeys(WORKERS, 100.0)
    for stage, count in ((0, SCAN_TASKS), (1, FINAL_TASKS)):
        if stage == 1:
            clock = dict.fromkeys(WORKERS, max(clock.values()))
        for i in range(count):
            worker = min(clock, key=lambda w: (clock[w], w))
            rows = 10_000 if stage == 0 else (hot_rows if i == 3 else 1_000)
            secs = rows / 100_000
            hot = (("2017-01-13", rows),) if rows > 1_000 else ((f"2017-01-0{i + 1}", rows),)
            recs.append(TaskRecord(
                "q", stage, f"stage{stage}-op", f"stage{stage}-op-{i}", i, worker,
                clock[worker], clock[worker] + secs, rows_in=rows, rows_out=30,
                bytes_read=80_000 if stage == 0 else 0, bytes_sent=480 if stage == 0 else 0,
                hot_keys=hot if stage == 1 else ()))
            clock[worker] += secs
    return recs


def sample_run() -> RunData:
    """The report input: single_step (skewed final stage) vs rewrite (balanced)."""
    runs: list[QueryRun] = []
    for variant, hot in (("single_step", 20_000), ("rewrite", 1_000)):
        recs = _records(hot)
        wall = max(r.stop for r in recs) - min(r.start for r in recs)
        runs.append(query_run(
            variant, "distinct_by_day",
            sql="SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date",
            plan="Stage 1 [hash exchange in]: HashAggregateExec(FINAL)\n"
                 "Stage 0 [12 tasks]: ScanExec(access_log) -> HashAggregateExec(PARTIAL)",
            wall_s=[wall, wall], records=recs, whatif=WhatIf(), result_rows=30,
            oracle="equal", metrics={"bytes_read": 960_000, "ratio": float("inf")}))
    checks = (CheckResult("rewrite/* stage final max_over_median_rows <= 1.5", True,
                          "ok: rewrite/* stage final max_over_median_rows <= 1.5 (actual 1)"),
              CheckResult("single_step/* stage final max_over_median_rows <= 1.5", False,
                          "FAILED: single_step/* stage final max_over_median_rows <= 1.5: "
                          "actual 20, off by 18.5"))
    return RunData("skew_distinct", {"cluster": {"workers": 2, "threads": 1}}, environment(),
                   "0123456789abcdef", "sha256:feed", tuple(runs), checks,
                   "2026-11-25T02:00:00+00:00")


TITLES = (
    "Wall time per variant and query (median over repeats)",
    "Predicted makespan on W dedicated workers (what-if replay of the measured tasks)",
    "Task timeline per worker: single_step / distinct_by_day",
    "Rows per task, stage 1 (max/median 20.00)",
    "Task seconds, stage 0",
    "measured here, 2 workers (x)",
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_report(sample_run(), tmp_path_factory.mktemp("run") / "out")


def test_report_json_holds_environment_data_plans_metrics_and_every_task(
        written: dict[str, Path]) -> None:
    report = json.loads(written["json"].read_text())
    assert report["format"] == "mpp-report/1" and report["scenario"] == "skew_distinct"
    assert report["data"] == {"hash": "0123456789abcdef", "checksum": "sha256:feed"}
    assert report["environment"]["versions"]["bokeh"]
    assert report["environment"]["cpus"] >= 1
    assert report["ok"] is False
    assert [c["ok"] for c in report["checks"]] == [True, False]
    assert [(r["variant"], r["query"]) for r in report["runs"]] == [
        ("single_step", "distinct_by_day"), ("rewrite", "distinct_by_day")]
    for run in report["runs"]:
        assert run["plan"].startswith("Stage 1") and run["sql"].startswith("SELECT")
        assert run["task_count"] == len(run["tasks"]) == SCAN_TASKS + FINAL_TASKS
        assert {t["stage"] for t in run["tasks"]} == {0, 1}
        assert [s["stage"] for s in run["stages"]] == [0, 1]
        assert sorted(run["whatif"], key=int) == ["2", "8", "32", "128"]
        assert run["metrics"]["ratio"] is None  # inf is not JSON
        assert run["workers"] == 2 and run["overheads"] == {"task_s": 0.0, "fixed_s": 0.0}
        # Back-to-back tasks on 2 workers: the replay at W=2 reproduces the wall time.
        assert abs(run["fit_error"]) < 0.05
    skewed, balanced = (r["stages"][1] for r in report["runs"])
    assert skewed["metrics"]["max_over_median_rows"] == 20.0
    assert skewed["heaviest"]["hot_keys"] == [["2017-01-13", 20000]]
    assert balanced["metrics"]["max_over_median_rows"] == 1.0
    tripped = {v["name"] for v in skewed["verdicts"] if v["tripped"]}
    # The hot task is also the slow one: the time rule names the straggler too.
    assert tripped == {"trino_input_skewed", "redshift_skew_rows", "time_straggler"}
    # The straggler dominates at scale: single_step's makespan at 128 workers is worse.
    single, rewrite = (r["whatif"]["128"]["makespan_s"] for r in report["runs"])
    assert single > 2 * rewrite


def test_report_html_is_self_contained_with_the_plots(written: dict[str, Path]) -> None:
    page = written["html"].read_text()
    assert "mpp report: skew_distinct" in page
    for title in TITLES:
        assert title in page, title
    assert "cdn.bokeh.org" not in page and "<script src=" not in page  # works offline
    assert "Bokeh.embed.embed_items" in page
    assert "FAILED: single_step" in page


def test_report_files_are_readable_and_no_temporary_left(written: dict[str, Path]) -> None:
    folder = written["json"].parent
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert written["json"].stat().st_mode & 0o044 == 0o044


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MppError, match="cannot write the report"):
        write_report(sample_run(), blocker)


def test_summary_table() -> None:
    lines = format_summary(sample_run()).splitlines()
    assert lines[0].split()[:3] == ["variant", "query", "wall"]
    assert "W=128 s" in lines[0] and "fit" in lines[0] and "oracle" in lines[0]
    single = next(line for line in lines if line.startswith("single_step"))
    rewrite = next(line for line in lines if line.startswith("rewrite"))
    # Every stage's verdicts, each named with its stage.
    assert "20.00" in single and "s1: trino, redshift, time" in single
    assert single.endswith("equal")
    assert "1.00" in rewrite and "none" in rewrite
    fit = next(i for i, line in enumerate(lines)
               if line.startswith("fit: what-if prediction at the real worker count"))
    # Then the variants compared on the largest predicted size, then the checks.
    assert lines[fit + 2].startswith("variants at W=128 ")
    assert lines[-2].startswith("PASS ") and lines[-1].startswith("FAIL ")
    assert "off by 18.5" in lines[-1]


def test_a_run_without_task_records_still_reports(tmp_path: Path) -> None:
    empty = query_run("v", "q", sql="SELECT 1", plan="(no plan)", wall_s=[0.5], records=[])
    paths = write_report(RunData("empty", {}, {}, "h", None, (empty,)), tmp_path)
    report = json.loads(paths["json"].read_text())
    assert report["runs"][0]["task_count"] == 0 and report["runs"][0]["whatif"] == {}
    assert "no task records" in paths["html"].read_text()
    assert "0.500" in format_summary(RunData("empty", {}, {}, "h", None, (empty,)))


def _calibrated(variant: str, hot_rows: int, whatif: WhatIf) -> QueryRun:
    """A run measured with CPU times, a combine task and client/worker CPU: what the
    named-warehouse replay reads."""
    recs = [dataclasses.replace(r, cpu_s=r.duration / 2) for r in _records(hot_rows)]
    combine = TaskRecord("q", 0, "stage0-combine", "stage0-combine-0", 0, WORKERS[0],
                         recs[SCAN_TASKS - 1].stop, recs[SCAN_TASKS - 1].stop + 0.01,
                         rows_in=360, rows_out=360, bytes_sent=5_760, cpu_s=0.01)
    recs.insert(SCAN_TASKS, combine)
    wall = max(r.stop for r in recs) - min(r.start for r in recs) + 0.05
    return query_run(variant, "distinct_by_day", sql="SELECT 1",
                     plan="Stage 0 [12 tasks] -> ExchangeExec(HASH) via 1 combine task "
                          "(fan-in 64) and 6 split tasks",
                     wall_s=[wall], records=recs, whatif=whatif, stage_deps={0: (), 1: (0,)},
                     workers=2, oracle="equal", cores=2,
                     metrics={"client_cpu_s": 0.19, "worker_cpu_s": 0.5})


def test_a_saved_run_is_recomputed_without_running(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mpp.cli import main
    from mpp.scenario.report import load_run
    from mpp.scenario.spec import parse_whatif

    spec = {"warehouse": {"nodes": 16, "threads_per_node": 2, "network_gbit": 10}}
    whatif = parse_whatif(spec)
    data = RunData("skew_small", spec, {**environment(), "cpus": 2}, "0123456789abcdef", None,
                   tuple(_calibrated(v, hot, whatif)
                         for v, hot in (("single_step", 100_000), ("rewrite", 1_000))),
                   (CheckResult("c", True, "ok: c"),), "2026-12-03T17:00:00+00:00")
    single = data.runs[0]
    # The split tasks the plan names count in the graph the costs are per task of.
    assert single.calibration is not None
    assert (single.calibration.tasks, single.calibration.graph_tasks) == (19, 25)
    folder = write_report(data, tmp_path / "run")["json"].parent
    again = load_run(folder)
    assert [r.whatif[16].makespan for r in again.runs] == pytest.approx(
        [r.whatif[16].makespan for r in data.runs])
    assert format_summary(again) == format_summary(data)
    # The straggler the comparison names is the task the replay ran longest: the hot one.
    assert "2017-01-13 (100,000 rows)" in format_summary(data)
    out = CliRunner().invoke(main, ["report", str(folder)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith("skew_small (started 2026-12-03T17:00:00")
    assert format_summary(data) in out.output
    written = CliRunner().invoke(main, ["report", str(folder), "--write", str(tmp_path / "re")])
    assert written.exit_code == 0 and (tmp_path / "re" / "report.html").exists()
    assert CliRunner().invoke(main, ["report", str(folder), "--write", str(folder)]).exit_code == 2
    missing = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert missing.exit_code == 2 and "cannot read the saved run" in missing.output
    assert "Traceback" not in missing.output
