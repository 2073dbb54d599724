"""The data mart's final checks and findings (see :mod:`mpp.mart.pipeline`).

* every table equals DuckDB's recomputation from the raw data;
* for every day, the master table rebuilt from the SCD2 history equals that day's snapshot;
* the notes' caveat, measured: rebuilt from the increments alone (no tombstones), the master
  keeps every user deleted since the first day, exactly as many as DuckDB counts in the change
  log; and changes overwritten within their day are in no end-of-day table at all;
* the rows and bytes the denormalized and summary tables save.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow.compute as pc

from mpp.mart import sql
from mpp.mart.oracle import MartOracle
from mpp.scenario.report import CheckResult
from mpp.scenario.rows import difference
from mpp.session import Session
from mpp.text import human_bytes


def _result(ok: bool, name: str, message: str) -> CheckResult:
    return CheckResult(name, ok, f"{'ok' if ok else 'FAILED'}: {message}")


def tables_equal_duckdb(session: Session, oracle: MartOracle) -> list[CheckResult]:
    """Each table of the mart, read whole by mpp, against DuckDB's recomputation."""
    expected = {
        sql.FACT: ("time, user_id, session_id, url_id, status, bytes", oracle.fact),
        sql.SNAPSHOT: ("*", oracle.snapshot), sql.INCREMENTS: ("*", oracle.increments),
        sql.HISTORY: ("*", oracle.history), sql.CHANGES: ("*", oracle.staged_changes),
        sql.DENORM: ("*", oracle.denormalized),
        sql.SUMMARY: ("*", oracle.summary)}
    out = []
    for table, (cols, recompute) in expected.items():
        got = session.sql(f"SELECT {cols} FROM {table}").to_arrow()
        diff = difference(got, recompute())
        out.append(_result(diff is None, f"{table} equals DuckDB",
                           f"{table}: {got.num_rows:,} rows "
                           + ("= DuckDB from the raw data" if diff is None else f"vs DuckDB: {diff}")))
    return out


def rebuilt_from_history(session: Session, days: Sequence[dt.date]) -> CheckResult:
    """The master as of every day, from the SCD2 history, against that day's snapshot."""
    bad = []
    rows = 0
    for day in days:
        rebuilt = session.sql(sql.as_of_history(day)).to_arrow()
        snap = session.sql(sql.as_of_snapshot(day)).to_arrow()
        rows += rebuilt.num_rows
        diff = difference(rebuilt, snap)
        if diff is not None:
            bad.append(f"{day}: {diff.replace('DuckDB', 'the snapshot')}")
    return _result(not bad, "SCD2 rebuild equals the snapshots",
                   f"the master rebuilt from {sql.HISTORY} as of each of {len(days)} days "
                   f"({rows:,} rows) equals that day's snapshot" if not bad else "; ".join(bad))


def rebuilt_from_increments(session: Session, oracle: MartOracle,
                            days: Sequence[dt.date]) -> tuple[CheckResult, str]:
    """The notes' caveat: the increments alone cannot restore the master. Their rebuild keeps
    every user deleted since the first day (no tombstone is extracted); apart from those it
    equals the snapshot. The check: mpp's stale rows per day are DuckDB's count of deletes."""
    stale_want = oracle.stale_after_deletes()
    stale_got: dict[dt.date, int] = {}
    problems = []
    for day in days:
        rebuilt = session.sql(sql.as_of_increments(day)).to_arrow()
        snap = session.sql(sql.as_of_snapshot(day)).to_arrow()
        present = pc.is_in(rebuilt["user_id"], snap["user_id"])
        stale_got[day] = rebuilt.num_rows - pc.sum(present).as_py()
        diff = difference(rebuilt.filter(present), snap)
        if diff is not None:
            problems.append(f"{day}: apart from deleted users: {diff}")
    ok = stale_got == {d: stale_want[d] for d in days} and not problems
    last = days[-1]
    message = (f"rebuilt from {sql.INCREMENTS} alone, the master keeps deleted users: "
               f"{', '.join(f'{d:%m-%d} {n}' for d, n in stale_got.items())} "
               f"({'=' if stale_got == {d: stale_want[d] for d in days} else 'vs'} DuckDB's "
               f"deletes since {days[0]}); otherwise equal to the snapshot")
    finding = (f"increments alone (no tombstones): as of {last} the rebuilt master holds "
               f"{stale_got[last]:,} deleted users the master no longer has")
    return _result(ok, "increments rebuild misses exactly the deletions",
                   message if not problems else "; ".join(problems)), finding


def _size(session: Session, table: str) -> tuple[int, int]:
    st = session.catalog.table(table).stats
    return st.row_count, st.total_bytes


def size_findings(session: Session) -> list[str]:
    """Rows and bytes of the fact, denormalized and summary tables, and what each saves."""
    fact_rows, fact_bytes = _size(session, sql.FACT)
    out = [f"{sql.FACT}: {fact_rows:,} rows, {human_bytes(fact_bytes)}"]
    for table in (sql.DENORM, sql.SUMMARY):
        rows, size = _size(session, table)
        out.append(f"{table}: {rows:,} rows ({rows / max(1, fact_rows):.1%} of the fact's), "
                   f"{human_bytes(size)} ({size / max(1, fact_bytes):.1%}; "
                   f"{human_bytes(fact_bytes - size)} saved)")
    return out


def final_checks(session: Session, oracle: MartOracle,
                 days: Sequence[dt.date]) -> tuple[list[CheckResult], list[str]]:
    """Every final check, and the findings the report prints beside them."""
    checks = tables_equal_duckdb(session, oracle)
    checks.append(rebuilt_from_history(session, days))
    caveat, finding = rebuilt_from_increments(session, oracle, days)
    checks.append(caveat)
    lost = oracle.overwritten_within_day()
    findings = [*size_findings(session), finding,
                f"changes within one day: {lost:,} changes were replaced by a later change of "
                f"the same user on the same day; they are in the change log only (no daily "
                f"snapshot, history or increment holds them)"]
    return checks, findings

