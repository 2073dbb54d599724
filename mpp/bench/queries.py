"""``mpp bench queries``: the seed's queries on mpp, DuckDB and dask.dataframe, same files.

Q0 ``SELECT date, count(*) FROM access_log GROUP BY date`` and Q1 ``SELECT date,
count(DISTINCT user_id) FROM access_log GROUP BY date``, and two window queries (issue 14's
benchmark): W1, each user's first visit (``row_number() OVER (PARTITION BY user_id ORDER BY
time) = 1``), and W2, a running total of bytes per day. They run, one engine at a time, on

* mpp: the session's physical plan on a fresh LocalCluster (``workers`` x ``threads``);
* DuckDB: the oracle (:func:`mpp.oracle.run_oracle`) over the catalog's files, in process;
* dask.dataframe: its own idiom, ``dd.read_parquet(files).groupby("date").size()`` and
  ``.user_id.nunique()``, on a fresh LocalCluster of the same shape (Q0 and Q1 only: the
  window queries have no dask.dataframe idiom of the same meaning, so dask skips them).

Every engine runs each query once untimed first (imports, file cache, allocator: what a
warehouse that has been up a while has already paid), then ``repeat`` timed runs. Each reports
wall time (the query only; cluster start-up excluded; the median of the timed runs) and peak
resident memory of every process involved (this one plus its children: the cluster's
workers), sampled by :class:`mpp.bench.memory.PeakMemory`. Results are cross-checked against
DuckDB's.
"""

from __future__ import annotations

import importlib
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mpp.bench.dedup import QUERIES as DEDUP_QUERIES
from mpp.bench.memory import PeakMemory
from mpp.catalog import Catalog
from mpp.errors import MppError
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.storage.files import local_path

QUERIES: dict[str, str] = {
    "q0": "SELECT date, count(*) FROM access_log GROUP BY date",
    "q1": "SELECT date, count(DISTINCT user_id) FROM access_log GROUP BY date",
    # Each user's first visit. The row count (one per user) is compared, and a checksum of
    # (user_id, time) over them: ties on time may pick a different first row but not change it.
    "w1": "SELECT count(*) AS users, sum(user_id) AS ids, "
          "sum(CAST(to_unixtime(time) AS bigint)) AS times FROM (SELECT user_id, time, row_number() OVER "
          "(PARTITION BY user_id ORDER BY time) AS rn FROM access_log) t WHERE rn = 1",
    # A running total of bytes per day (the frame includes ties on time), summarised per day.
    "w2": "SELECT date, max(running) AS total, sum(running) AS checksum FROM (SELECT date, "
          "sum(bytes) OVER (PARTITION BY date ORDER BY time) AS running FROM access_log) t "
          "GROUP BY date",
    # Issue 17's joins. J1: the fact table shrunk to its last week before joining the 5M-row
    # users dimension (scenarios/queries/early_filter.sql), requests per country.
    "j1": "SELECT b.country, count(*) AS requests FROM (SELECT user_id FROM access_log "
          "WHERE time >= TIMESTAMP '2017-01-24 00:00:00') a "
          "JOIN users b ON b.user_id = a.user_id GROUP BY b.country",
    # J2: the 10K-row urls lookup, requests per category.
    "j2": "SELECT r.category, count(*) AS requests FROM access_log a "
          "JOIN urls r ON r.url_id = a.url_id GROUP BY r.category",
    # J3: the source notes' data-mart query (3-3; scenarios/queries/mart_basic.sql): the
    # fact table joined with sessions, visits per day and days since the session began.
    "j3": "SELECT date_trunc('day', a.time) AS time, date_diff('day', b.min_time, a.time) "
          "AS days, count(*) AS count FROM (SELECT time, session_id FROM access_log "
          "WHERE time BETWEEN TIMESTAMP '2017-01-01' AND TIMESTAMP '2018-01-01') a "
          "JOIN sessions b ON b.session_id = a.session_id GROUP BY 1, 2",
}
QUERIES.update(DEDUP_QUERIES)  # d1, d2: de-duplication on events_dups (mpp bench dedup)
DASK_QUERIES = ("q0", "q1")  # the queries dask.dataframe has an idiom for
ENGINES = ("mpp", "duckdb", "dask")
GiB = 1024**3


@dataclass(frozen=True, slots=True)
class BenchRun:
    """One engine running one query."""

    query: str
    engine: str
    wall_seconds: float
    peak_bytes: int
    rows: int
    matches_duckdb: bool | None  # None for DuckDB itself
    note: str = ""


