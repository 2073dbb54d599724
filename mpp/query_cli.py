"""The query subcommands of ``mpp``: ``sql``, ``explain`` and ``settings``.

Thin: each parses options, calls :func:`mpp.session.connect` and one Session method, prints.
Registered on the ``mpp`` group in :mod:`mpp.cli`. The dashboard link goes to stderr so that
``--output csv|json`` on stdout stays machine-readable.
"""

from __future__ import annotations

import gc
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import click
import pyarrow as pa
import pyarrow.csv as pacsv
from click.core import ParameterSource

from mpp import limits
from mpp.config import SETTINGS, parse_assignments
from mpp.execution.cluster import DEFAULT_CONNECT_TIMEOUT, ClusterSpec
from mpp.execution.watch import DEFAULT_STALL_TIMEOUT
from mpp.text import plural

DEFAULT_MAX_ROWS = 1000  # rows a table output prints; csv and json print all
# Rows CSV and JSON output convert and write at a time: their Python objects (JSON) stay a few
# MB whatever the result's size.
BATCH_ROWS = 10_000


def _cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-w", "--warehouse", required=True, type=click.Path(),
                     help="Warehouse directory (catalog and tables)."),
        click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
                     help="A setting for this query (repeatable); see `mpp settings`."),
        click.option("--scheduler", default=None, metavar="ADDR",
                     help="Use an existing Dask cluster (tcp://host:8786)."),
        click.option("--connect-timeout", default=DEFAULT_CONNECT_TIMEOUT, show_default=True,
                     type=limits.CONNECT_TIMEOUT.click_type(), metavar="SECONDS",
                     help="How long to wait for --scheduler to answer."),
        click.option("--workers", default=2, show_default=True,
                     type=limits.WORKERS.click_type(),
                     help="Workers of the LocalCluster (the warehouse's nodes, 1 to 64); not "
                     "with --scheduler."),
        click.option("--threads", default=1, show_default=True,
                     type=limits.THREADS.click_type(),
                     help="Threads per worker of the LocalCluster (the slices, 1 to 64); not "
                     "with --scheduler."),
        click.option("--dashboard-address", default=None, metavar="HOST:PORT",
                     help="Where the LocalCluster's dashboard listens (default "
                     "127.0.0.1, any free port; 0.0.0.0:8787 exposes it to other machines); "
                     "not with --scheduler."),
        click.option("--stall-timeout", default=DEFAULT_STALL_TIMEOUT, show_default=True,
                     type=limits.STALL_TIMEOUT.click_type(), metavar="SECONDS",
                     help="Fail a query when no worker can run its tasks (none connected, "
                     "all paused for lack of memory) for this long."),
        click.option("--catalog", "catalog_uri", default=None, metavar="URI",
                     help="An Iceberg catalog URI instead of the warehouse's SQLite catalog."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _given(*names: str) -> list[str]:
    """Which of the current command's parameters ``names`` the user set (not defaults)."""
    ctx = click.get_current_context()
    return [n for n in names if ctx.get_parameter_source(n) in (ParameterSource.COMMANDLINE,
                                                                ParameterSource.ENVIRONMENT)]


def _check_cluster_options(scheduler: str | None) -> None:
    """Refuse options that the chosen kind of cluster would silently ignore."""
    if scheduler is not None:
        shape = _given("workers", "threads", "dashboard_address")
        if shape:
            options = " and ".join("--" + n.replace("_", "-") for n in shape)
            verb = "shape" if len(shape) > 1 else "shapes"
            raise click.UsageError(
                f"{options} {verb} the LocalCluster mpp starts; with --scheduler the existing "
                "cluster keeps its own workers, threads and dashboard.")
    elif _given("connect_timeout"):
        raise click.UsageError("--connect-timeout applies only with --scheduler (mpp starts "
                               "its LocalCluster itself).")


def _background_scheduler() -> str | None:
    """The scheduler of the running ``mpp cluster``, if any (a stale record is reported)."""
    from mpp.execution import background

    record, stale = background.running()
    if stale:
        click.echo(f"mpp: warning: {stale}", err=True)
    return record.scheduler if record else None


def _process_age() -> float:
    """Seconds since this process started: on Linux from the kernel's clock ticks, to 10 ms
    (psutil's start time is rounded to the boot time's whole second); elsewhere psutil's."""
    try:
        with open("/proc/self/stat") as f:  # field 22, starttime, in ticks since boot
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        import psutil  # distributed imports it anyway

        return time.time() - psutil.Process().create_time()


class Timing:
    """Where the wall time of one command goes (``mpp sql --timing``): the time from the
    process's start (Python's own start-up and every import included) cut at named marks."""

    def __init__(self) -> None:
        self.start = time.time() - _process_age()
        self._last = self.start
        self.parts: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        """The time since the previous mark (or the process's start) was spent on ``name``."""
        now = time.time()
        self.parts.append((name, now - self._last))
        self._last = now

    def report(self, query_seconds: float) -> str:
        """Lines for stderr: the whole command, the query's own wall time, and each part."""
        total = self._last - self.start
        lines = [f"timing: {total:.2f} s in all, the query {query_seconds:.2f} s of it "
                 f"(its own wall time), {total - query_seconds:.2f} s around it:"]
        lines += [f"  {name:<40} {seconds:6.2f} s" for name, seconds in self.parts]
        return "\n".join(lines)


def _session(warehouse: str, assignments: tuple[str, ...], scheduler: str | None,
             connect_timeout: float, workers: int, threads: int, dashboard_address: str | None,
             stall_timeout: float, catalog_uri: str | None, query: str, *,
             plan_only: bool = False, timing: Timing | None = None) -> Any:
    # The cycle collector is off while the planner, catalog and pyiceberg load (see mpp.cli).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        from mpp.catalog import Catalog
        from mpp.session import connect
        from mpp.sql import bind
        from mpp.sql.statements import (
            CreateTableAs,
            DeleteFrom,
            InsertInto,
            Query,
            parse_statement,
        )
    finally:
        if gc_was_on:
            gc.enable()
    if timing:
        timing.mark("Python start-up and imports")
    # Bad options, bad settings, a missing warehouse or bad SQL fail here, before any
    # cluster starts.
    _check_cluster_options(scheduler)
    settings = parse_assignments(assignments)
    catalog = Catalog.open(warehouse, catalog_uri)
    stmt = parse_statement(query)
    if isinstance(stmt, Query):
        bind(stmt.text, catalog)
    elif isinstance(stmt, CreateTableAs):
        bind(stmt.select_sql, catalog)
    elif isinstance(stmt, InsertInto):
        bind(stmt.query_sql, catalog)
    elif isinstance(stmt, DeleteFrom) and stmt.filter_sql is not None:
        bind(stmt.filter_sql, catalog)
    if timing:
        timing.mark("catalog, parse and bind")
    if plan_only:  # plans from the catalog and settings alone: no cluster, no scheduler
        from mpp.execution.cluster import PlanOnly

        return connect(warehouse, cluster=PlanOnly(workers, threads), settings=settings,
                       catalog_uri=catalog_uri, catalog=catalog)
    if scheduler is None and not _given("workers", "threads", "dashboard_address"):
        scheduler = _background_scheduler()
    spec = ClusterSpec(scheduler=scheduler, workers=workers, threads_per_worker=threads,
                       connect_timeout=connect_timeout, stall_timeout=stall_timeout,
                       **({"dashboard_address": dashboard_address} if dashboard_address else {}))
    session = connect(warehouse, cluster=spec, settings=settings, catalog_uri=catalog_uri,
                      catalog=catalog)
    if session.dashboard_link:
        click.echo(f"dashboard: {session.dashboard_link}", err=True)
    warning = session.cluster.health_warning()
    if warning:
        click.echo(f"mpp: warning: {warning}", err=True)
    if timing:
        timing.mark("cluster: find, connect, check" if session.cluster.spec.scheduler
                    else "cluster: start a LocalCluster")
    return session


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (NaN, +-Infinity) as None: strict JSON has no such
    numbers, and its parsers reject Python's ``NaN``/``Infinity`` tokens. (Decimals become
    strings of their exact digits through ``json.dumps(default=str)``.)"""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def format_table(table: pa.Table, output: str, max_rows: int | None = None) -> str:
    """``table`` as a readable text table, CSV or JSON, as one string (see
    :func:`write_table`, which the CLI uses to stream the same bytes)."""
    buf = io.BytesIO()
    write_table(table, output, buf, max_rows)
    return buf.getvalue().decode()


def write_table(table: pa.Table, output: str, out: BinaryIO, max_rows: int | None = None,
                batch_rows: int = BATCH_ROWS) -> None:
    """Write ``table`` to the binary stream ``out`` as a readable text table, CSV or JSON (an
    array of one object per row, indented by 2).

    The text table right-aligns numeric columns, prints NULL for nulls, and stops after
    ``max_rows`` rows (None or 0: all) with a note of how many more there are, so a large
    result does not flood a terminal; CSV and JSON always hold every row and are written
    ``batch_rows`` rows at a time, so the output's Python objects never exist all at once
    (the whole JSON text of 2M rows took 5 GB). JSON writes NaN and infinities as null,
    keeping it strict.
    """
    if output == "csv":
        with pacsv.CSVWriter(out, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
    elif output == "json":
        _write_json(table, out, batch_rows)
    else:
        out.write(_text_table(table, max_rows).encode())


def _write_json(table: pa.Table, out: BinaryIO, batch_rows: int) -> None:
    """The bytes of ``json.dumps(rows, indent=2)``, one batch of rows at a time: each batch is
    dumped as its own array, whose brackets are dropped and whose rows are joined by commas."""
    first = True
    for batch in table.to_batches(max_chunksize=batch_rows):
        if batch.num_rows == 0:
            continue
        rows = [_json_safe(row) for row in batch.to_pylist()]
        text = json.dumps(rows, default=str, indent=2, allow_nan=False)
        out.write((("[\n" if first else ",\n") + text[2:-2]).encode())  # drop "[\n", "\n]"
        first = False
    out.write(b"[]\n" if first else b"\n]\n")


def _text_table(table: pa.Table, max_rows: int | None) -> str:
    shown = table if not max_rows else table.slice(0, max_rows)
    names = table.column_names
    right = [_is_numeric(f.type) for f in table.schema]
    columns = [[("NULL" if v is None else str(v)) for v in col.to_pylist()]
               for col in shown.columns]
    cells = [list(row) for row in zip(*columns, strict=True)] if columns else []
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]

    def line(vals: list[str]) -> str:
        return " | ".join(v.rjust(w) if r else v.ljust(w)
                          for v, w, r in zip(vals, widths, right, strict=True)).rstrip()

    out = [line(names), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells]
    if shown.num_rows < table.num_rows:
        out.append(f"... {plural(table.num_rows - shown.num_rows, 'more row')} not shown "
                   f"(--max-rows {max_rows}); use --output csv or json for all")
    out.append(f"({plural(table.num_rows, 'row')})")
    return "\n".join(out) + "\n"


def _looks_like_sql(arg: str) -> bool:
    """True for a command-line word that starts with "--" but is a query text opening with a
    SQL comment (``"-- top pages\nSELECT ..."``): whitespace before any "=", which no option
    name has."""
    name = arg.split("=", 1)[0]
    return arg.startswith("--") and len(arg) > 2 and any(ch.isspace() for ch in name)


class QueryCommand(click.Command):
    """A command whose QUERY argument may start with a ``--`` SQL comment.

    Click takes any word starting with "--" for an option ("No such option: -- top pages").
    Such a word is passed on with one space in front (click then reads it as the argument),
    and the argument's callback takes the space off again, so the query is the text as written.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        marked = [" " + a if _looks_like_sql(a) else a for a in args]
        ctx.meta["mpp.commented_query"] = marked != args
        return super().parse_args(ctx, marked)


