"""The differential test at a fixed seed and budget: generated queries must agree with DuckDB,
and the generator must have produced every construct of its grammar on the way.

``mpp difftest`` runs the same generator for longer (docs/testing.md).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from click.testing import CliRunner
from sqlglot import exp

import mpp
from mpp.cli import main
from mpp.config import SETTINGS
from mpp.difftest import FLAGS, runner
from mpp.difftest import settings as planner_settings
from mpp.difftest.data import GATED_COLUMNS, GATED_TABLES, TABLES, build_warehouse
from mpp.difftest.grammar import GRAMMAR, Generator
from mpp.difftest.queries import generate_query
from mpp.difftest.runner import Outcome, Report, judge, make_case, run_cases, usable_tables
from mpp.difftest.shrink import candidates, shrink, shrink_settings, size
from mpp.session import Session

SEED = 51
QUERIES = 100  # every production and setting value by query 84 at this seed; ~40 s

# Constructs behind a flag hit a known engine bug when generated: issue 12's are fixed and on;
# switch the others on here once their fix is merged (mpp.difftest.FLAGS says what each
# generates).
ENABLED: frozenset[str] = frozenset({
    "sum_overflow",      # issue 12: sum() over BIGINT wrapped instead of failing on overflow
    "negative_zero",     # issue 12: -0.0 and 0.0 grouped/joined/were distinct apart
    "sqlite_boolean",    # issue 12: a SQLite BOOLEAN column crashed the scan
    "dup_key_column",    # issue 12: ON a.k = b.k AND a.k = b.j crashed
    "long_or",           # issue 12: OR chains of more than 245 terms hit RecursionError
    "outer_theta_join",  # issue 13: RIGHT/FULL JOIN ON a.x < b.y of two single-fragment
    #                    # tables crashed the planner (two scans in one task)
    "branch_errors",     # an error where Trino never evaluates it (a CASE branch not taken,
                         # a constant over no rows) failed the query in mpp
    # "nan",             # not a bug: Trino's NaN semantics, which the oracle does not translate
})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("difftest") / "warehouse"
    build_warehouse(path)
    return path


@pytest.fixture(scope="module")
def session(warehouse: Path, cluster) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    with mpp.connect(warehouse, cluster=cluster) as s:
        yield s


@pytest.fixture(scope="module")
def report(session: Session) -> Report:
    return run_cases(session, seed=SEED, queries=QUERIES, flags=ENABLED)


def _tables(flags: frozenset[str] = frozenset()) -> tuple[dict, frozenset[str]]:
    return usable_tables({t.name: t.schema for t in TABLES}, flags)


def test_generated_queries_agree_with_duckdb(report: Report) -> None:
    failures = [f"case {c.case.index} {c.verdict.kind}: {c.verdict.detail}\n"
                f"  settings {c.case.settings}\n  {c.case.sql}\n  to shrink it: mpp difftest "
                f"--seed {SEED} --start {c.case.index} -n 1 --out DIR"
                + "".join(f" --enable {flag}" for flag in sorted(ENABLED))
                for c in report.failures]
    assert not failures, "\n".join(failures)
    # Both engines raising (an overflow) is a pass, but the generator is for queries that run.
    assert report.verdicts["pass"] >= 0.9 * QUERIES, report.verdicts


def test_every_production_was_used(report: Report) -> None:
    missing = [p.name for p in GRAMMAR.productions.values()
               if (p.flag is None or p.flag in ENABLED) and report.coverage[p.name] == 0]
    assert not missing, f"never generated in {QUERIES} queries: {missing}"


def test_every_varied_setting_took_each_value(report: Report) -> None:
    drawn = set(report.settings)
    expected = {f"{name}={value}" for name, values in planner_settings.CANDIDATES.items()
                for value in values if value != SETTINGS[name].default}
    expected |= {f"{name}=False" for name in planner_settings.varied()
                 if name not in planner_settings.CANDIDATES}
    assert expected <= drawn, sorted(expected - drawn)


def test_every_setting_is_varied_or_excused() -> None:
    """A new setting must be drawn at random (settings.CANDIDATES, or any optimizer.* switch)
    or listed in settings.NOT_VARIED with the reason."""
    assert planner_settings.unplaced() == []


def test_generation_is_deterministic() -> None:
    tables, hidden = _tables()
    a, b = make_case(3, 17, tables, hidden=hidden), make_case(3, 17, tables, hidden=hidden)
    assert (a.sql, a.settings, a.productions) == (b.sql, b.settings, b.productions)
    assert make_case(3, 18, tables, hidden=hidden).sql != a.sql


def _generated(flags: frozenset[str], n: int) -> tuple[str, set[str]]:
    tables, hidden = _tables(flags)
    texts, used = [], set()
    for i in range(n):
        gen = Generator(tables, random.Random(i), flags, hidden)
        texts.append(generate_query(gen).sql(dialect="trino"))
        used |= set(gen.used)
    return "\n".join(texts), used


def test_every_flag_is_documented_and_used() -> None:
    used = GRAMMAR.flags() | set(GATED_COLUMNS.values()) | set(GATED_TABLES.values())
    assert used == set(FLAGS)
    assert ENABLED <= set(FLAGS)


def test_flags_gate_their_constructs() -> None:
    """With every flag off, no gated production, column or table appears; each flag, when on,
    makes its construct appear."""
    text, used = _generated(frozenset(), 300)
    gated = {p.name for p in GRAMMAR.productions.values() if p.flag is not None}
    assert not used & gated
    names = [rf"\.{column}\b" for column in GATED_COLUMNS] + [rf"\b{t}\b" for t in GATED_TABLES]
    assert not [n for n in names if re.search(n, text)]
    text, used = _generated(frozenset(FLAGS), 300)
    assert gated <= used
    assert [n for n in names if re.search(n, text)] == names


@pytest.mark.parametrize("mpp_outcome,duck_outcome,kind", [
    (Outcome(pa.table({"x": [1, 2]})), Outcome(pa.table({"x": [2, 1]})), "pass"),
    (Outcome(pa.table({"x": [1, 2]})), Outcome(pa.table({"x": [1, 3]})), "wrong_result"),
    (Outcome(None, "KeyError: 'x'", "run"), Outcome(pa.table({"x": [1]})), "crash"),
    (Outcome(None, "SqlError: unsupported SQL: RIGHT JOIN", "bind", True),
     Outcome(pa.table({"x": [1]})), "unsupported"),
    (Outcome(None, "SqlError: cannot compare date with bigint", "bind", True),
     Outcome(None, "BinderException: Cannot compare", clear=True), "refused"),
    (Outcome(None, "SqlError: cannot evaluate k / 0: divide by zero", "run", True),
     Outcome(pa.table({"x": [None]})), "runtime_error"),
    (Outcome(None, "SqlError: cannot evaluate a * b: overflow", "run", True),
     Outcome(None, "OutOfRangeException: Overflow", clear=True), "both_rejected"),
    (Outcome(pa.table({"s": [-2]})), Outcome(None, "OutOfRangeException: Overflow", clear=True),
     "duckdb_error"),
])
def test_judge(mpp_outcome: Outcome, duck_outcome: Outcome, kind: str) -> None:
    assert judge("SELECT x FROM t", mpp_outcome, duck_outcome).kind == kind


def test_judge_checks_the_order_by_order() -> None:
    sql = "SELECT x FROM t ORDER BY x DESC"
    verdict = judge(sql, Outcome(pa.table({"x": [1, 2]})), Outcome(pa.table({"x": [2, 1]})))
    assert verdict.kind == "wrong_result" and "out of order" in verdict.detail


def _has_left_join_and_modulo(tree: exp.Expr) -> bool:
    """A synthetic failure: valid SQL text with a LEFT JOIN and a % somewhere."""
    try:
        if sqlglot.parse_one(tree.sql(dialect="trino"), read="trino") != tree:
            return False
    except sqlglot.ParseError:
        return False
    return (any(j.side == "LEFT" for j in tree.find_all(exp.Join))
            and tree.find(exp.Mod) is not None)


def test_shrink_keeps_the_failure_and_reaches_a_local_minimum() -> None:
    tables, hidden = _tables()
    trees = (sqlglot.parse_one(make_case(7, i, tables, hidden=hidden).sql, read="trino")
             for i in range(150))
    big = max((t for t in trees if _has_left_join_and_modulo(t)), key=size)
    small = shrink(big, _has_left_join_and_modulo, budget=5000)
    assert _has_left_join_and_modulo(small)
    assert size(small)[0] < size(big)[0] / 3
    assert not any(_has_left_join_and_modulo(c) for c in candidates(small)
                   if size(c) < size(small))
    # What is left: one SELECT item, FROM, the LEFT JOIN with its ON, and the % in one of them.
    assert len(small.expressions) == 1 and not small.args.get("where")


def test_shrink_settings_keeps_only_what_the_failure_needs() -> None:
    settings = {"join.strategy": "partitioned", "execution.hash_buckets": 3,
                "optimizer.pushdown_predicates": False}
    kept = shrink_settings(settings, lambda s: s.get("join.strategy") == "partitioned")
    assert kept == {"join.strategy": "partitioned"}


def test_command_writes_minimal_failing_queries(session: Session, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With an oracle that is wrong about every LEFT JOIN (a synthetic failure), the command
    writes each failing case as a runnable minimal query and JSON, and exits 1."""
    real = runner.run_duckdb

    def wrong_about_left_joins(s: Session, sql: str) -> Outcome:
        return Outcome(pa.table({"x": [-1]})) if " LEFT JOIN " in sql else real(s, sql)

    monkeypatch.setattr(runner, "run_duckdb", wrong_about_left_joins)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["difftest", "-n", "4", "--seed", "1", "--out", str(out),
                                       "--shrink-budget", "40", "--scheduler",
                                       session.cluster.client.scheduler.address])
    assert result.exit_code == 1, result.output
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted(out.glob("failure-*.json"))]
    assert summary["queries"] == 4 and summary["failures"] == len(records) >= 1
    for record in records:
        assert record["verdict"] == "wrong_result" and " LEFT JOIN " in record["minimal_sql"]
        assert len(record["minimal_sql"]) < len(record["sql"])
        sql_file = (out / f"failure-1-{record['index']:06d}.sql").read_text()
        assert sql_file.startswith("-- wrong_result: seed 1, case ")
        assert sql_file.rstrip().endswith(record["minimal_sql"] + ";")