def _canonical(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of Python values (column names and int widths ignored)."""
    cols = [pc.cast(c, pa.date32()) if pa.types.is_timestamp(c.type) else c
            for c in table.columns]
    return sorted(tuple(r.values()) for r in pa.table(cols, names=table.column_names).to_pylist())


def _files(catalog: Catalog) -> list[str]:
    frags = catalog.fragments(catalog.table("access_log"))
    return [local_path(f.uri) or f.uri for f in frags]


Query = Callable[[], pa.Table]


def _timed(run: Query, repeat: int) -> tuple[pa.Table, list[PeakMemory]]:
    """One untimed warm-up run of ``run`` (imports, file cache, allocator), then ``repeat``
    measured runs; the last result and every run's measurements."""
    table = run()
    mems = []
    for _ in range(repeat):
        with PeakMemory() as mem:
            table = run()
        mems.append(mem)
    return table, mems


def _run_mpp(warehouse: str, q: str, spec: ClusterSpec, settings: dict[str, Any] | None,
             repeat: int) -> tuple[pa.Table, list[PeakMemory], str]:
    import mpp
    from mpp.metrics.summary import time_profile

    with mpp.connect(warehouse, cluster=spec, settings=settings) as session:
        results = []

        def run() -> pa.Table:
            results.append(session.sql(QUERIES[q]))
            return results[-1].to_arrow()

        table, mems = _timed(run, repeat)
    # The profile of the timed run whose wall time is the (lower) median.
    timed = sorted((r.stats for r in results[1:]), key=lambda st: st.wall_seconds)
    stats = timed[(len(timed) - 1) // 2]
    tasks = " + ".join(f"{s.tasks}" for s in stats.plan.stages)
    profile = time_profile(stats, spec.workers * spec.threads_per_worker)
    return table, mems, f"stage tasks {tasks}; {profile}"


def _run_duckdb(warehouse: str, q: str, spec: ClusterSpec, settings: dict[str, Any] | None,
                repeat: int) -> tuple[pa.Table, list[PeakMemory], str]:
    from mpp.oracle import run_oracle

    catalog = Catalog.open(warehouse)
    table, mems = _timed(lambda: run_oracle(QUERIES[q], catalog), repeat)
    return table, mems, f"in process, {os.cpu_count()} threads"


def _run_dask(warehouse: str, q: str, spec: ClusterSpec, settings: dict[str, Any] | None,
              repeat: int) -> tuple[pa.Table, list[PeakMemory], str]:
    import dask.dataframe as dd

    files = _files(Catalog.open(warehouse))
    # The files sit in hive-style date=... folders; the date column is in the files already.
    options = {"dataset": {"partitioning": None}}

    def run() -> pa.Table:
        if q == "q0":
            df = dd.read_parquet(files, columns=["date"], **options)
            out = df.groupby("date").size().compute()
        else:
            df = dd.read_parquet(files, columns=["date", "user_id"], **options)
            out = df.groupby("date").user_id.nunique().compute()
        return pa.Table.from_pandas(out.reset_index(), preserve_index=False)

    # dask's own defaults (its root-task queuing helps its Q1: 22 s vs 32 s with mpp's
    # worker-saturation inf).
    with Cluster(spec) as cluster:
        cluster.client.run(importlib.import_module, "dask.dataframe")
        cluster.client.run(importlib.import_module, "pyarrow.parquet")
        table, mems = _timed(run, repeat)
    return table, mems, "dd.read_parquet + groupby idiom"


_RUNNERS: dict[str, Callable[..., tuple[pa.Table, list[PeakMemory], str]]] = {
    "mpp": _run_mpp, "duckdb": _run_duckdb, "dask": _run_dask,
}


def bench_queries(warehouse: str, *, queries: Sequence[str] = ("q0", "q1"),
                  engines: Sequence[str] = ENGINES, workers: int = 2, threads: int = 1,
                  settings: dict[str, Any] | None = None, repeat: int = 1) -> list[BenchRun]:
    """Run every query on every engine, one at a time; DuckDB's result is the reference.

    Each engine runs each query once untimed (warm-up), then ``repeat`` timed runs: the
    reported wall time is their median, the peak memory their largest.
    """
    if repeat < 1:
        raise MppError(f"repeat must be at least 1, got {repeat}")
    for q in queries:
        if q not in QUERIES:
            raise MppError(f"unknown benchmark query {q!r}; choose from {', '.join(QUERIES)}")
    for e in engines:
        if e not in ENGINES:
            raise MppError(f"unknown engine {e!r}; choose from {', '.join(ENGINES)}")
    spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
    results = {(e, q): _RUNNERS[e](warehouse, q, spec, settings, repeat)
               for e in engines for q in queries if e != "dask" or q in DASK_QUERIES}
    reference = {q: _canonical(t) for (e, q), (t, _, _) in results.items() if e == "duckdb"}
    runs = []
    for (engine, q), (table, mems, note) in results.items():
        ok = None if engine == "duckdb" or q not in reference else (
            _canonical(table) == reference[q])
        walls = sorted(m.wall_seconds for m in mems)
        if len(walls) > 1:
            note = f"median of {len(walls)} ({walls[0]:.2f}-{walls[-1]:.2f} s); {note}"
        runs.append(BenchRun(q, engine, statistics.median(walls),
                             max(m.peak_bytes for m in mems), table.num_rows, ok, note))
    return sorted(runs, key=lambda r: (r.query, ENGINES.index(r.engine)))


def describe_warehouse(warehouse: str) -> str:
    """One line naming what the queries ran on: the fact table's rows and files and the users
    dimension's rows (its size is what count(DISTINCT user_id) works against), from the
    catalog's statistics."""
    catalog = Catalog.open(warehouse)
    log = catalog.table("access_log").stats
    parts = [f"access_log {log.row_count:,} rows in {log.fragment_count:,} files"]
    if "users" in catalog.tables():
        parts.append(f"users {catalog.table('users').stats.row_count:,} rows")
    return f"warehouse {warehouse}: " + ", ".join(parts)


def format_runs(runs: Sequence[BenchRun]) -> str:
    """A terminal table of the runs, with each engine's time relative to mpp's."""
    mpp_wall = {r.query: r.wall_seconds for r in runs if r.engine == "mpp"}
    lines = [f"{'query':5} {'engine':7} {'wall s':>8} {'x mpp':>6} {'peak GiB':>9} {'rows':>5} "
             f"{'= duckdb':>8}  note"]
    for r in runs:
        rel = r.wall_seconds / mpp_wall[r.query] if mpp_wall.get(r.query) else float("nan")
        same = "-" if r.matches_duckdb is None else ("yes" if r.matches_duckdb else "NO")
        lines.append(f"{r.query:5} {r.engine:7} {r.wall_seconds:8.2f} {rel:6.2f} "
                     f"{r.peak_bytes / GiB:9.2f} {r.rows:5} {same:>8}  {r.note}")
    return "\n".join(lines)
