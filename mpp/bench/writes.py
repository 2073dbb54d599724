"""``mpp bench writes``: issue 15's write benchmark, mpp and DuckDB side by side.

Three writes, each timed (wall time, peak resident memory of this process and its children,
:class:`mpp.bench.memory.PeakMemory`), on mpp first, then on DuckDB doing the same on its own
storage (one database file, ``duckdb.db`` in the work directory):

1. ``fact``: INSERT of one day into the fact table. The work directory holds a generated
   warehouse (``access_log`` of ``fact_rows`` rows over :data:`DAYS` days, no hot day, so a day
   is ``fact_rows / 33``: 3M rows at 100M). ``fact`` is the first 32 days, an Iceberg table
   partitioned by ``day(time)`` (CREATE TABLE, then INSERT of 32 days, not timed); the timed
   statement is ``INSERT INTO fact SELECT * FROM access_log WHERE date = <day 33>``. DuckDB: the same
   CREATE and INSERT, into a table of its own, reading the same Parquet files.
2. ``dim``: MERGE of ``changed`` users into a ``dim_rows`` users dimension. ``dim`` is a copy
   of the generated ``users``; ``changes`` holds half of the changed users as updates (every
   k-th existing user, country ``ZZ`` and another plan) and half as new users; the timed
   statement is ``MERGE INTO dim USING changes`` (update when matched, insert when not).
   DuckDB (2.x has MERGE INTO): the same statement on its copies of both tables.
3. ``optimize``: ``ALTER TABLE small EXECUTE optimize(...)`` of a table of about
   ``small_files`` small files (one day of access_log written by one CREATE TABLE AS with a
   small ``write.target_file_bytes``). DuckDB has no equivalent: a DuckDB table is row groups
   inside its one database file, not files to combine, so its row shows ``-``.

After each step the table is checked against DuckDB's: the row count and a checksum of every
column (:data:`CHECKSUMS`), computed by DuckDB over mpp's files and over its own table. The
set-up (generation, the CREATE TABLE AS statements) is not timed; the generated warehouse is
kept in the work directory and reused by reruns of the same sizes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mpp.bench.memory import PeakMemory
from mpp.bench.queries import GiB
from mpp.catalog import CATALOG_DB, Catalog
from mpp.errors import KnobError
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.storage.files import local_path

DAYS = 33  # one day of 100M rows is ~3M, the daily load
DUCKDB_FILE = "duckdb.db"
STEPS = ("fact", "dim", "optimize")
MERGE = ("MERGE INTO dim d USING changes c ON d.user_id = c.user_id "
         "WHEN MATCHED THEN UPDATE SET country = c.country, plan = c.plan "
         "WHEN NOT MATCHED THEN INSERT (user_id, created_at, country, plan) "
         "VALUES (c.user_id, c.created_at, c.country, c.plan)")
# The same text runs on DuckDB over mpp's files (mpp.oracle.run_oracle) and on DuckDB's table.
CHECKSUMS = {
    "fact": "SELECT count(*) AS n, sum(user_id) AS users, sum(session_id) AS sessions, "
            "sum(bytes) AS b, sum(url_id * status) AS urls, min(time) AS t0, max(time) AS t1 "
            "FROM {t}",
    "dim": "SELECT count(*) AS n, sum(user_id) AS users, sum(user_id * length(plan)) AS plans, "
           "sum(CASE WHEN country = 'ZZ' THEN user_id ELSE 0 END) AS changed, "
           "min(created_at) AS c0, max(created_at) AS c1 FROM {t}",
}
CHECKSUMS["optimize"] = CHECKSUMS["fact"]
# CREATE TABLE AS partitions by columns only; a day(time) transform needs the columns listed.
FACT_DDL = ("CREATE TABLE fact (time timestamp, date date, user_id bigint, session_id bigint, "
            "url_id integer, status smallint, bytes integer) "
            "WITH (partitioning = ARRAY['day(time)'])")
TABLES = {"fact": "fact", "dim": "dim", "optimize": "small"}
_PLANS = ("free", "basic", "pro", "enterprise")


@dataclass(frozen=True, slots=True)
class WriteRun:
    """One engine running one step's write."""

    step: str
    engine: str
    wall_seconds: float | None  # None: the engine has no such write
    peak_bytes: int | None
    rows: int  # rows of the table after the write
    matches_duckdb: bool | None  # None for DuckDB itself
    note: str = ""


def _files(catalog: Catalog, table: str) -> list[str]:
    return [local_path(f.uri) or f.uri for f in catalog.fragments(catalog.table(table))]


def _last_day(catalog: Catalog) -> str:
    from mpp.oracle import run_oracle

    day = run_oracle("SELECT max(date) AS d FROM access_log", catalog).column(0)[0].as_py()
    return day.isoformat()


