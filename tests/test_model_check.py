"""mpp validate-model: the what-if model checked across real worker counts."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpp.cli import main
from mpp.errors import MppError
from mpp.scenario import model_check
from mpp.scenario.model_check import (
    ModelCheck,
    cross_predictions,
    revalidate,
    validate_model,
)
from mpp.scenario.spec import parse_scenario

SPEC = """
name = "tiny"
[data]
rows = 6_000
partitions = 30
seed = 3
users = 300
[[queries]]
name = "by_day"
sql = "SELECT date, count(*) AS n FROM access_log GROUP BY date"
[[queries]]
name = "distinct"
sql = "SELECT date, count(DISTINCT user_id) AS u FROM access_log GROUP BY date"
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the validation below writes its run folders."""
    return tmp_path_factory.mktemp("model-check")


@pytest.fixture(scope="module")
def check(saved: Path) -> ModelCheck:
    """One validation (a LocalCluster per count and pass), shared by the tests below."""
    tmp = saved
    return validate_model(parse_scenario(tomllib.loads(SPEC)), [2, 1], out=tmp / "runs",
                          cache=tmp / "cache", progress=False, runs=1)


def test_each_pass_runs_every_query_once_untimed_first(check: ModelCheck) -> None:
    """A fresh worker is slower in its first queries: every pass warms up each query once
    (``warmup=1``) before the run it records. Query ids count the session's queries, so the
    two recorded runs of a pass (by_day, distinct) are two apart: by_day's timed run, then
    distinct's warm-up, then its timed run."""
    for runs in check.runs.values():
        ids = [int(r.records[0].query_id.split("-")[0][1:]) for r in runs]
        assert [b - a for a, b in zip(ids, ids[1:], strict=False)] == [2]


def test_every_count_is_predicted_from_every_other(check: ModelCheck) -> None:
    runs, table = check.runs, check.table
    assert sorted(runs) == [1, 2]
    # Each run really ran on its own cluster size.
    assert {len({t.worker for r in runs[1] for t in r.records})} == {1}
    assert len({t.worker for r in runs[2] for t in r.records}) == 2
    preds = cross_predictions(runs)
    assert sorted({(p.source, p.target) for p in preds}) == [(1, 2), (2, 1)]
    assert {(p.variant, p.query) for p in preds} == {("default", "by_day"),
                                                      ("default", "distinct")}
    for p in preds:  # the prediction is the replay of the source run's tasks at the target
        source = next(r for r in runs[p.source] if r.query == p.query)
        target = next(r for r in runs[p.target] if r.query == p.query)
        assert p.predicted_s == source.predict_here(p.target).makespan
        assert p.measured_s == target.wall_median_s
        assert f"{p.error:+.1%}" in table
    assert table.splitlines()[0] == "| predicted from | predicted for | error range | direction |"
    assert "| 1 worker | 2 workers |" in table and "| 2 workers | 1 worker |" in table
    # Every run is calibrated (task CPU recorded), and the table is in the last run's report.
    assert all(r.calibration is not None for rs in runs.values() for r in rs)
    assert check.report is not None
    assert json.loads((check.report / "report.json").read_text())["model_check"] == table
    assert "mpp validate-model" in (check.report / "report.html").read_text()