def _query_text(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The QUERY argument as written (without the space :class:`QueryCommand` added)."""
    if ctx.meta.get("mpp.commented_query") and value.startswith(" ") and _looks_like_sql(
            value[1:]):
        return value[1:]
    return value


@click.command(cls=QueryCommand)
@_cluster_options
@click.option("--output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="How to print the result.")
@click.option("--max-rows", default=DEFAULT_MAX_ROWS, show_default=True,
              type=click.IntRange(0), metavar="N",
              help="Rows a table output prints (0: all); csv and json print every row.")
@click.option("--timing", is_flag=True,
              help="Print to stderr where the command's wall time went: start-up and imports, "
              "catalog, cluster, the query, output.")
@click.argument("query", callback=_query_text)
def sql(warehouse: str, assignments: tuple[str, ...], scheduler: str | None,
        connect_timeout: float, workers: int, threads: int, dashboard_address: str | None,
        stall_timeout: float, catalog_uri: str | None, output: str, max_rows: int,
        timing: bool, query: str) -> None:
    """Run one SELECT (or CREATE TABLE [AS] / INSERT INTO / DELETE / DROP TABLE) on the cluster; print its
    result."""
    if output != "table" and _given("max_rows"):
        raise click.UsageError(f"--max-rows applies to --output table; --output {output} "
                               "prints every row.")
    clock = Timing() if timing else None
    with _session(warehouse, assignments, scheduler, connect_timeout, workers, threads,
                  dashboard_address, stall_timeout, catalog_uri, query, timing=clock) as s:
        result = s.sql(query)
        if clock:
            clock.mark("the query: plan and run")
        table = result.to_arrow()
        sys.stdout.flush()  # the bytes go to the binary stream below the text one
        write_table(table, output, sys.stdout.buffer, max_rows)
        sys.stdout.buffer.flush()
        if result.write is not None:  # a write: what the write stage produced
            click.echo(result.write.summary(), err=True)
        click.echo(f"{result.stats.query_id}: {plural(table.num_rows, 'row')} in "
                   f"{result.stats.wall_seconds:.3f} s", err=True)
        if clock:
            clock.mark("print the result")
    if clock:
        clock.mark("close (stops a LocalCluster mpp started)")
        click.echo(clock.report(result.stats.wall_seconds), err=True)


@click.command(cls=QueryCommand)
@_cluster_options
@click.option("--analyze", is_flag=True, help="Run the query and add measured figures.")
@click.option("--stage", type=click.Choice(["logical", "optimized", "physical", "analyze"]),
              default="physical", show_default=True, help="Which plan to show.")
@click.argument("query", callback=_query_text)
def explain(warehouse: str, assignments: tuple[str, ...], scheduler: str | None,
            connect_timeout: float, workers: int, threads: int, dashboard_address: str | None,
            stall_timeout: float, catalog_uri: str | None, analyze: bool, stage: str,
            query: str) -> None:
    """Print the plan of a SELECT (stages, operators, task counts, exchanges)."""
    if analyze and stage != "analyze" and _given("stage"):
        raise click.UsageError(f"--analyze runs the query and shows the measured physical plan "
                               f"(--stage analyze); it cannot show --stage {stage}.")
    # Without --analyze nothing runs: plan for --workers x --threads (or the planning.*
    # settings) without starting a cluster; an explicit --scheduler plans for that cluster.
    plan_only = not analyze and stage != "analyze" and scheduler is None
    with _session(warehouse, assignments, scheduler, connect_timeout, workers, threads,
                  dashboard_address, stall_timeout, catalog_uri, query,
                  plan_only=plan_only) as s:
        text = s.explain(query, "analyze" if analyze else stage)  # type: ignore[arg-type]
        click.echo(text.rstrip("\n") + "\n", nl=False)  # every stage: exactly one newline


@click.command()
def settings() -> None:
    """List every setting with its default, allowed values and meaning."""
    for s in SETTINGS.values():
        allowed = f" ({s.allowed()})" if s.allowed() else ""
        click.echo(f"{s.name} = {s.default!r}{allowed}\n    {s.help}")


@click.command("queries")
@click.option("-w", "--warehouse", default="/tmp/wh100m", show_default=True,
              type=click.Path(), help="Warehouse with access_log (mpp datagen --rows 100000000"
              " --partitions 1000).")
@click.option("--query", "queries", multiple=True,
              type=click.Choice(["q0", "q1", "w1", "w2", "j1", "j2", "j3"]),
              help="Queries to run (default: q0 and q1; w1/w2 are the window queries, j1-j3 "
              "the joins with users, urls and sessions).")
@click.option("--engine", "engines", multiple=True,
              type=click.Choice(["mpp", "duckdb", "dask"]), help="Engines (default: all).")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="mpp settings for its runs.")
@click.option("--repeat", default=1, show_default=True, type=limits.REPEATS.click_type(),
              help="Timed runs per engine and query, after one untimed warm-up; the median "
              "is reported.")
def bench_queries(warehouse: str, queries: tuple[str, ...], engines: tuple[str, ...],
                  workers: int, threads: int, assignments: tuple[str, ...],
                  repeat: int) -> None:
    """Q0/Q1 (and the window queries W1/W2, the joins J1-J3): wall time and peak memory of
    mpp, DuckDB and dask.dataframe, same files. The first line names the warehouse and the
    cluster, the last the load average before and after: what a published figure must state."""
    import os

    from mpp.bench.queries import bench_queries as run
    from mpp.bench.queries import describe_warehouse, format_runs

    click.echo(f"{describe_warehouse(warehouse)}; LocalCluster {workers} workers x {threads} "
               f"thread(s); {repeat} timed run(s) per engine and query")
    before = os.getloadavg()[0]
    runs = run(warehouse, queries=queries or ("q0", "q1"),
               engines=engines or ("mpp", "duckdb", "dask"), workers=workers,
               threads=threads, settings=parse_assignments(assignments), repeat=repeat)
    click.echo(format_runs(runs))
    click.echo(f"load average (1 min) {before:.2f} before, {os.getloadavg()[0]:.2f} after")
