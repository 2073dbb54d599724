"""The source notes' chapter 3-3 end to end: a data mart built from raw files, day by day.

:func:`run_mart` takes a generated data lake (the scenario's ``[data]`` in CSV: one access-log
CSV file per day, the users and urls CSVs) and a new warehouse folder, and runs:

1. set-up: the mart's tables created empty (the fact partitioned by ``day(time)``), the users
   master table loaded into MariaDB (SQLite where none is reachable), urls registered;
2. per day: the day's CSV registered; the fact load (``INSERT INTO ... SELECT``, partition
   overwrite), on ``failed_day`` first a load that fails before its commit, on ``reload_day``
   the load a second time; the day's master changes applied in the database; the master
   registered as it now is (the extract); the snapshot (INSERT, partition overwrite); the
   increments (changed rows only); the SCD2 history (staging by CREATE OR REPLACE, then MERGE);
3. the denormalized and summary tables (CREATE OR REPLACE TABLE AS: the notes' replace);
4. checks: every table against DuckDB recomputing it from the raw data
   (:class:`~mpp.mart.oracle.MartOracle`); the master as of each day rebuilt from the SCD2
   history equals that day's snapshot; a rebuild from the increments alone keeps the deleted
   users (the notes' caveat), as many as DuckDB counts.

Every step is measured (:class:`~mpp.mart.steps.StepRow`): time, rows, and the table's rows,
bytes, files and snapshots right after it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from mpp.catalog import Catalog
from mpp.catalog.files_source import register_files
from mpp.config import Settings
from mpp.errors import MppError, ScenarioError
from mpp.mart import sql
from mpp.mart.checks import final_checks
from mpp.mart.master import ChangeGenerator, MasterDb
from mpp.mart.oracle import MartOracle
from mpp.mart.spec import MartSpec
from mpp.mart.steps import StepRow
from mpp.scenario.report import CheckResult
from mpp.session import Session
from mpp.storage.base import StorageFormat
from mpp.storage.files import local_path
from mpp.text import plural

FAILED_LOAD = {"write.fail_task": 0, "write.target_file_bytes": 64 * 1024}
"""The failed load: write task 0 fails after writing its file, several files being written."""


@dataclass(frozen=True, slots=True)
class MartResult:
    """What one pipeline run did: where the master was, the steps, the checks, findings."""

    master: str
    steps: tuple[StepRow, ...]
    checks: tuple[CheckResult, ...]
    findings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form (report.json's ``mart``)."""
        return {"master": self.master, "steps": [s.as_dict() for s in self.steps],
                "findings": list(self.findings)}


def lake_days(lake: Catalog) -> dict[dt.date, Path]:
    """The lake's access-log folders by day (``date=YYYY-MM-DD``, one CSV file each when the
    data has one fragment per day); ScenarioError unless access_log is CSV."""
    info = lake.table("access_log")
    if info.format is not StorageFormat.CSV:
        raise ScenarioError(f"the data mart loads raw CSV files, but access_log is "
                            f"{info.format.value}: set [data] format = \"csv\"")
    out: dict[dt.date, Path] = {}
    for f in lake.fragments("access_log"):
        out[dict(f.partition)["date"]] = Path(local_path(f.uri) or f.uri).parent
    return dict(sorted(out.items()))


def _csv_file(lake: Catalog, table: str) -> Path:
    (frag,) = lake.fragments(table)[:1]
    return Path(local_path(frag.uri) or frag.uri)


