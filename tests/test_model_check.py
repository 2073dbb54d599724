"""mpp validate-model: the what-if model checked across real worker counts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpp.cli import main
from mpp.errors import MppError
from mpp.scenario.model_check import cross_predictions, validate_model
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


def test_every_count_is_predicted_from_every_other(tmp_path: Path) -> None:
    sc = parse_scenario(tomllib.loads(SPEC))
    runs, table = validate_model(sc, [2, 1], out=tmp_path / "runs", cache=tmp_path / "cache",
                                 progress=False)
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
        assert p.predicted_s == source.predict(p.target).makespan
        assert p.measured_s == target.wall_median_s
        assert f"{p.error:+.1%}" in table
    assert table.splitlines()[0] == "| predicted from | predicted for | error range | direction |"
    assert "| 1 worker | 2 workers |" in table and "| 2 workers | 1 worker |" in table


def test_one_count_is_not_a_validation() -> None:
    with pytest.raises(MppError, match="at least two worker counts"):
        validate_model(parse_scenario(tomllib.loads(SPEC)), [2, 2])


def test_cli_refuses_a_count_beyond_the_limit(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    out = CliRunner().invoke(main, ["validate-model", str(spec), "--workers", "0",
                                    "--workers", "2"])
    assert out.exit_code == 2 and "--workers" in out.output