def test_the_command_prints_one_row_per_count_pair_and_an_error_column(
        tmp_path: Path, check: ModelCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command passes its options on and prints the validation's table and report (the
    validation itself is the fixture's, run once above)."""
    calls = []

    def validate(scenario, counts, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((scenario.name, list(counts), kwargs))
        return check

    monkeypatch.setattr(model_check, "validate_model", validate)
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = CliRunner().invoke(main, ["validate-model", str(spec), "--workers", "1", "--workers",
                                    "2", "--repeats", "1", "--no-progress", "--out",
                                    str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    assert [(name, counts) for name, counts, _ in calls] == [("tiny", [1, 2])]
    assert calls[0][2]["repeats"] == 1 and calls[0][2]["progress"] is False
    assert calls[0][2]["warmup"] == 1  # the default: one untimed run of each query a pass
    lines = out.output.splitlines()
    assert lines[0] == "| predicted from | predicted for | error range | direction |"
    pairs = lines[2:4]
    assert [p.split("|")[1:3] for p in pairs] == [[" 1 worker ", " 2 workers "],
                                                  [" 2 workers ", " 1 worker "]]
    for p in pairs:  # an error range and its direction
        assert re.fullmatch(r"\| [^|]+ \| [^|]+ \| [+-]\d+% to [+-]\d+% \| "
                            r"(always over|always under|mixed) \|", p)
    detail = lines.index("| variant | query | from | for | predicted s | measured s | error |")
    rows = [line for line in lines[detail + 2:] if line.startswith("| default |")]
    assert len(rows) == 4  # 2 queries x 2 pairs
    assert all(re.search(r"\| [+-]\d+\.\d% \|$", r) for r in rows)
    assert lines[-1].startswith("report (with this table): ") and lines[-1].endswith(
        "report.html")


def test_one_count_is_not_a_validation() -> None:
    with pytest.raises(MppError, match="at least two worker counts"):
        validate_model(parse_scenario(tomllib.loads(SPEC)), [2, 2])


def test_cli_refuses_a_count_beyond_the_limit(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = CliRunner().invoke(main, ["validate-model", str(spec), "--workers", "0",
                                    "--workers", "2"])
    assert out.exit_code == 2 and "--workers" in out.output


def test_saved_runs_give_the_same_tables_without_running_anything(
        saved: Path, check: ModelCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    """--from reads the run folders back and recomputes the tables: the same predictions,
    errors and spread as the validation that made them (only the load line differs)."""
    from mpp.scenario import runner

    def no_runs(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("--from must not run the scenario")

    monkeypatch.setattr(runner, "run_scenario", no_runs)
    again = revalidate(saved / "runs")
    assert again.table.splitlines()[:-1] == check.table.splitlines()[:-1]
    assert again.table.splitlines()[-1].startswith("load average (1, 5, 15 min) at the end of "
                                                   "the first run ")
    assert "recomputed from 2 saved runs in " in again.table
    assert again.report is None
    out = CliRunner().invoke(main, ["validate-model", "--from", str(saved / "runs")])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[:-1] == check.table.splitlines()[:-1]


def test_saved_runs_must_be_one_scenario_at_two_counts(
        tmp_path: Path, saved: Path, check: ModelCheck) -> None:
    with pytest.raises(MppError, match="no saved runs"):
        revalidate(tmp_path)
    one = tmp_path / "one"
    run = next((saved / "runs").iterdir())
    (one / run.name).mkdir(parents=True)
    (one / run.name / "report.json").write_text((run / "report.json").read_text())
    with pytest.raises(MppError, match="needs runs at two or more"):
        revalidate(one)
    other = json.loads((run / "report.json").read_text()) | {"scenario": "other"}
    (one / "other-run").mkdir()
    (one / "other-run" / "report.json").write_text(json.dumps(other))
    with pytest.raises(MppError, match="2 scenarios or data sets"):
        revalidate(one)
    out = CliRunner().invoke(main, ["validate-model", "--from", str(one)])
    assert out.exit_code != 0 and "Traceback" not in out.output and "2 scenarios" in out.output
    out = CliRunner().invoke(main, ["validate-model"])
    assert out.exit_code == 2 and "--from" in out.output


def test_moving_data_between_workers_is_priced_once_and_kept_with_every_run(
        check: ModelCheck, saved: Path) -> None:
    """The validation measures what a byte costs the workers to cross between two worker
    processes (a 1-worker pass cannot), once, and every pass's runs carry that one price: the
    model charges it per byte that crosses at each count, and ``--from`` reads it back."""
    prices = {r.metrics["transfer_s_per_byte"] for runs in check.runs.values() for r in runs}
    assert len(prices) == 1
    price = prices.pop()
    assert 0 < price < 1e-6  # seconds per byte: well under a second per MB
    assert all(r.calibration is not None and r.calibration.transfer_s == price
               for runs in check.runs.values() for r in runs)
    assert f"moving data between workers: {price * 1e9:.2f} ms of CPU per MB" in check.table
    again = revalidate(saved / "runs")
    assert f"{price * 1e9:.2f} ms of CPU per MB" in again.table
