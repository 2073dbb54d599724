"""Running a scenario end to end: data, cluster, variants x queries x repeats, checks, report.

    >>> import mpp                                                      # doctest: +SKIP
    >>> outcome = mpp.run_scenario("scenarios/quickstart.toml", scale=0.1)
    >>> outcome.ok, outcome.files["html"]

Steps: validate the spec (nothing runs on an invalid one); start the cluster (or connect to a
scheduler) and print its dashboard link; generate the data or reuse the cached warehouse of the
same data hash (:mod:`mpp.scenario.warehouse`); run every variant x query x repeat inside a Dask
``performance_report``; check each result against DuckDB and the spec's expectations; write the
run folder (report.json, report.html, dask-report.html) and print the terminal summary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from distributed import performance_report
from tqdm import tqdm

from mpp.errors import MppError, ScenarioError
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan
from mpp.scenario import rows
from mpp.scenario.expect import evaluate
from mpp.scenario.report import (
    CheckResult,
    QueryRun,
    RunData,
    environment,
    format_summary,
    query_run,
    write_report,
)
from mpp.scenario.spec import Query, Scenario, Variant, WhatIf, load_scenario
from mpp.scenario.warehouse import Warehouse, prepare
from mpp.session import Result, Session

DASK_REPORT = "dask-report.html"
Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one scenario run produced: its report data, run folder and files."""

    scenario: Scenario
    data: RunData
    folder: Path
    files: dict[str, Path]
    warehouse: Warehouse
    dashboard: str | None = None
    summary: str = ""

    @property
    def ok(self) -> bool:
        """True when every check (oracle and expectations) passed."""
        return self.data.ok

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.data.checks if not c.ok]


@dataclass
class _Oracle:
    """DuckDB's answer per query, computed once and shared by every variant."""

    session: Session
    enabled: bool
    answers: dict[str, pa.Table] = field(default_factory=dict)

    def check(self, query: Query, table: pa.Table) -> str | None:
        if not self.enabled:
            return None
        from mpp.oracle import run_oracle

        if query.name not in self.answers:
            try:
                self.answers[query.name] = run_oracle(query.sql, self.session.catalog)
            except duckdb.Error as exc:  # the check fails; the run goes on
                return f"differs: DuckDB could not run it: {str(exc).splitlines()[0]}"
        diff = rows.result_difference(table, self.answers[query.name], query.sql)
        return "equal" if diff is None else f"differs: {diff}"


def stage_deps(plan: PhysicalPlan) -> dict[int, tuple[int, ...]]:
    """Each stage's upstream stages (the exchanges it reads), from the executed plan."""
    return {s.id: tuple(sorted({e.id for e in s.exchanges})) for s in plan.stages}


def _measure(result: Result) -> dict[str, Any]:
    """Query-level figures of one run for the report (beyond what the task records give)."""
    st = result.stats
    table = result.to_arrow()
    return {"rows_read": st.rows_read, "bytes_read": st.bytes_read,
            "bytes_exchanged": st.bytes_exchanged, "result_checksum": rows.checksum(table),
            "stages": len(st.plan.stages), "client_cpu_s": st.client_cpu_s,
            "worker_cpu_s": st.worker_cpu_s, "graph_tasks": st.graph_tasks}


def run_of(result: Result, *, variant: str = "default", query: str = "query", sql: str = "",
           wall_s: Sequence[float] | None = None, whatif: WhatIf | None = None,
           threads_per_worker: int = 1, oracle: str | None = None,
           transfer_s_per_byte: float | None = None) -> QueryRun:
    """A report's :class:`QueryRun` from one executed query: plan, skew per stage, what-if.

    Notebooks use it to plot and compare queries they ran themselves.
    ``transfer_s_per_byte``: the workers' CPU per byte moved between worker processes, as
    :func:`mpp.execution.transfer.measure_transfer_cost` measured it (kept in the run's
    metrics; the model on the measuring machine charges it per byte that crosses).
    """
    table = result.to_arrow()
    return query_run(
        variant, query, sql=sql, plan=explain_physical(result.stats.plan),
        wall_s=wall_s or [result.stats.wall_seconds], records=result.stats.tasks,
        whatif=whatif, stage_deps=stage_deps(result.stats.plan),
        threads_per_worker=threads_per_worker, result_rows=table.num_rows, oracle=oracle,
        metrics={**_measure(result), **({"transfer_s_per_byte": transfer_s_per_byte}
                                         if transfer_s_per_byte is not None else {})})


