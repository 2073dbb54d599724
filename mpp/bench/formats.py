"""``mpp bench formats``: the same access_log as CSV, SQLite, Parquet and ORC, side by side.

The seed's pipeline, measured: raw CSV lands in the lake (``mpp datagen --format csv``); a
batch job structures it into columnar tables (``CREATE TABLE ... AS SELECT``, timed); SQLite
holds the same rows as a row-store RDB (same datagen spec, so the same content). Then four
query shapes run on every format: one column, two columns, all columns (aggregated, so the
client does not receive 10M rows) and a selective date filter. Per run: wall time, bytes read,
rows scanned, and fragments skipped by partition/min-max pruning; DuckDB reads the same Parquet
and CSV files as a peer (it cannot read ORC, and its SQLite extension is a download, so those
cells say so). Structuring time is set against the time it saves per query: how many runs of
each query repay the conversion.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mpp.catalog import Catalog
from mpp.datagen import DatagenSpec, generate
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.storage.base import StorageFormat

QUERIES: dict[str, str] = {
    "1 col": "SELECT sum(bytes) AS b FROM {t}",
    "2 cols": "SELECT status, sum(bytes) AS b FROM {t} GROUP BY status",
    "all cols": ("SELECT count(*) AS n, min(time) AS t0, max(date) AS d1, sum(user_id) AS u, "
                 "sum(session_id) AS s, sum(url_id) AS l, sum(status) AS st, sum(bytes) AS b "
                 "FROM {t}"),
    "date filter": "SELECT count(*) AS n, sum(bytes) AS b FROM {t} WHERE date = DATE '{day}'",
}
FORMATS = ("csv", "sqlite", "parquet", "orc")
DUCKDB_CANNOT = {"orc": "DuckDB has no ORC reader",
                 "sqlite": "DuckDB's sqlite extension is a download (offline here)"}


@dataclass(frozen=True, slots=True)
class FormatRun:
    """One engine running one query shape on one format."""

    format: str
    query: str
    engine: str  # "mpp" or "duckdb"
    wall_seconds: float | None  # None: the engine cannot read the format
    bytes_read: int | None = None
    rows_scanned: int | None = None
    fragments: int | None = None  # fragments of the table
    fragments_skipped: int | None = None  # by partition and min/max pruning
    note: str = ""


@dataclass(frozen=True, slots=True)
class FormatsReport:
    """Everything one ``mpp bench formats`` run measured."""

    rows: int
    load: str  # `uptime` load averages during the run
    table_bytes: dict[str, int]  # on-storage size of access_log per format
    structuring_seconds: dict[str, float]  # CSV -> format by CREATE TABLE AS
    runs: list[FormatRun]
    target_file_size: str = "128MB"  # of the structured tables

    def to_json(self) -> str:
        """The report as JSON (the ``--json`` file)."""
        return json.dumps(dataclasses.asdict(self), indent=1)

    def wall(self, fmt: str, query: str, engine: str = "mpp") -> float | None:
        """Wall seconds of one cell (None if it did not run)."""
        return next((r.wall_seconds for r in self.runs
                     if (r.format, r.query, r.engine) == (fmt, query, engine)), None)

    def repay(self, fmt: str, query: str) -> int | None:
        """Runs of ``query`` whose savings over CSV repay structuring into ``fmt``."""
        csv, col = self.wall("csv", query), self.wall(fmt, query)
        cost = self.structuring_seconds.get(fmt)
        if csv is None or col is None or cost is None or csv <= col:
            return None
        return math.ceil(cost / (csv - col))


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _mpp_run(session: Any, fmt: str, query: str, sql: str) -> FormatRun:
    start = time.perf_counter()
    result = session.sql(sql)
    wall = time.perf_counter() - start
    scans = [s.scan for s in result.stats.plan.stages if s.scan is not None]
    total = sum(s.total_fragments for s in scans)
    return FormatRun(fmt, query, "mpp", wall, result.stats.bytes_read, result.stats.rows_read,
                     total, total - sum(len(s.fragments) for s in scans))


def _duckdb_run(catalog: Catalog, table: str, fmt: str, query: str, sql: str) -> FormatRun:
    import duckdb

    from mpp.oracle import duckdb_sql, register_table, sql_type

    if fmt in DUCKDB_CANNOT:
        return FormatRun(fmt, query, "duckdb", None, note=DUCKDB_CANNOT[fmt])
    info = catalog.table(table)
    con = duckdb.connect()
    try:
        register_table(con, info, catalog.fragments(info))  # a view over the same files
        text = duckdb_sql(sql, {table: {f.name: sql_type(f.type) for f in info.schema}})
        start = time.perf_counter()
        con.sql(text).fetch_arrow_table()
        return FormatRun(fmt, query, "duckdb", time.perf_counter() - start)
    finally:
        con.close()


def _spec(rows: int, fmt: StorageFormat, days: int) -> DatagenSpec:
    partitions = max(days, min(1_000, rows // 100_000))
    return DatagenSpec(rows=rows, partitions=partitions, days=days, format=fmt)


def _warehouse(path: str, spec: DatagenSpec, cluster: Cluster,
               log: Callable[[str], None]) -> Catalog:
    """The warehouse at ``path``: reused if it holds access_log with ``spec``'s rows."""
    if os.path.exists(os.path.join(path, "catalog.db")):
        catalog = Catalog.open(path)
        if "access_log" in catalog.tables() and \
                catalog.table("access_log").stats.row_count == spec.rows:
            log(f"reusing {path}")
            return catalog
        shutil.rmtree(path)
    log(f"datagen {spec.rows:,} rows as {spec.format.value} into {path}")
    return generate(path, spec, client=cluster.client, progress=False)


