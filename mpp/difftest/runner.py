"""Running generated queries on mpp and on DuckDB, and judging each pair of outcomes.

A case is one query and one draw of planner settings, both a pure function of the run's seed
and the case's index. Its verdict:

==================  ====================================================================
``pass``            both returned the same rows (in ORDER BY order where the query has one)
``both_rejected``   both raised running it (an overflow, say): a pass
``wrong_result``    both returned rows, different ones                              FAIL
``crash``           mpp raised something that is not an MppError                    FAIL
``unsupported``     mpp called the SQL unsupported: the generator must not make it  FAIL
``refused``         mpp rejected the SQL at binding: the generator must write valid  FAIL
                    SQL (or mpp refuses what Trino accepts)
``runtime_error``   mpp failed running a query DuckDB ran                            FAIL
``duckdb_error``    mpp returned rows where DuckDB raised (an overflow mpp missed)  FAIL
==================  ====================================================================
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mpp.difftest import settings as planner_settings
from mpp.difftest.data import GATED_COLUMNS, GATED_TABLES, TABLES
from mpp.difftest.grammar import Generator, known
from mpp.difftest.queries import generate_query
from mpp.difftest.shrink import shrink, shrink_settings
from mpp.errors import MppError
from mpp.oracle import run_oracle, sql_type
from mpp.scenario.rows import result_difference
from mpp.sql.parse import DIALECT, parse

if TYPE_CHECKING:
    from mpp.catalog import Catalog
    from mpp.session import Session

FAILURES = ("wrong_result", "crash", "unsupported", "refused", "runtime_error", "duckdb_error")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One engine's answer: a table, or an error (``phase`` says where mpp raised it)."""

    table: pa.Table | None = None
    error: str | None = None
    phase: str = ""
    clear: bool = False  # the error is an MppError

    @property
    def ok(self) -> bool:
        """True when the engine returned rows."""
        return self.error is None

    def describe(self, limit: int = 20) -> str:
        """The outcome in words: the first rows, or the error."""
        if self.table is None:
            return f"error ({self.phase or 'run'}): {self.error}"
        rows = self.table.slice(0, limit).to_pylist()
        more = f"\n  ... {self.table.num_rows - limit} more rows" if self.table.num_rows > limit else ""
        return f"{self.table.num_rows} rows:\n" + "\n".join(f"  {r}" for r in rows) + more


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one case: a kind (see the module docs) and a detail in words."""

    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        """True for the kinds that are failures."""
        return self.kind in FAILURES


@dataclass(frozen=True, slots=True)
class Case:
    """One generated query with its planner settings and the productions it used."""

    seed: int
    index: int
    sql: str
    settings: dict[str, Any]
    productions: tuple[str, ...]


def usable_tables(schemas: Mapping[str, pa.Schema], flags: frozenset[str]
                  ) -> tuple[dict[str, list[tuple[str, str]]], frozenset[str]]:
    """The tables and columns the generator may use under ``flags`` (of ``schemas``, table ->
    Arrow schema), and the tables that have columns it may not (``SELECT *`` would show them)."""
    tables: dict[str, list[tuple[str, str]]] = {}
    hidden = set()
    for name in sorted(schemas):
        if GATED_TABLES.get(name, "") not in flags | {""}:
            continue
        columns = []
        for f in schemas[name]:
            t = sql_type(f.type).lower()
            if GATED_COLUMNS.get(f.name, "") in flags | {""} and known(t):
                columns.append((f.name, t))
        if len(columns) < len(schemas[name]):
            hidden.add(name)
        if columns:
            tables[name] = columns
    return tables, frozenset(hidden)


def catalog_schemas(catalog: Catalog) -> dict[str, pa.Schema]:
    """The difftest tables (:data:`mpp.difftest.data.TABLES`) with their schemas as the
    catalog holds them."""
    return {t.name: catalog.table(t.name).schema for t in TABLES}


def make_case(seed: int, index: int, tables: dict[str, list[tuple[str, str]]],
              flags: frozenset[str] = frozenset(), hidden: frozenset[str] = frozenset()) -> Case:
    """Case ``index`` of the run with ``seed``: the same query and settings every time."""
    rng = random.Random(f"difftest:{seed}:{index}")
    gen = Generator(tables, rng, flags, hidden)
    sql = generate_query(gen).sql(dialect=DIALECT)
    return Case(seed, index, sql, planner_settings.draw(rng), tuple(sorted(gen.used.elements())))


def run_mpp(session: Session, sql: str, settings: dict[str, Any]) -> Outcome:
    """Bind and run ``sql`` on mpp; errors are caught and kept with the phase they came in."""
    phase = "bind"
    try:
        plan = session.bind(sql)
        phase = "run"
        return Outcome(session.run_plan(plan, settings=settings).to_arrow())
    except Exception as exc:  # every failure is an outcome to judge, never a crash of the run
        return Outcome(None, f"{type(exc).__name__}: {exc}", phase, isinstance(exc, MppError))


def run_duckdb(session: Session, sql: str) -> Outcome:
    """Run ``sql`` on DuckDB (the oracle) over the same files."""
    try:
        return Outcome(run_oracle(sql, session.catalog))
    except Exception as exc:  # DuckDB's errors are outcomes too
        return Outcome(None, f"{type(exc).__name__}: {exc}", clear=True)


def judge(sql: str, mpp: Outcome, duck: Outcome) -> Verdict:
    """The verdict on one query's two outcomes (see the module docs)."""
    if mpp.error is not None and not mpp.clear:
        return Verdict("crash", mpp.error)
    if mpp.error is not None and "unsupported SQL" in mpp.error:
        return Verdict("unsupported", mpp.error)
    if mpp.error is not None and mpp.phase == "bind":
        return Verdict("refused", mpp.error)
    if mpp.error is not None and not duck.ok:
        return Verdict("both_rejected", f"mpp: {mpp.error}; DuckDB: {duck.error}")
    if mpp.error is not None:  # the oracle raises where Trino does (x / 0, an overflow)
        return Verdict("runtime_error", mpp.error)
    if not duck.ok:
        return Verdict("duckdb_error", f"DuckDB: {duck.error}")
    assert mpp.table is not None and duck.table is not None
    try:
        diff = result_difference(mpp.table, duck.table, sql)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        diff = f"the results cannot be compared: {type(exc).__name__}: {exc}"
    return Verdict("pass") if diff is None else Verdict("wrong_result", diff)


