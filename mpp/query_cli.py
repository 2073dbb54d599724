"""The query subcommands of ``mpp``: ``sql``, ``explain`` and ``settings``.

Thin: each parses options, calls :func:`mpp.session.connect` and one Session method, prints.
Registered on the ``mpp`` group in :mod:`mpp.cli`. The dashboard link goes to stderr so that
``--output csv|json`` on stdout stays machine-readable.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import click
import pyarrow as pa
import pyarrow.csv as pacsv

import mpp.ctas  # noqa: F401  (registers the write.* settings for --set and `mpp settings`)
from mpp.config import SETTINGS, parse_assignments
from mpp.execution.cluster import ClusterSpec


def _cluster_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-w", "--warehouse", required=True, type=click.Path(),
                     help="Warehouse directory (catalog and tables)."),
        click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
                     help="A setting for this query (repeatable); see `mpp settings`."),
        click.option("--scheduler", default=None, metavar="ADDR",
                     help="Use an existing Dask cluster (tcp://host:8786)."),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
                     help="Workers of the LocalCluster (the warehouse's nodes)."),
        click.option("--threads", default=1, show_default=True, type=click.IntRange(1),
                     help="Threads per worker (the slices)."),
        click.option("--catalog", "catalog_uri", default=None, metavar="URI",
                     help="An Iceberg catalog URI instead of the warehouse's SQLite catalog."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _session(warehouse: str, assignments: tuple[str, ...], scheduler: str | None,
             workers: int, threads: int, catalog_uri: str | None, query: str) -> Any:
    from mpp.catalog import Catalog
    from mpp.ctas.statement import CreateTableAs, parse_statement
    from mpp.session import connect
    from mpp.sql import bind

    # Bad settings, a missing warehouse or bad SQL fail here, before any cluster starts.
    settings = parse_assignments(assignments)
    catalog = Catalog.open(warehouse, catalog_uri)
    stmt = parse_statement(query)
    if stmt is None or isinstance(stmt, CreateTableAs):
        bind(query if stmt is None else stmt.select_sql, catalog)
    spec = ClusterSpec(scheduler=scheduler, workers=workers, threads_per_worker=threads)
    session = connect(warehouse, cluster=spec, settings=settings, catalog_uri=catalog_uri)
    if session.dashboard_link:
        click.echo(f"dashboard: {session.dashboard_link}", err=True)
    return session


def format_table(table: pa.Table, output: str) -> str:
    """``table`` as a readable text table, CSV or JSON (one object per row)."""
    if output == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        return buf.getvalue().decode()
    if output == "json":
        rows = [dict(zip(table.column_names, r.values(), strict=True))
                for r in table.to_pylist()]
        return json.dumps(rows, default=str, indent=1) + "\n"
    names = table.column_names
    cells = [[("NULL" if v is None else str(v)) for v in r.values()] for r in table.to_pylist()]
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]
    line = lambda vals: " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    out = [line(names), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells]
    out.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(out) + "\n"


@click.command()
@_cluster_options
@click.option("--output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="How to print the result.")
@click.argument("query")
def sql(warehouse: str, assignments: tuple[str, ...], scheduler: str | None, workers: int,
        threads: int, catalog_uri: str | None, output: str, query: str) -> None:
    """Run one SELECT (or CREATE TABLE AS / DROP TABLE) on the cluster; print its result."""
    with _session(warehouse, assignments, scheduler, workers, threads, catalog_uri,
                  query) as s:
        result = s.sql(query)
        click.echo(format_table(result.to_arrow(), output), nl=False)
        if result.ctas is not None:  # CREATE TABLE AS: what the write stage produced
            click.echo(result.ctas.summary(), err=True)
        click.echo(f"{result.stats.query_id}: {result.to_arrow().num_rows} rows in "
                   f"{result.stats.wall_seconds:.3f} s", err=True)


@click.command()
@_cluster_options
@click.option("--analyze", is_flag=True, help="Run the query and add measured figures.")
@click.option("--stage", type=click.Choice(["logical", "optimized", "physical", "analyze"]),
              default="physical", show_default=True, help="Which plan to show.")
@click.argument("query")
def explain(warehouse: str, assignments: tuple[str, ...], scheduler: str | None, workers: int,
            threads: int, catalog_uri: str | None, analyze: bool, stage: str,
            query: str) -> None:
    """Print the plan of a SELECT (stages, operators, task counts, exchanges)."""
    with _session(warehouse, assignments, scheduler, workers, threads, catalog_uri,
                  query) as s:
        click.echo(s.explain(query, "analyze" if analyze else stage), nl=False)  # type: ignore[arg-type]


@click.command()
def settings() -> None:
    """List every setting with its default and meaning."""
    import mpp.optimizer  # noqa: F401  (its rules register their on/off switches)

    for s in SETTINGS.values():
        choices = f" (one of {', '.join(s.choices)})" if s.choices else ""
        click.echo(f"{s.name} = {s.default!r}{choices}\n    {s.help}")


@click.command("queries")
@click.option("-w", "--warehouse", default="/tmp/wh100m", show_default=True,
              type=click.Path(), help="Warehouse with access_log (mpp datagen --rows 100000000"
              " --partitions 1000).")
@click.option("--query", "queries", multiple=True, type=click.Choice(["q0", "q1"]),
              help="Queries to run (default: both).")
@click.option("--engine", "engines", multiple=True,
              type=click.Choice(["mpp", "duckdb", "dask"]), help="Engines (default: all).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1))
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="mpp settings for its runs.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1),
              help="Timed runs per engine and query, after one untimed warm-up; the median "
              "is reported.")
def bench_queries(warehouse: str, queries: tuple[str, ...], engines: tuple[str, ...],
                  workers: int, threads: int, assignments: tuple[str, ...],
                  repeat: int) -> None:
    """Q0/Q1: wall time and peak memory of mpp, DuckDB and dask.dataframe, same files."""
    from mpp.bench.queries import bench_queries as run
    from mpp.bench.queries import format_runs

    runs = run(warehouse, queries=queries or ("q0", "q1"),
               engines=engines or ("mpp", "duckdb", "dask"), workers=workers,
               threads=threads, settings=parse_assignments(assignments), repeat=repeat)
    click.echo(format_runs(runs))
