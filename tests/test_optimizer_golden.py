"""Golden plan tests: every tests/fixtures/optimizer/<rule>.sql case, SQL in, plan text out.

A fixture file holds cases, each::

    -- title: what the case shows
    -- config: optimizer.prune_projections=false      (optional, repeatable)
    SELECT ...
    ----
    <the plan right after rule <rule> ran (all earlier rules ran too)>

``UPDATE_GOLDEN=1 pytest tests/test_optimizer_golden.py`` rewrites the expected plans; review
the diff. Adding a case or a rule file needs no test code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpp.config import PlannerContext, Settings, parse_assignments
from mpp.logical.explain import explain_logical
from mpp.optimizer import RULES, optimize
from mpp.sql import bind
from tests.fake_catalog import FakeCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "optimizer"
SEPARATOR = "----"


@dataclass
class Case:
    """One golden case of a fixture file."""

    rule: str
    title: str
    config: list[str]
    sql: str
    expected: str


def parse_cases(path: Path) -> list[Case]:
    """The cases of one fixture file, in order."""
    blocks: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("-- title:"):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    cases = []
    for block in blocks:
        headers = [ln for ln in block if ln.startswith("-- ")]
        body = [ln for ln in block if not ln.startswith("-- ")]
        sep = body.index(SEPARATOR)
        meta = [h[3:].partition(":") for h in headers]
        cases.append(Case(
            rule=path.stem,
            title=next(v.strip() for k, _, v in meta if k == "title"),
            config=[v.strip() for k, _, v in meta if k == "config"],
            sql="\n".join(body[:sep]).strip(),
            expected="\n".join(body[sep + 1:]).strip(),
        ))
    return cases


def render(case: Case) -> str:
    """The plan text after the case's rule, with the case's settings."""
    ctx = PlannerContext(Settings(parse_assignments(case.config)))
    trace: list = []
    optimize(bind(case.sql, FakeCatalog()), ctx, trace=trace)
    return explain_logical(dict(trace)[case.rule])


def write_cases(path: Path, cases: list[Case]) -> None:
    """Write ``cases`` back to ``path`` (UPDATE_GOLDEN)."""
    out = []
    for c in cases:
        out += [f"-- title: {c.title}", *[f"-- config: {v}" for v in c.config], c.sql,
                SEPARATOR, c.expected, ""]
    path.write_text("\n".join(out))


FILES = sorted(FIXTURES.glob("*.sql"))
CASES = [c for f in FILES for c in parse_cases(f)]


def test_every_rule_has_a_fixture_file_and_every_file_a_rule() -> None:
    assert {f.stem for f in FILES} == {r.name for r in RULES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}: {c.title}" for c in CASES])
def test_golden_plan(case: Case) -> None:
    actual = render(case)
    if os.environ.get("UPDATE_GOLDEN"):
        path = FIXTURES / f"{case.rule}.sql"
        cases = parse_cases(path)
        for c in cases:
            if c.title == case.title:
                c.expected = actual
        write_cases(path, cases)
        return
    assert actual == case.expected, f"\n--- expected\n{case.expected}\n--- actual\n{actual}"