def _prepare(root: str, rows: int, days: int, target: str, cluster: Cluster,
             log: Callable[[str], None]) -> tuple[dict[str, tuple[Catalog, str]], dict[str, float]]:
    """Generate (or reuse) CSV and SQLite warehouses; structure CSV into Parquet and ORC
    (timed; earlier structured tables are dropped first)."""
    from mpp.session import Session

    tables: dict[str, tuple[Catalog, str]] = {}
    for fmt in (StorageFormat.CSV, StorageFormat.SQLITE):
        catalog = _warehouse(os.path.join(root, fmt.value), _spec(rows, fmt, days), cluster, log)
        tables[fmt.value] = (catalog, "access_log")
    csv = tables["csv"][0]
    session = Session(csv, cluster, _settings())
    structuring = {}
    for name in ("parquet", "orc"):
        session.sql(f"DROP TABLE IF EXISTS access_log_{name}")
        ctas = (f"CREATE TABLE access_log_{name} WITH (format = '{name.upper()}', "
                f"partitioned_by = ARRAY['date'], target_file_size = '{target}') "
                "AS SELECT * FROM access_log")
        log(ctas)
        start = time.perf_counter()
        session.sql(ctas)
        structuring[name] = time.perf_counter() - start
        tables[name] = (csv, f"access_log_{name}")
    return tables, structuring


def _settings() -> Any:
    from mpp.config import Settings

    return Settings()


def bench_formats(rows: int = 10_000_000, *, workdir: str | None = None,
                  workers: int = 2, threads: int = 1, days: int = 30,
                  formats: Sequence[str] = FORMATS, target_file_size: str = "128MB",
                  log: Callable[[str], None] = lambda s: None) -> FormatsReport:
    """Generate, structure and query access_log in every format; see the module docstring.

    The target file size is a Trino-style size (``'128MB'``); warehouses in ``workdir`` with
    the same row count are reused, the structured tables are always rebuilt (and timed).
    """
    from mpp.session import Session

    root = workdir or tempfile.mkdtemp(prefix="mpp-bench-formats-")
    try:
        spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
        with Cluster(spec) as cluster:
            tables, structuring = _prepare(root, rows, days, target_file_size, cluster, log)
            day = _spec(rows, StorageFormat.CSV, days).start_date.replace(day=min(days, 20))
            runs: list[FormatRun] = []
            for fmt in formats:
                catalog, table = tables[fmt]
                session = Session(catalog, cluster, _settings())
                for query, text in QUERIES.items():
                    sql = text.format(t=table, day=day.isoformat())
                    log(f"{fmt:8s} {query}")
                    runs.append(_mpp_run(session, fmt, query, sql))
                    runs.append(_duckdb_run(catalog, table, fmt, query, sql))
            sizes = {fmt: tables[fmt][0].table(tables[fmt][1]).stats.total_bytes
                     for fmt in formats}
            return FormatsReport(rows, _load(), sizes, structuring, runs, target_file_size)
    finally:
        if workdir is None:  # a given work directory is kept (reruns reuse its warehouses)
            shutil.rmtree(root, ignore_errors=True)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f} MiB"


def format_report(report: FormatsReport) -> str:
    """The side-by-side table ``mpp bench formats`` prints."""
    head = (f"{'query':12s} {'format':8s} {'mpp s':>8s} {'duckdb s':>9s} {'bytes read':>13s} "
            f"{'rows scanned':>13s} {'fragments':>10s} {'skipped':>8s}  repaid after")
    lines = [f"access_log, {report.rows:,} rows; {report.load}", head, "-" * len(head)]
    by_key = {(r.format, r.query, r.engine): r for r in report.runs}
    for query in QUERIES:
        for fmt in dict.fromkeys(r.format for r in report.runs):
            m, d = by_key.get((fmt, query, "mpp")), by_key.get((fmt, query, "duckdb"))
            if m is None:
                continue
            duck = "n/a" if d is None or d.wall_seconds is None else f"{d.wall_seconds:.3f}"
            repay = report.repay(fmt, query)
            lines.append(
                f"{query:12s} {fmt:8s} {m.wall_seconds or 0:8.3f} {duck:>9s} "
                f"{_mib(m.bytes_read):>13s} {m.rows_scanned or 0:>13,} {m.fragments or 0:>10,} "
                f"{m.fragments_skipped or 0:>8,}  "
                + ("" if repay is None else f"{repay} run(s)"))
    lines.append("")
    lines.append("storage: " + ", ".join(f"{f} {_mib(b)}" for f, b in report.table_bytes.items()))
    lines.append(f"structuring (CSV -> columnar, CREATE TABLE AS, partitioned by date, "
                 f"target_file_size {report.target_file_size}): " + ", ".join(
                     f"{f} {s:.1f} s" for f, s in report.structuring_seconds.items()))
    notes = sorted({r.note for r in report.runs if r.note})
    lines += [f"duckdb n/a: {n}" for n in notes]
    return "\n".join(lines) + "\n"