def signature(verdict: Verdict, mpp: Outcome) -> tuple[str, str]:
    """What "fails the same way" means while shrinking: the verdict kind and, for a crash,
    the exception's type."""
    kind = (mpp.error or "").split(":", 1)[0] if verdict.kind == "crash" else ""
    return verdict.kind, kind


@dataclass
class Checked:
    """A case with both outcomes and the verdict."""

    case: Case
    mpp: Outcome
    duckdb: Outcome
    verdict: Verdict
    minimal_sql: str | None = None
    minimal_settings: dict[str, Any] = field(default_factory=dict)


def check(session: Session, case: Case) -> Checked:
    """Run one case on both engines and judge it."""
    mpp = run_mpp(session, case.sql, case.settings)
    duck = run_duckdb(session, case.sql)
    return Checked(case, mpp, duck, judge(case.sql, mpp, duck))


def minimize(session: Session, checked: Checked, *, budget: int = 300) -> Checked:
    """``checked`` with the smallest query (and fewest non-default settings) found that still
    fails the same way (:func:`signature`)."""
    target = signature(checked.verdict, checked.mpp)

    def same(sql: str, settings: dict[str, Any]) -> bool:
        mpp = run_mpp(session, sql, settings)
        return signature(judge(sql, mpp, run_duckdb(session, sql)), mpp) == target

    settings = checked.case.settings
    tree = shrink(parse(checked.case.sql), lambda t: same(t.sql(dialect=DIALECT), settings),
                  budget=budget)
    sql = tree.sql(dialect=DIALECT)
    minimal = shrink_settings(settings, lambda s: same(sql, s))
    return replace(checked, minimal_sql=sql, minimal_settings=minimal)


@dataclass
class Report:
    """What a run found: verdict counts, the productions and settings it covered, failures."""

    seed: int
    flags: frozenset[str]
    verdicts: Counter[str] = field(default_factory=Counter)
    coverage: Counter[str] = field(default_factory=Counter)
    settings: Counter[str] = field(default_factory=Counter)
    failures: list[Checked] = field(default_factory=list)

    @property
    def queries(self) -> int:
        """How many cases ran."""
        return sum(self.verdicts.values())


def run_cases(session: Session, *, seed: int, queries: int, start: int = 0,
              flags: frozenset[str] = frozenset(), shrink_budget: int = 0,
              on_case: Callable[[Checked], Any] | None = None) -> Report:
    """Generate and check cases ``start`` .. ``start + queries - 1`` of the run ``seed``;
    failing ones are minimized when ``shrink_budget`` > 0."""
    tables, hidden = usable_tables(catalog_schemas(session.catalog), flags)
    report = Report(seed, flags)
    for index in range(start, start + queries):
        case = make_case(seed, index, tables, flags, hidden)
        checked = check(session, case)
        if checked.verdict.failed:
            if shrink_budget > 0:
                checked = minimize(session, checked, budget=shrink_budget)
            report.failures.append(checked)
        report.verdicts[checked.verdict.kind] += 1
        report.coverage.update(case.productions)
        report.settings.update(f"{k}={v}" for k, v in case.settings.items())
        if on_case is not None:
            on_case(checked)
    return report
