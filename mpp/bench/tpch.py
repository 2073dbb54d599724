"""``mpp bench tpch``: the 22 TPC-H queries on mpp and DuckDB over the same files.

The warehouse is one ``mpp datagen --dataset tpch`` made (or this command makes it, at
``--scale-factor``). The queries are the package's own
(:func:`mpp.datagen.tpch_queries.load_queries`: the specification's text in the Trino dialect). Every query mpp plans runs on one LocalCluster
(``workers`` x ``threads``), then on DuckDB in this process (:func:`mpp.oracle.run_oracle`);
each engine runs it once untimed (imports, file cache), then ``repeat`` timed runs: the median
wall time is reported, with the peak resident memory of every process (this one plus the
cluster's workers, :class:`mpp.bench.memory.PeakMemory`) and where mpp's time went (the stage
whose tasks were busy longest). Results are checked against DuckDB's. A query mpp cannot plan
yet is listed with the construct it stops at.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpp.bench.memory import PeakMemory
from mpp.datagen.tpch_queries import load_queries
from mpp.errors import MppError, SqlError
from mpp.text import plural

GiB = 1024**3


@dataclass(frozen=True, slots=True)
class TpchRun:
    """One TPC-H query on both engines (times None when mpp did not run it)."""

    query: str
    mpp_seconds: float | None
    duckdb_seconds: float | None
    mpp_peak_bytes: int = 0
    duckdb_peak_bytes: int = 0
    rows: int = 0
    matches_duckdb: bool | None = None
    note: str = ""  # where mpp's time went, or why it did not run

    @property
    def ratio(self) -> float | None:
        """mpp's time over DuckDB's."""
        if self.mpp_seconds is None or not self.duckdb_seconds:
            return None
        return self.mpp_seconds / self.duckdb_seconds


def _timed(run: Any, repeat: int) -> tuple[Any, list[PeakMemory]]:
    """One untimed warm-up, then ``repeat`` measured runs: the last result, the measurements."""
    out = run()
    mems = []
    for _ in range(repeat):
        with PeakMemory() as mem:
            out = run()
        mems.append(mem)
    return out, mems


def slowest_stage(stats: Any) -> str:
    """The stage whose tasks were busy longest: ``stage 3 (stage3-join-partial-agg, 8 tasks)
    2.10 s busy of 3.40 s``; the sum over all stages last."""
    busy: dict[int, float] = {}
    for r in stats.tasks:
        busy[r.stage] = busy.get(r.stage, 0.0) + r.duration
    if not busy:
        return "no task records"
    stage = max(busy, key=lambda s: busy[s])
    groups = stats.stages.get(stage, [])
    names = ", ".join(f"{g.name}, {plural(g.tasks, 'task')}" for g in groups)
    return (f"slowest stage {stage} ({names}) {busy[stage]:.2f} s busy of "
            f"{sum(busy.values()):.2f} s in {len(busy)} stages")


def bench_tpch(warehouse: str | Path, *, queries: Sequence[str] = (), workers: int = 2,
               threads: int = 1, repeat: int = 1, settings: dict[str, Any] | None = None,
               cluster: Any = None) -> list[TpchRun]:
    """Run the TPC-H ``queries`` (default: all 22) on mpp and DuckDB;
    on ``cluster`` if given (an :class:`mpp.execution.cluster.Cluster`), else a new one."""
    import mpp
    from mpp.execution.cluster import ClusterSpec
    from mpp.oracle import run_oracle
    from mpp.scenario.rows import difference

    if repeat < 1:
        raise MppError(f"repeat must be at least 1, got {repeat}")
    texts = load_queries()
    unknown = [q for q in queries if q not in texts]
    if unknown:
        raise MppError(f"unknown TPC-H query {unknown[0]!r}; choose from q01 .. q22")
    chosen = list(queries) or list(texts)
    spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
    runs: list[TpchRun] = []
    with mpp.connect(warehouse, cluster=cluster or spec, settings=settings) as session:
        for name in chosen:
            sql = texts[name]
            try:
                session.explain(sql, "physical")
            except SqlError as err:
                runs.append(TpchRun(name, None, None, note=f"not supported yet: {err}"))
                continue
            results: list[Any] = []

            def on_mpp(sql: str = sql, results: list[Any] = results) -> Any:
                results.append(session.sql(sql))
                return results[-1].to_arrow()

            table, mems = _timed(on_mpp, repeat)
            timed = sorted((r.stats for r in results[1:]), key=lambda st: st.wall_seconds)
            stats = timed[(len(timed) - 1) // 2]
            expected, dmems = _timed(lambda sql=sql: run_oracle(sql, session.catalog), repeat)
            runs.append(TpchRun(
                name, statistics.median(m.wall_seconds for m in mems),
                statistics.median(m.wall_seconds for m in dmems),
                max(m.peak_bytes for m in mems), max(m.peak_bytes for m in dmems),
                table.num_rows, difference(table, expected, rel=1e-6) is None,
                slowest_stage(stats)))
    return runs


def format_runs(runs: Sequence[TpchRun]) -> str:
    """A terminal table: per query mpp and DuckDB time, ratio, peak memory, where the time
    went; then the totals over the queries both ran and the worst ratio."""
    lines = [f"{'query':5} {'mpp s':>8} {'duckdb s':>8} {'ratio':>6} {'mpp GiB':>7} "
             f"{'ddb GiB':>7} {'rows':>5} {'= duckdb':>8}  where mpp's time went"]
    for r in runs:
        if r.mpp_seconds is None:
            lines.append(f"{r.query:5} {'-':>8} {'-':>8} {'-':>6} {'-':>7} {'-':>7} {'-':>5} "
                         f"{'-':>8}  {r.note}")
            continue
        same = "yes" if r.matches_duckdb else "NO"
        lines.append(f"{r.query:5} {r.mpp_seconds:8.2f} {r.duckdb_seconds or 0:8.2f} "
                     f"{r.ratio or 0:6.1f} {r.mpp_peak_bytes / GiB:7.2f} "
                     f"{r.duckdb_peak_bytes / GiB:7.2f} {r.rows:5} {same:>8}  {r.note}")
    ran = [r for r in runs if r.mpp_seconds is not None]
    if ran:
        mpp_total = sum(r.mpp_seconds or 0 for r in ran)
        ddb_total = sum(r.duckdb_seconds or 0 for r in ran)
        worst = max(ran, key=lambda r: r.ratio or 0)
        lines.append(f"total over {len(ran)} queries: mpp {mpp_total:.2f} s, DuckDB "
                     f"{ddb_total:.2f} s, ratio {mpp_total / ddb_total:.1f} (target <= 3); "
                     f"worst {worst.query} at {worst.ratio or 0:.1f}x (target <= 10)")
    lines.append(f"{len(runs) - len(ran)} of {len(runs)} queries not run (see above)")
    return "\n".join(lines)