def _run_one(session: Session, sc: Scenario, variant: Variant, query: Query, oracle: _Oracle,
             bar: tqdm, transfer_s_per_byte: float | None = None) -> QueryRun:
    """Every repeat of one query under one variant, after ``sc.warmup`` untimed runs; the row
    reports the median repeat (the lower middle for an even count): its wall time, its tasks,
    and the what-if prediction and fit made from those tasks, all from the same repeat."""
    results: list[Result] = []
    for i in range(sc.warmup + sc.repeats):
        bar.set_postfix_str(f"{variant.name}/{query.name}"
                            + (" (warm-up)" if i < sc.warmup else ""))
        try:
            result = session.sql(query.sql, settings=variant.settings_dict())
        except MppError as exc:  # say which query of which scenario, not only what
            raise ScenarioError(f"query {query.name!r} (variant {variant.name!r}): {exc}",
                                file=sc.source) from None
        if i >= sc.warmup:
            results.append(result)
        bar.update()
    walls = [r.stats.wall_seconds for r in results]
    chosen = walls.index(statistics.median_low(walls))
    result = results[chosen]
    # The reported repeat goes last: QueryRun takes wall_s[-1] as the wall of its records.
    walls.append(walls.pop(chosen))
    threads = max(1, session.cluster.total_threads() // session.cluster.worker_count())
    return run_of(result, variant=variant.name, query=query.name, sql=query.sql, wall_s=walls,
                  whatif=sc.whatif, threads_per_worker=threads,
                  oracle=oracle.check(query, result.to_arrow()),
                  transfer_s_per_byte=transfer_s_per_byte)


def _checks(sc: Scenario, runs: Sequence[QueryRun]) -> tuple[CheckResult, ...]:
    """Oracle equality per run (when enabled), then the spec's expectations."""
    out = [CheckResult(f"{r.variant}/{r.query} equals DuckDB", r.oracle == "equal",
                       f"{'ok' if r.oracle == 'equal' else 'FAILED'}: {r.variant}/{r.query} "
                       f"vs DuckDB: {r.oracle}")
           for r in runs if r.oracle is not None]
    return (*out, *evaluate(sc.checks.expect, runs, sc.whatif))


def run_folder(out: str | os.PathLike[str], name: str, started: dt.datetime) -> Path:
    """A new folder ``<out>/<name>-<YYYYmmdd-HHMMSS>`` (suffixed if that exists already)."""
    base = Path(out) / f"{name}-{started:%Y%m%d-%H%M%S}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


def _cluster_spec(sc: Scenario, scheduler: str | None) -> ClusterSpec:
    spec = sc.cluster
    if scheduler:
        return ClusterSpec(scheduler=scheduler, dashboard_address=spec.dashboard_address)
    return spec


def _wait_for_ctrl_c(link: str | None, echo: Echo) -> None:
    echo(f"cluster kept open; dashboard: {link or '(none)'}; press Ctrl-C to stop")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        echo("stopping the cluster")


def _execute(sc: Scenario, cluster: Cluster, wh: Warehouse, folder: Path,
             progress: bool, transfer_s_per_byte: float | None = None) -> tuple[QueryRun, ...]:
    """Every variant x query x repeat, inside a Dask performance report written to ``folder``."""
    from mpp.session import connect

    session = connect(wh.path, cluster=cluster)
    oracle = _Oracle(session, sc.checks.oracle)
    total = len(sc.variants) * len(sc.queries) * (sc.warmup + sc.repeats)
    with cluster.client.as_current(), \
            performance_report(filename=str(folder / DASK_REPORT), mode="inline"), \
            tqdm(total=total, desc=sc.name, unit="query", disable=not progress) as bar:
        return tuple(_run_one(session, sc, v, q, oracle, bar, transfer_s_per_byte)
                     for v in sc.variants for q in sc.queries)


def _ingest(sc: Scenario, cluster: Cluster, folder: Path) -> tuple[dict[str, Any], ...]:
    """The [ingest] section's runs (mpp.ingest.pipeline), into a warehouse of their own in
    the run folder: the cached data warehouse stays as generated."""
    if sc.ingest is None:
        return ()
    from mpp.ingest.pipeline import run_ingest

    result = run_ingest(sc.ingest, warehouse=folder / "ingest-warehouse", cluster=cluster)
    return tuple(r.as_dict() for r in result.rows)


def _mart(sc: Scenario, cluster: Cluster, wh: Warehouse, folder: Path, progress: bool) -> Any:
    """The [mart] section's pipeline (:func:`mpp.mart.pipeline.run_mart`): the generated data
    is its data lake, read only; the mart is built in a warehouse of its own in the run
    folder. None without a [mart] section."""
    if sc.mart is None:
        return None
    from mpp.mart.pipeline import run_mart

    return run_mart(sc.mart, lake=wh.path, warehouse=folder / "mart-warehouse", cluster=cluster,
                    progress=progress)


def run_scenario(scenario: Scenario | str | os.PathLike[str], *, scale: float = 1.0,
                 out: str | os.PathLike[str] | None = None, scheduler: str | None = None,
                 cache: str | os.PathLike[str] | None = None, keep_open: bool = False,
                 progress: bool = True, echo: Echo | None = print,
                 cluster: Cluster | None = None,
                 transfer_s_per_byte: float | None = None) -> RunOutcome:
    """Run a scenario (a validated :class:`Scenario` or a TOML file) and write its report.

    Args:
        scenario: the spec, or the path of a scenario file (validated here, before anything runs).
        scale: multiplies the generated row count (only when a path is given).
        out: the folder the run folder ``<name>-<timestamp>`` is created in (default:
            ``$MPP_RUNS``, else ``runs`` in the working directory).
        scheduler: an existing Dask scheduler's address instead of the spec's cluster.
        cache: where generated warehouses are cached by data hash (see
            :func:`mpp.scenario.warehouse.default_cache`).
        keep_open: after the run, keep the cluster up until Ctrl-C (to explore the dashboard).
        progress: show tqdm progress bars (data generation, queries).
        echo: where the dashboard link, summary and report location are printed (None: silent).
        cluster: an already running :class:`Cluster` to use (and leave running), e.g. a
            notebook's; by default the spec's cluster is started and closed.
        transfer_s_per_byte: the workers' CPU per byte moved between worker processes
            (:func:`mpp.execution.transfer.measure_transfer_cost`), recorded with every
            query; ``mpp validate-model`` measures it once and passes it to every pass.

    Returns the :class:`RunOutcome`; a failed check does not raise (see ``outcome.ok``).
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, scale=scale)
    say: Echo = echo or (lambda _line: None)
    started = dt.datetime.now(dt.UTC)
    with contextlib.ExitStack() as stack:
        if cluster is None:
            cluster = stack.enter_context(Cluster(_cluster_spec(sc, scheduler)))
        link = cluster.dashboard_link
        say(f"{sc.name}: dashboard {link or '(none)'}")
        warning = cluster.health_warning()
        if warning:
            say(f"{sc.name}: warning: {warning}")
        # import the engine on every worker first, so the first query's time is not imports
        cluster.client.run(importlib.import_module, "mpp.session")
        wh = prepare(sc.data, cluster.client, cache=cache, source=sc.source, progress=progress)
        say(f"{sc.name}: warehouse {wh.path} ({'reused' if wh.reused else 'generated'}; "
            f"data hash {wh.data_hash}, checksum {wh.checksum})")
        folder = run_folder(out or os.environ.get("MPP_RUNS", "runs"), sc.name, started)
        try:
            runs = _execute(sc, cluster, wh, folder, progress, transfer_s_per_byte)
            ingest = _ingest(sc, cluster, folder)
            mart = _mart(sc, cluster, wh, folder, progress)
            checks = _checks(sc, runs) + (mart.checks if mart is not None else ())
            data = RunData(sc.name, sc.to_dict(), environment(), wh.data_hash, wh.checksum,
                           runs, checks, started.isoformat(timespec="seconds"), link,
                           ingest, mart.as_dict() if mart is not None else None)
            files = {**write_report(data, folder), "dask": folder / DASK_REPORT}
        except BaseException:  # no half-written run folder
            shutil.rmtree(folder, ignore_errors=True)
            raise
        summary = format_summary(data)
        say(summary)
        say(f"{sc.name}: {'all checks passed' if data.ok else 'CHECKS FAILED'}; "
            f"report: {files['html']}")
        if keep_open:
            _wait_for_ctrl_c(link, say)
    return RunOutcome(sc, data, folder, files, wh, link, summary)