class _Pipeline:
    """One run: the session on the mart's warehouse, the master database, the steps."""

    def __init__(self, spec: MartSpec, lake: Catalog, warehouse: Path, cluster: Any):
        self.spec = spec
        self.lake = lake
        self.folder = warehouse
        self.days = lake_days(lake)
        self.catalog = Catalog.open(warehouse, create=True)
        import mpp.optimizer  # noqa: F401  (registers the optimizer switches)

        self.session = Session(self.catalog, cluster,
                               Settings({"write.target_file_bytes": spec.target_file_bytes}))
        self.oracle = MartOracle(list(self.days.values()), _csv_file(lake, "urls"),
                                 min(self.days), max(self.days))
        self.raw_rows = self.oracle.rows_per_day(list(self.days))
        self.generator = ChangeGenerator(spec.seed, spec.changes)
        self.change_files: list[Path] = []
        self.steps: list[StepRow] = []
        self.checks: list[CheckResult] = []
        self.loaded: list[dt.date] = []
        self.db: MasterDb | None = None

    # -- measuring -------------------------------------------------------------------------
    def measure(self, table: str) -> tuple[int, int, int, int]:
        """(rows, bytes, files, snapshots) of ``table`` now, from the catalog."""
        st = self.catalog.table(table).stats
        return st.row_count, st.total_bytes, st.fragment_count, len(self.catalog.snapshots(table))

    def step(self, day: dt.date | None, name: str, table: str, run: Callable[[], int | None],
             *, note: str | Callable[[], str] = "", iceberg: bool = True) -> None:
        """Run one step, time it, and record it with the table's measures after it."""
        start = time.perf_counter()
        rows = run()
        seconds = time.perf_counter() - start
        after = self.measure(table) if iceberg else (None, None, None, None)
        self.steps.append(StepRow(f"{day:%m-%d}" if day else "", name, table, seconds, rows,
                                  *after, note=note() if callable(note) else note))

    def write(self, day: dt.date | None, name: str, table: str, text: str,
              settings: Mapping[str, Any] | None = None) -> None:
        """One write statement as a step; its ``rows`` are the statement's count."""
        self.step(day, name, table,
                  lambda: int(self.session.sql(text, settings=settings).to_arrow()["rows"][0]
                              .as_py()))

    # -- the steps -------------------------------------------------------------------------
    def set_up(self) -> None:
        """Empty tables, the master's initial load, the urls dimension registered."""
        for table, ddl in sql.CREATE.items():
            self.step(None, "CREATE TABLE", table, lambda ddl=ddl: (self.session.sql(ddl), 0)[1])
        self.db = MasterDb.open(self.spec.users_master, self.folder / "master")
        users = pcsv.read_csv(_csv_file(self.lake, "users"), convert_options=pcsv.ConvertOptions(
            column_types=self.lake.table("users").schema))
        self.step(None, "master: initial load", "users (master)",
                  lambda: self.apply(self.generator.initial(users), "initial"),
                  note=self.db.describe(), iceberg=False)
        self.step(None, "register urls CSV", sql.URLS,
                  lambda: register_files(self.catalog, sql.URLS,
                                         str(_csv_file(self.lake, "urls")), "csv").stats.row_count)

    def apply(self, changes: pa.Table, name: str) -> int:
        """Apply changes to the master database and keep them in the change log files."""
        assert self.db is not None
        self.db.apply(changes)
        path = self.folder / "changes" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pcsv.write_csv(changes, path)
        self.change_files.append(path)
        return changes.num_rows

    def day(self, n: int, day: dt.date) -> None:
        """Every step of one day."""
        assert self.db is not None
        self.step(day, "register raw CSV", sql.raw_table(day),
                  lambda: register_files(self.catalog, sql.raw_table(day),
                                         str(self.days[day]), "csv").stats.row_count)
        if n == self.spec.failed_day:
            self.failed_load(day)
        self.write(day, "load fact (INSERT, overwrite)", sql.FACT, sql.load_fact(day),
                   sql.OVERWRITE)
        self.loaded.append(day)
        self.check_fact(day, "loaded")
        if n == self.spec.reload_day:
            self.write(day, "load fact again (same day)", sql.FACT, sql.load_fact(day),
                       sql.OVERWRITE)
            self.check_fact(day, "loaded twice")
        changes = self.generator.day(day)
        ops = changes.column("op").to_pylist()
        self.step(day, "master changes", "users (master)",
                  lambda: self.apply(changes, f"{day}"), iceberg=False,
                  note=", ".join(f"{ops.count(o)} {o}s" for o in ("insert", "update", "delete")))
        self.step(day, "extract: register master", sql.MASTER,
                  lambda: self.db.register(self.catalog, sql.MASTER).stats.row_count,
                  iceberg=False)
        self.write(day, "snapshot (INSERT, overwrite)", sql.SNAPSHOT, sql.snapshot(day),
                   sql.OVERWRITE)
        self.write(day, "increments (INSERT, overwrite)", sql.INCREMENTS,
                   sql.increments(day, first=n == 1), sql.OVERWRITE)
        self.write(day, "stage changes (CREATE OR REPLACE)", sql.CHANGES, sql.STAGE_CHANGES)
        self.write(day, "SCD2 history (MERGE)", sql.HISTORY, sql.merge_history(day))

    def failed_load(self, day: dt.date) -> None:
        """The day's load failing before its commit: the fact table stays exactly as it was
        (rows, files, snapshots) and no file of the failed load is left in its folder."""
        before = self.measure(sql.FACT)
        error = "no error"

        def run() -> None:
            nonlocal error
            try:
                self.session.sql(sql.load_fact(day), settings={**sql.OVERWRITE, **FAILED_LOAD})
            except MppError as exc:  # "<file>: injected failure ...": the file is a detail
                error = str(exc).splitlines()[0].rsplit(".parquet: ", 1)[-1]

        self.step(day, "load fact, fails before commit", sql.FACT, run,
                  note=lambda: f"failed: {error}")
        after = self.measure(sql.FACT)
        left = self.catalog.clean([sql.FACT], dry_run=True).orphans
        ok = error != "no error" and before == after and not left
        self.checks.append(CheckResult(
            f"failed load of {day} left access_log as it was", ok,
            f"{'ok' if ok else 'FAILED'}: the load of {day} failed before its commit "
            f"({error}); access_log {'unchanged' if before == after else 'CHANGED'} "
            f"({before[0]:,} rows, {before[2]} files, {before[3]} snapshots), "
            f"{len(left)} files of the failed load left"))

    def check_fact(self, day: dt.date, how: str) -> None:
        """Rows per day of access_log equal DuckDB's count of the loaded days' CSV rows."""
        got = self.session.sql(sql.FACT_ROWS_PER_DAY).to_arrow().to_pylist()
        mpp_rows = {r["day"]: r["n"] for r in got}
        want = {d: self.raw_rows[d] for d in self.loaded}
        ok = mpp_rows == want
        self.checks.append(CheckResult(
            f"access_log after {day} {how} equals DuckDB", ok,
            f"{'ok' if ok else 'FAILED'}: access_log after {day} {how}: "
            f"{sum(mpp_rows.values()):,} rows in {plural(len(mpp_rows), 'day')}"
            + (" = " if ok else f" vs {want} from ")
            + f"DuckDB over the raw CSV files of {plural(len(want), 'day')}"))

    def finish(self) -> None:
        """The denormalized and summary tables, then the checks of every table."""
        self.write(None, "denormalize (CREATE OR REPLACE AS)", sql.DENORM, sql.DENORMALIZE)
        self.write(None, "summarize (CREATE OR REPLACE AS)", sql.SUMMARY, sql.SUMMARIZE)
        self.oracle.read_changes(self.change_files)

    def close(self) -> None:
        """Close DuckDB and drop the run's own MySQL database."""
        self.oracle.close()
        if self.db is not None:
            self.db.close()


def run_mart(spec: MartSpec, *, lake: str | Path, warehouse: str | Path,
             cluster: Any, progress: bool = False) -> MartResult:
    """Build the data mart from the data lake at ``lake`` into the new warehouse
    ``warehouse`` on ``cluster``, checking every table against DuckDB (see the module doc);
    ``progress`` shows a bar of the days."""
    from tqdm import tqdm

    p = _Pipeline(spec, Catalog.open(lake), Path(warehouse), cluster)
    try:
        p.set_up()
        for n, day in enumerate(tqdm(p.days, desc="data mart", unit="day",
                                     disable=not progress), start=1):
            p.day(n, day)
        p.finish()
        checks, findings = final_checks(p.session, p.oracle, list(p.days))
        assert p.db is not None
        return MartResult(p.db.describe(), tuple(p.steps), (*p.checks, *checks),
                          tuple(findings))
    finally:
        p.close()
