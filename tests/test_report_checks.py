"""Scenario expectations evaluated against measured runs: which check failed, and by how much."""

from __future__ import annotations

import pytest

from mpp.scenario.checks import Expectation, Op
from mpp.scenario.expect import evaluate
from mpp.scenario.report import QueryRun
from tests.test_report import FINAL_TASKS, SCAN_TASKS, sample_run


@pytest.fixture(scope="module")
def runs() -> tuple[QueryRun, ...]:
    return sample_run().runs


def test_final_stage_balance_passes_for_rewrite_and_fails_for_single_step(runs) -> None:
    rule = Expectation("max_over_median_rows", Op.LE, 1.5, stage="final")
    single, rewrite = evaluate([rule], runs)
    assert not single.ok and "actual 20" in single.message and "off by 18.5" in single.message
    assert "[single_step/distinct_by_day stage 1]" in single.message
    assert rewrite.ok


def test_selectors_all_stages_variant_and_verdicts(runs) -> None:
    every = Expectation("trino_input_skewed", Op.EQ, 0, stage="all", variant="rewrite")
    results = evaluate([every], runs)
    assert [r.ok for r in results] == [True, True]  # stages 0 and 1 of rewrite only
    flagged = Expectation("redshift_skew_rows", Op.EQ, 1, stage="final", variant="single_step")
    assert evaluate([flagged], runs)[0].ok


def test_query_metrics_and_ratios_between_variants(runs) -> None:
    tasks = Expectation("tasks", Op.EQ, SCAN_TASKS + FINAL_TASKS)
    assert all(r.ok for r in evaluate([tasks], runs))
    read = Expectation("bytes_read", Op.EQ, SCAN_TASKS * 80_000, variant="rewrite")
    assert evaluate([read], runs)[0].ok
    worse = Expectation("predicted_makespan_s", Op.GE, 2.0, variant="single_step",
                        workers=128, relative_to="rewrite")
    (result,) = evaluate([worse], runs)
    assert result.ok, result.message
    # A worker count the report did not precompute is replayed on demand.
    assert evaluate([Expectation("predicted_makespan_s", Op.GT, 0, workers=3)], runs)[0].ok


def test_an_expectation_matching_nothing_fails(runs) -> None:
    (result,) = evaluate([Expectation("tasks", Op.GE, 1, stage=7)], runs)
    assert not result.ok and "no run or stage matched" in result.message