def changes_table(dim_rows: int, changed: int, seed: int = 0) -> pa.Table:
    """The MERGE source: ``changed // 2`` updates of existing users (every k-th id, country
    ``ZZ``, the next plan in :data:`_PLANS`) and the rest new users (ids after ``dim_rows``)."""
    updates = min(changed // 2, dim_rows)
    step = max(1, dim_rows // max(updates, 1))
    ids = np.concatenate([np.arange(1, updates * step + 1, step, dtype=np.int64)[:updates],
                          np.arange(dim_rows + 1, dim_rows + 1 + changed - updates,
                                    dtype=np.int64)])
    gen = np.random.default_rng(seed)
    plans = np.array(_PLANS)[gen.integers(0, len(_PLANS), len(ids))]
    start = np.datetime64("2017-01-01", "us")
    return pa.table({
        "user_id": pa.array(ids),
        "created_at": pa.array(start + gen.integers(0, 86_400_000_000, len(ids))
                               .astype("timedelta64[us]")),
        "country": pa.array(np.full(len(ids), "ZZ")),
        "plan": pa.array(plans),
    })


def prepare(workdir: Path, *, fact_rows: int, dim_rows: int, changed: int,
            partitions: int) -> Catalog:
    """The generated warehouse (made once, reused when its sizes match) and ``changes``."""
    from mpp.catalog.write import write_fragment
    from mpp.datagen import DatagenSpec, generate
    from mpp.storage.base import StorageFormat

    if (workdir / CATALOG_DB).exists():
        catalog = Catalog.open(workdir)
        have = (catalog.table("access_log").stats.row_count, catalog.table("users").stats.row_count)
        if have != (fact_rows, dim_rows):
            raise KnobError(f"knob 'warehouse': {workdir} holds access_log / users of "
                            f"{have[0]:,} / {have[1]:,} rows, not {fact_rows:,} / {dim_rows:,};"
                            " use another work directory")
    else:
        spec = DatagenSpec(rows=fact_rows, partitions=partitions, days=DAYS, hot_day=0,
                           users=dim_rows)
        with Cluster(ClusterSpec(dashboard_address=None)) as cluster:
            generate(workdir, spec, client=cluster.client, progress=False)
        catalog = Catalog.open(workdir)
    if "changes" in catalog.tables():
        catalog.drop_table("changes")
    table = changes_table(dim_rows, changed)
    target = catalog.begin_write("changes", table.schema, StorageFormat.PARQUET)
    try:
        catalog.commit_write(target, [write_fragment(target, 0, table)])
    except BaseException:
        catalog.abort_write(target)
        raise
    return catalog


def _measure(run: Callable[[], Any]) -> PeakMemory:
    with PeakMemory() as mem:
        run()
    return mem


def _mpp_steps(workdir: Path, day: str, steps: Sequence[str], small_files: int,
               spec: ClusterSpec) -> dict[str, tuple[PeakMemory, str]]:
    """Set up and time each step on mpp (one session, one LocalCluster)."""
    import mpp

    out = {}
    with mpp.connect(workdir, cluster=spec) as s:
        if "fact" in steps:
            s.sql("DROP TABLE IF EXISTS fact")
            s.sql(FACT_DDL)
            s.sql(f"INSERT INTO fact SELECT * FROM access_log WHERE date < DATE '{day}'")
            insert = f"INSERT INTO fact SELECT * FROM access_log WHERE date = DATE '{day}'"
            mem = _measure(lambda: s.sql(insert))
            out["fact"] = (mem, f"INSERT of {day}")
        if "dim" in steps:
            s.sql("CREATE OR REPLACE TABLE dim AS SELECT * FROM users")
            mem = _measure(lambda: s.sql(MERGE))
            out["dim"] = (mem, "MERGE, copy-on-write")
        if "optimize" in steps:
            day_bytes = sum(f.size_bytes for f in s.catalog.fragments(
                s.catalog.table("access_log")) if str(dict(f.partition).get("date")) == day)
            target = max(1024, day_bytes // small_files)
            s.sql("CREATE OR REPLACE TABLE small AS SELECT * FROM access_log WHERE date = "
                  f"DATE '{day}'", settings={"write.target_file_bytes": target})
            before = len(s.catalog.fragments(s.catalog.table("small")))
            threshold = f"{max(2, 4 * target // 1024)}kB"
            mem = _measure(lambda: s.sql(
                f"ALTER TABLE small EXECUTE optimize(file_size_threshold => '{threshold}')"))
            after = len(s.catalog.fragments(s.catalog.table("small")))
            out["optimize"] = (mem, f"{before:,} files -> {after:,}")
    return out


def _duckdb_steps(workdir: Path, catalog: Catalog, day: str, steps: Sequence[str]
                  ) -> tuple[dict[str, tuple[PeakMemory | None, str]], Any]:
    """Set up and time each step on DuckDB's own tables (its database file); the open
    connection is returned for the checks."""
    import duckdb

    def parquet(table: str) -> str:
        return "read_parquet([" + ", ".join(f"'{p}'" for p in _files(catalog, table)) + "])"

    db = workdir / DUCKDB_FILE
    for leftover in (db, Path(f"{db}.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    out: dict[str, tuple[PeakMemory | None, str]] = {}
    if "fact" in steps:
        log = parquet("access_log")
        con.execute(f"CREATE TABLE fact AS SELECT * FROM {log} WHERE date < DATE '{day}'")
        con.execute("CHECKPOINT")
        insert = f"INSERT INTO fact SELECT * FROM {log} WHERE date = DATE '{day}'"
        out["fact"] = (_measure(lambda: con.execute(insert)), f"INSERT of {day}")
    if "dim" in steps:
        con.execute(f"CREATE TABLE dim AS SELECT * FROM {parquet('users')}")
        con.execute(f"CREATE TABLE changes AS SELECT * FROM {parquet('changes')}")
        con.execute("CHECKPOINT")
        out["dim"] = (_measure(lambda: con.execute(MERGE)), "MERGE INTO")
    if "optimize" in steps:
        con.execute(f"CREATE TABLE small AS SELECT * FROM {parquet('access_log')} "
                    f"WHERE date = DATE '{day}'")
        con.execute("CHECKPOINT")
        out["optimize"] = (None, "no equivalent: a DuckDB table is row groups in one database "
                                 "file, not files to combine (checked against its copy)")
    return out, con


def bench_writes(workdir: str | os.PathLike[str] | None = None, *, fact_rows: int = 100_000_000,
                 dim_rows: int = 5_000_000, changed: int = 100_000, small_files: int = 1_000,
                 partitions: int | None = None, steps: Sequence[str] = STEPS,
                 workers: int = 2, threads: int = 1) -> list[WriteRun]:
    """Run the steps on mpp, then on DuckDB, and check each table after its write against
    DuckDB's (row count and :data:`CHECKSUMS`). ``workdir`` (kept) holds the generated
    warehouse, mpp's tables and DuckDB's database file; without it a temp dir is used and
    deleted."""
    from mpp.oracle import run_oracle

    for step in steps:
        if step not in STEPS:
            raise KnobError(f"knob 'step': unknown step {step!r}; choose from {', '.join(STEPS)}")
    if changed < 2:
        raise KnobError(f"knob 'changed': at least 2 (an update and a new user), got {changed}")
    if small_files < 2:
        raise KnobError(f"knob 'small_files': at least 2, got {small_files}")
    temp = None if workdir else tempfile.mkdtemp(prefix="mpp-bench-writes-")
    where = Path(workdir or temp)  # type: ignore[arg-type]
    try:
        parts = partitions or max(DAYS, min(1_000, fact_rows // 100_000))
        catalog = prepare(where, fact_rows=fact_rows, dim_rows=dim_rows, changed=changed,
                          partitions=parts)
        day = _last_day(catalog)
        spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
        mpp_runs = _mpp_steps(where, day, steps, small_files, spec)
        duck_runs, con = _duckdb_steps(where, Catalog.open(where), day, steps)
        try:
            catalog = Catalog.open(where)
            runs = []
            for step in steps:
                sql = CHECKSUMS[step].format(t=TABLES[step])
                mine = run_oracle(sql, catalog).to_pylist()[0]
                theirs = con.sql(sql).to_arrow_table().to_pylist()[0]
                same = list(mine.values()) == list(theirs.values())
                mem, note = mpp_runs[step]
                runs.append(WriteRun(step, "mpp", mem.wall_seconds, mem.peak_bytes, mine["n"],
                                     same, note))
                dmem, dnote = duck_runs[step]
                runs.append(WriteRun(step, "duckdb", dmem and dmem.wall_seconds,
                                     dmem and dmem.peak_bytes, theirs["n"], None, dnote))
        finally:
            con.close()
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    return runs


def format_runs(runs: Sequence[WriteRun]) -> str:
    """A terminal table: step, engine, wall s, peak GiB, rows after, = duckdb, note."""
    lines = [f"{'step':8} {'engine':7} {'wall s':>8} {'peak GiB':>9} {'rows':>12} "
             f"{'= duckdb':>8}  note"]
    for r in runs:
        wall = "-" if r.wall_seconds is None else f"{r.wall_seconds:.2f}"
        peak = "-" if r.peak_bytes is None else f"{r.peak_bytes / GiB:.2f}"
        same = "-" if r.matches_duckdb is None else ("yes" if r.matches_duckdb else "NO")
        lines.append(f"{r.step:8} {r.engine:7} {wall:>8} {peak:>9} {r.rows:>12,} {same:>8}  "
                     f"{r.note}")
    return "\n".join(lines)
