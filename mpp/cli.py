"""The ``mpp`` command: a thin shell over the Python API that notebooks use too.

Each subcommand parses options, calls one API function, and prints. Errors derived from
:class:`mpp.errors.MppError` are printed as one line (``mpp: error: ...``) with exit code 2;
no library traceback reaches the user. Any other exception is a bug in mpp: one line says so
(with the query id when known) and where its full traceback was written (:mod:`mpp.crash`),
exit code 3. Ctrl-C prints ``mpp: interrupted`` and exits 130.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from pathlib import Path

import click

from mpp import crash, limits
from mpp.config import MAX_HASH_BUCKETS
from mpp.errors import CatalogError, MppError


class _Group(click.Group):
    """A click group that is the command's edge: every exception becomes one line and an exit
    code (2 bad input, 3 internal error, 130 interrupted); click's own usage errors and exits
    pass through to click."""

    def invoke(self, ctx: click.Context) -> object:
        # Python's shutdown runs the cycle collector over every object left (the imported
        # libraries' millions): ~0.5 s of CPU after the last line is printed, a quarter of a
        # quick `mpp sql` (docs/usage.md). Frozen at exit, they are skipped; the other exit
        # handlers still run (registered later, they run first). Frozen only at exit, so a
        # process that runs several commands (the tests) still collects between them.
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
        try:
            return super().invoke(ctx)
        except MppError as exc:
            click.echo(f"mpp: error: {exc}", err=True)
            sys.exit(2)
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            # An interrupt inside distributed's sync() can land before its future exists; its
            # cancel callback then fails on the event loop thread and tornado logs that
            # traceback (a distributed race). The user asked to stop: nothing more to say.
            logging.getLogger("tornado.application").disabled = True
            click.echo("mpp: interrupted", err=True)
            sys.exit(crash.EXIT_INTERRUPTED)
        except BrokenPipeError:  # the reader left (`mpp sql --output csv ... | head`): no bug
            # Point stdout at /dev/null so that flushing it at exit fails no more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(crash.EXIT_BROKEN_PIPE)
        except Exception as exc:
            try:
                report: Path | None = crash.write_report(exc)
            except OSError:
                report = None
            click.echo(crash.one_line(exc, report), err=True)
            sys.exit(crash.EXIT_INTERNAL)


@click.group(cls=_Group)
@click.version_option(package_name="mpp")
def main() -> None:
    """mpp: run analytical SQL the way an MPP warehouse does, on a Dask cluster."""


@main.group()
def bench() -> None:
    """Benchmarks: wall time and peak memory, mpp side by side with its peers."""


# Loading Dask, distributed and pyarrow creates hundreds of thousands of objects that live
# until exit, and the cycle collector walks them over and over while they load: it is off
# meanwhile (0.3 s of CPU less for a quick `mpp sql`; the rest of its imports in query_cli).
_gc_was_on = gc.isenabled()
gc.disable()
try:
    from mpp.query_cli import bench_queries, explain, settings, sql  # noqa: E402
finally:
    if _gc_was_on:
        gc.enable()

bench.add_command(bench_queries)
main.add_command(sql)
main.add_command(explain)
main.add_command(settings)

from mpp.run_cli import list_, report, run, validate_model  # noqa: E402

main.add_command(run)
main.add_command(list_)
main.add_command(report)
main.add_command(validate_model)

from mpp.difftest.cli import difftest  # noqa: E402

main.add_command(difftest)


@main.group("cluster")
def cluster_cmd() -> None:
    """A LocalCluster that stays up between commands (its dashboard too).

    While one runs, `mpp sql`, `mpp explain`, `mpp catalog` and mpp.connect() use it unless
    told otherwise (--scheduler, or an explicit --workers/--threads shape).
    """


@cluster_cmd.command("start")
@click.option("--workers", type=limits.WORKERS.click_type(), default=2, show_default=True,
              help="Worker processes (the warehouse's nodes).")
@click.option("--threads", type=limits.THREADS.click_type(), default=1, show_default=True,
              help="Threads per worker (the slices).")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="Memory limit per worker, e.g. 4GiB (default: Dask shares the machine's).")
@click.option("--dashboard-address", default="127.0.0.1:8787", show_default=True,
              metavar="HOST:PORT", help="Where the dashboard listens (port 0: any free one).")
def cluster_start_cmd(workers: int, threads: int, memory_limit: str | None,
                      dashboard_address: str) -> None:
    """Start the background cluster and record where it is."""
    from mpp.execution import background

    record = background.start(workers, threads, memory_limit, dashboard_address)
    click.echo(record.describe())
    click.echo(f"record: {background.record_path()}; stop it with `mpp cluster stop`")


@cluster_cmd.command("status")
def cluster_status_cmd() -> None:
    """Say whether the background cluster runs, where, and its workers' state."""
    from mpp.execution import background
    from mpp.execution.cluster import Cluster, ClusterSpec

    record, stale = background.running()
    if record is None:
        raise MppError(stale or f"no mpp cluster is running (no record at "
                       f"{background.record_path()}); start one with `mpp cluster start`")
    click.echo(record.describe())
    with Cluster(ClusterSpec(scheduler=record.scheduler)) as c:
        info = c.client.scheduler_info(n_workers=-1)
        for address, w in sorted(info.get("workers", {}).items()):
            used = w.get("metrics", {}).get("memory", 0)
            click.echo(f"  worker {address}: {w.get('nthreads')} threads, "
                       f"{used / 2**30:.2f} GiB used of {w.get('memory_limit', 0) / 2**30:.2f}")


@cluster_cmd.command("stop")
def cluster_stop_cmd() -> None:
    """Stop the background cluster and remove its record."""
    from mpp.execution import background

    record, why = background.stop()
    if record is None:
        raise MppError(why or "no mpp cluster is running")
    click.echo(f"stopped the mpp cluster at {record.scheduler} (pid {record.pid})")


def _datagen_options(fn):  # type: ignore[no-untyped-def]
    """The knobs shared by ``mpp datagen`` and ``mpp bench datagen``."""
    from mpp.storage.base import StorageFormat

    # Ranges (and why) from mpp.limits: a bad value names the option, the value and the range.
    options = [
        click.option("--rows", type=limits.ROWS.click_type(), default=1_000_000,
                     show_default=True, help="access_log rows."),
        click.option("--partitions", type=limits.PARTITIONS.click_type(), default=100,
                     show_default=True, help="access_log fragments (files), each within one day."),
        click.option("--seed", type=limits.SEED.click_type(), default=0, show_default=True),
        click.option("--format", "fmt", type=click.Choice([f.value for f in StorageFormat if f.writable]),
                     default="parquet", show_default=True, help="Format of every table."),
        click.option("--table-format", multiple=True, metavar="TABLE=FORMAT",
                     help="Format of one table, e.g. users=sqlite (repeatable)."),
        click.option("--days", type=limits.DAYS.click_type(), default=30, show_default=True),
        click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), default="2017-01-01",
                     show_default=True),
        click.option("--users", type=limits.USERS.click_type(), default=100_000,
                     show_default=True, help="Distinct users."),
        click.option("--zipf", type=limits.ZIPF.click_type(), default=1.1, show_default=True,
                     help="Zipf exponent of user popularity (0 = uniform)."),
        click.option("--hot-day", type=limits.HOT_DAY.click_type(), default=13,
                     show_default=True,
                     help="1-based day carrying --hot-share of the traffic (0: none)."),
        click.option("--hot-share", type=limits.HOT_SHARE.click_type(), default=0.4,
                     show_default=True),
        click.option("--sessions", type=limits.SESSIONS.click_type(), default=0,
                     help="Sessions (default rows/20, <= 5M)."),
        click.option("--urls", type=limits.URLS.click_type(), default=10_000, show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _spec(**kw: object):  # type: ignore[no-untyped-def]
    from mpp.datagen import DatagenSpec, parse_table_formats
    from mpp.storage.base import StorageFormat

    return DatagenSpec(
        rows=kw["rows"], partitions=kw["partitions"], seed=kw["seed"], days=kw["days"],
        start_date=kw["start_date"].date(), users=kw["users"], zipf=kw["zipf"],  # type: ignore[attr-defined]
        hot_day=kw["hot_day"], hot_share=kw["hot_share"], format=StorageFormat(kw["fmt"]),
        table_formats=parse_table_formats(kw["table_format"]),  # type: ignore[arg-type]
        sessions=kw["sessions"], urls=kw["urls"],
    )


@main.command()
@click.option("--out", "-o", required=True, help="Warehouse directory to create.")
@click.option("--scheduler", default=None, help="Dask scheduler address (default: LocalCluster).")
@click.option("--dataset", type=click.Choice(["access_log", "tpch"]), default="access_log",
              show_default=True, help="access_log: the skewed web log and its dimensions "
              "(the knobs below); tpch: the eight TPC-H tables (tpchgen-cli).")
@click.option("--scale-factor", type=click.FloatRange(0, 1000, min_open=True), default=1.0,
              show_default=True, help="tpch: scale factor (1 = ~6M lineitem rows, ~1 GB).")
@click.option("--fragment-rows", type=click.IntRange(1000), default=1_000_000,
              show_default=True, help="tpch: rows per fragment (file) of each table.")
@_datagen_options
@click.pass_context
def datagen(ctx: click.Context, out: str, scheduler: str | None, dataset: str,
            scale_factor: float, fragment_rows: int, **knobs: object) -> None:
    """Generate a warehouse into --out: the access_log tables, or TPC-H (--dataset tpch)."""
    from mpp.execution.cluster import Cluster, ClusterSpec

    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    if dataset == "tpch":
        wrong = sorted(given & set(knobs))
        if wrong:
            raise click.UsageError(f"--{wrong[0].replace('_', '-')} applies to --dataset "
                                   "access_log only")
        from mpp.datagen.tpch import TpchSpec, dask_runner, generate_tpch

        spec = TpchSpec(scale_factor=scale_factor, fragment_rows=fragment_rows)
        spec.validate()
        with Cluster(ClusterSpec(scheduler=scheduler, dashboard_address=None)) as cluster:
            catalog = generate_tpch(out, spec, run=dask_runner(cluster.client))
        click.echo(catalog.describe())
        return
    wrong = sorted(given & {"scale_factor", "fragment_rows"})
    if wrong:
        raise click.UsageError(f"--{wrong[0].replace('_', '-')} applies to --dataset tpch only")
    from mpp.datagen import generate

    spec_ = _spec(**knobs)
    with Cluster(ClusterSpec(scheduler=scheduler, dashboard_address=None)) as cluster:
        catalog = generate(out, spec_, client=cluster.client, progress=True)
    click.echo(catalog.describe())


@main.group("catalog", invoke_without_command=True)
@click.option("--warehouse", "-w", default=None, help="Warehouse directory.")
@click.option("--catalog", "uri", default=None,
              help="Iceberg catalog URI (default: the warehouse's catalog.db).")
@click.pass_context
def catalog_cmd(ctx: click.Context, warehouse: str | None, uri: str | None) -> None:
    """Print the warehouse's tables, formats, partitions, snapshots and statistics.

    A table whose metadata is damaged is marked among the others; the command then fails
    naming the damaged tables.
    """
    from mpp.catalog import Catalog
    from mpp.catalog.describe import damaged_tables

    if ctx.invoked_subcommand is not None:
        return
    if warehouse is None:
        raise click.UsageError("Missing option '--warehouse' / '-w'.")
    catalog = Catalog.open(warehouse, uri)
    click.echo(catalog.describe())  # damaged tables are listed, marked, among the others
    damaged = [exc.table for exc in damaged_tables(catalog)]
    if damaged:
        raise CatalogError(f"the metadata of {len(damaged)} table(s) is damaged: "
                           f"{', '.join(damaged)} (see above)")


@catalog_cmd.command("register")
@click.option("--warehouse", "-w", required=True, help="Warehouse directory.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "orc", "sqlite", "mysql"]),
              required=True, help="Format of the files (sqlite, mysql: a table of a database).")
@click.option("--table", "name", required=True, help="Name of the table in the catalog.")
@click.option("--path", required=True,
              help="A file, a folder (Hive key=value/ folders become partition columns) or a "
                   "glob; for sqlite the database file; for mysql the address "
                   "mysql://user[:password]@host[:port]/database (or the password in "
                   "MPP_MYSQL_PASSWORD).")
@click.option("--source-table", default=None,
              help="sqlite, mysql: table in the database (default: --table).")
@click.option("--fragments", type=limits.PARTITIONS.click_type(), default=4, show_default=True,
              help="sqlite: rowid ranges, mysql: primary-key ranges (parallel scan tasks). "
                   "Files: one fragment each.")
def catalog_register_cmd(warehouse: str, fmt: str, name: str, path: str,
                         source_table: str | None, fragments: int) -> None:
    """Register existing files (or a SQLite or MySQL table) as a table, read in place.

    Schema and statistics come from the files; DROP TABLE only forgets the table and never
    touches the files.
    """
    from mpp.catalog import Catalog

    catalog = Catalog.open(warehouse)
    if fmt == "sqlite":
        from mpp.catalog.sqlite_source import register_sqlite

        info = register_sqlite(catalog, name, path, source_table=source_table,
                               fragments=fragments)
    elif fmt == "mysql":
        from mpp.catalog.mysql_source import register_mysql

        info = register_mysql(catalog, name, path, source_table=source_table,
                              fragments=fragments)
    else:
        from mpp.catalog.files_source import register_files

        if source_table is not None:
            raise click.UsageError("--source-table applies to --format sqlite or mysql only")
        info = register_files(catalog, name, path, fmt)
    parts = (f", partitioned by {', '.join(info.partition_columns)}"
             if info.partition_columns else "")
    click.echo(f"registered {info.name}: {info.format.value} {info.location}, "
               f"{info.stats.row_count:,} rows, {info.stats.fragment_count} fragments{parts}")


@catalog_cmd.command("relocate")
@click.option("--warehouse", "-w", required=True, help="The copied or moved warehouse.")
def catalog_relocate_cmd(warehouse: str) -> None:
    """Make a copied or moved warehouse use its own files (the original is never touched)."""
    from mpp.catalog.relocate import relocate

    click.echo(relocate(warehouse).summary())


@catalog_cmd.command("clean")
@click.option("--warehouse", "-w", required=True, help="Warehouse directory.")
@click.option("--dry-run", is_flag=True, help="List the orphan files; delete nothing.")
@click.option("--older-than", "hours", type=click.FloatRange(min=0), default=24.0,
              show_default=True, help="Hours after which a write on another host counts as "
              "dead (writes on this host are checked by process id).")
def catalog_clean_cmd(warehouse: str, dry_run: bool, hours: float) -> None:
    """Remove orphan files: files in table folders that no table lists and no live write
    owns (left by killed writes and lost races). Registered files are never touched."""
    import datetime as dt

    from mpp.catalog import Catalog

    found = Catalog.open(warehouse).clean(dry_run=dry_run, older_than=dt.timedelta(hours=hours))
    for o in found.orphans:
        click.echo(f"{o.size:>12,}  {o.path}")
    for name in found.skipped:
        click.echo(f"skipped the folder of table {name}: its metadata cannot be read", err=True)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(found.orphans)} orphan file(s), {found.bytes:,} bytes")


@bench.command("datagen")
@click.option("--out", default=None, help="Output directory (default: a temp dir, deleted).")
@click.option("--keep", is_flag=True, help="Keep the generated warehouse.")
@_datagen_options
def bench_datagen_cmd(out: str | None, keep: bool, **knobs: object) -> None:
    """Wall time and peak memory (all processes) of generating a warehouse."""
    from mpp.bench.datagen import bench_datagen

    click.echo(bench_datagen(_spec(**knobs), out, keep=keep).summary())


@bench.command("skew")
@click.option("--rows", default=100_000_000, show_default=True, type=limits.ROWS.click_type(),
              help="access_log rows (day 13 carries 40%).")
@click.option("--partitions", default=1_000, show_default=True,
              type=limits.PARTITIONS.click_type(),
              help="access_log fragments.")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--hash-buckets", default=128, show_default=True,
              type=click.IntRange(1, MAX_HASH_BUCKETS),
              help="Buckets of every hash exchange (the final stages' task count).")
@click.option("--strategy", "strategies", multiple=True,
              type=click.Choice(["single_step", "pre_aggregate", "rewrite"]),
              help="Strategies to run (default: all three).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Compare each result with DuckDB's.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the figures to this JSON file.")
def bench_skew_cmd(rows: int, partitions: int, workers: int, threads: int, hash_buckets: int,
                   strategies: tuple[str, ...], check: bool, json_path: str | None) -> None:
    """Q1 per DISTINCT strategy on a hot day: wall time, skew, what-if makespan."""
    import json
    import os

    from mpp.bench.skew import STRATEGIES, bench_skew, format_runs

    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    runs = bench_skew(rows=rows, partitions=partitions, workers=workers, threads=threads,
                      hash_buckets=hash_buckets, strategies=strategies or STRATEGIES,
                      check=check)
    click.echo(format_runs(runs, load))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rows": rows, "partitions": partitions, "workers": workers,
                       "threads": threads, "hash_buckets": hash_buckets, "load": load,
                       "runs": [r.to_dict() for r in runs]}, f, indent=1)


@bench.command("joins")
@click.option("--fact-rows", type=limits.ROWS.click_type(), default=10_000_000, show_default=True,
              help="access_log rows (the fact table, fixed).")
@click.option("--dim-rows", default="1000,10000,100000,1000000,10000000", show_default=True,
              help="Dimension sizes to sweep (comma-separated).")
@click.option("--strategy", "strategies", multiple=True,
              type=click.Choice(["broadcast", "partitioned"]),
              help="Strategies (default: both).")
@click.option("--partitions", type=limits.PARTITIONS.click_type(), default=100,
              show_default=True, help="access_log fragments.")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--whatif", default="8,32,128", show_default=True,
              help="Worker counts to predict the makespan at (comma-separated).")
@click.option("--out", default=None, help="Warehouse directory (reused if it exists; default: "
              "a temp dir, deleted).")
@click.option("--repeats", default=3, show_default=True, type=limits.REPEATS.click_type(),
              help="Runs per (size, strategy); the fastest is reported.")
@click.option("--json", "json_path", default=None, help="Also write the runs as JSON here.")
def bench_joins_cmd(fact_rows: int, dim_rows: str, strategies: tuple[str, ...],
                    partitions: int, workers: int, threads: int, whatif: str,
                    out: str | None, repeats: int, json_path: str | None) -> None:
    """Broadcast vs partitioned join: wall time, bytes moved, peak worker memory, what-if."""
    import os

    from mpp.bench.joins import bench_joins, format_runs, write_json

    def ints(text: str, what: str, limit: limits.Limit) -> list[int]:
        try:
            values = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{what}: comma-separated integers, got {text!r}") from None
        for v in values:
            if limit.problem(v):
                raise click.BadParameter(f"{what}: each {limit.problem(v)}")
        return values

    load = os.getloadavg()
    runs = bench_joins(fact_rows=fact_rows, dims=ints(dim_rows, "--dim-rows", limits.ROWS),
                       strategies=strategies or ("broadcast", "partitioned"),
                       partitions=partitions, workers=workers, threads=threads,
                       whatif=ints(whatif, "--whatif", limits.WHATIF_WORKERS), out=out,
                       repeats=repeats)
    click.echo(f"fact {fact_rows:,} rows in {partitions} files; {workers} workers x {threads} "
               f"thread(s); load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    click.echo(format_runs(runs))
    if json_path:
        write_json(runs, json_path, fact_rows=fact_rows, partitions=partitions,
                   workers=workers, threads=threads, repeats=repeats, load_before=load[0],
                   load_after=os.getloadavg()[0])


@bench.command("formats")
@click.option("--rows", type=limits.ROWS.click_type(), default=10_000_000, show_default=True,
              help="access_log rows (up to 100M).")
@click.option("--days", type=limits.DAYS.click_type(), default=30, show_default=True)
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--format", "formats", multiple=True,
              type=click.Choice(["csv", "sqlite", "parquet", "orc"]),
              help="Formats to query (default: all four).")
@click.option("--target-file-size", default="128MB", show_default=True,
              help="target_file_size of the structured (CREATE TABLE AS) tables.")
@click.option("--out", default=None,
              help="Work directory, kept and reused by reruns (default: a temp dir, deleted).")
@click.option("--json", "json_path", default=None, type=click.Path(), help="Also write JSON.")
def bench_formats_cmd(rows: int, days: int, workers: int, threads: int,
                      formats: tuple[str, ...], target_file_size: str, out: str | None,
                      json_path: str | None) -> None:
    """Row vs column storage: CSV, SQLite, Parquet, ORC side by side (mpp and DuckDB)."""
    from pathlib import Path

    from mpp.bench.formats import FORMATS, bench_formats, format_report

    report = bench_formats(rows, workdir=out, workers=workers, threads=threads, days=days,
                           formats=formats or FORMATS, target_file_size=target_file_size,
                           log=lambda line: click.echo(line, err=True))
    click.echo(format_report(report), nl=False)
    if json_path:
        Path(json_path).write_text(report.to_json())


@bench.command("tpch")
@click.option("--scale-factor", default=1.0, show_default=True, type=float,
              help="TPC-H scale factor of the generated warehouse.")
@click.option("-w", "--warehouse", default=None, type=click.Path(),
              help="A TPC-H warehouse (mpp datagen --dataset tpch); default "
                   "/tmp/mpp-tpch-sf<SF>, generated there first if it is not there yet.")
@click.option("--query", "queries", multiple=True, metavar="qNN",
              help="Queries to run (default: all 22).")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Session setting for mpp's runs (repeatable).")
@click.option("--repeat", default=1, show_default=True, type=limits.REPEATS.click_type(),
              help="Timed runs per engine and query (after one untimed); the median is shown.")
def bench_tpch_cmd(scale_factor: float, warehouse: str | None, queries: tuple[str, ...],
                   workers: int, threads: int, assignments: tuple[str, ...],
                   repeat: int) -> None:
    """The 22 TPC-H queries on mpp and DuckDB over the same files: time, ratio, memory."""
    import datetime as dt
    import os
    import platform
    from pathlib import Path

    from mpp.bench.tpch import bench_tpch, format_runs
    from mpp.catalog import CATALOG_DB
    from mpp.config import parse_assignments
    from mpp.datagen.tpch import TpchSpec, generate_tpch

    where = Path(warehouse or f"/tmp/mpp-tpch-sf{scale_factor:g}")
    if not (where / CATALOG_DB).exists():
        click.echo(f"generating TPC-H SF {scale_factor:g} into {where} ...", err=True)
        generate_tpch(where, TpchSpec(scale_factor))
    load = os.getloadavg()
    runs = bench_tpch(where, queries=queries, workers=workers, threads=threads, repeat=repeat,
                      settings=parse_assignments(assignments))
    click.echo(f"TPC-H {where}; {workers} workers x {threads} thread(s); {os.cpu_count()} cores "
               f"({platform.processor() or platform.machine()}); load average before "
               f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
               f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    click.echo(format_runs(runs))


@bench.command("dedup")
@click.option("--warehouse", "-w", default=None,
              help="Warehouse for the events_dups table (generated if missing; default "
                   "/tmp/mpp-dedup-<rows>).")
@click.option("--rows", default=100_000_000, show_default=True, type=limits.ROWS.click_type(),
              help="Rows of events_dups, duplicates included.")
@click.option("--partitions", default=100, show_default=True,
              type=limits.PARTITIONS.click_type(), help="Files of events_dups.")
@click.option("--duplicates", default=0.05, show_default=True, type=click.FloatRange(0, 0.5),
              help="Share of rows that copy another message.")
@click.option("--hot", default=0.01, show_default=True, type=click.FloatRange(0, 0.5),
              help="Share of rows that copy one message (the hot key).")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Session setting for mpp's runs (repeatable), e.g. "
                   "aggregate.partial_skip_ratio=1 to reduce in every task.")
@click.option("--repeat", default=1, show_default=True, type=limits.REPEATS.click_type(),
              help="Timed runs per engine and query (after one untimed); the median is shown.")
def bench_dedup_cmd(warehouse: str | None, rows: int, partitions: int, duplicates: float,
                    hot: float, workers: int, threads: int, assignments: tuple[str, ...],
                    repeat: int) -> None:
    """De-duplication at read time with SQL (row_number() = 1, DISTINCT) on a table with
    duplicates and a hot key, on mpp and DuckDB: time, memory (see docs/ingestion.md)."""
    import datetime as dt
    import os

    from mpp.bench.dedup import generate
    from mpp.bench.queries import bench_queries, format_runs
    from mpp.config import parse_assignments

    where = warehouse or f"/tmp/mpp-dedup-{rows}"
    settings = parse_assignments(assignments)
    generate(where, rows=rows, partitions=partitions, duplicates=duplicates, hot=hot)
    load = os.getloadavg()
    runs = bench_queries(where, queries=("d1", "d2"), engines=("mpp", "duckdb"),
                         workers=workers, threads=threads, repeat=repeat, settings=settings)
    click.echo(f"events_dups in {where}: {rows:,} rows in {partitions} files, {duplicates:.0%} "
               f"copies of other messages, {hot:.0%} copies of one hot message; {workers} "
               f"workers x {threads} thread(s); {os.cpu_count()} cores; load average before "
               f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
               f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
               + "".join(f"; {k}={v}" for k, v in settings.items()))
    click.echo(format_runs(runs))


@bench.command("writes")
@click.option("-w", "--warehouse", default=None, type=click.Path(file_okay=False),
              help="Work directory: the generated warehouse (made once, reused by reruns of the "
                   "same sizes), mpp's tables and DuckDB's database file (default: a temp dir, "
                   "deleted).")
@click.option("--fact-rows", default=100_000_000, show_default=True,
              type=limits.ROWS.click_type(), help="access_log rows over 33 days (a day is 1/33).")
@click.option("--dim-rows", default=5_000_000, show_default=True, type=limits.ROWS.click_type(),
              help="Users of the dimension.")
@click.option("--changed", default=100_000, show_default=True, type=click.IntRange(2),
              help="Users in the MERGE source (half updates, half new users).")
@click.option("--small-files", default=1_000, show_default=True,
              type=click.IntRange(2, 100_000), help="Files of the table optimize compacts.")
@click.option("--step", "steps", multiple=True, type=click.Choice(["fact", "dim", "optimize"]),
              help="Steps to run (default: all three).")
@click.option("--workers", default=2, show_default=True, type=limits.WORKERS.click_type())
@click.option("--threads", default=1, show_default=True, type=limits.THREADS.click_type())
def bench_writes_cmd(warehouse: str | None, fact_rows: int, dim_rows: int, changed: int,
                     small_files: int, steps: tuple[str, ...], workers: int,
                     threads: int) -> None:
    """INSERT of a day into the fact table, MERGE into a dimension, optimize of small files:
    wall time and peak memory on mpp and DuckDB, tables checked against DuckDB's."""
    import datetime as dt
    import os

    from mpp.bench.writes import STEPS, bench_writes, format_runs

    load = os.getloadavg()
    runs = bench_writes(warehouse, fact_rows=fact_rows, dim_rows=dim_rows, changed=changed,
                        small_files=small_files, steps=steps or STEPS, workers=workers,
                        threads=threads)
    click.echo(f"fact {fact_rows:,} rows (33 days), dim {dim_rows:,} users, {changed:,} "
               f"changed, {small_files:,} small files; {workers} workers x {threads} "
               f"thread(s); {os.cpu_count()} cores; load average before {load[0]:.2f}, after "
               f"{os.getloadavg()[0]:.2f}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    click.echo(format_runs(runs))


@main.command("ingest")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--warehouse", "-w", default=None,
              help="Warehouse for the target table(s) (created if missing); needed when the "
                   "[ingest] section names a table.")
@click.option("--backend", type=click.Choice(["embedded", "mqtt", "jetstream"]), default=None,
              help="Override the section's broker backend.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="A progress bar with a live sent / delivered / lost / duplicated line.")
def ingest_cmd(scenario: str, warehouse: str | None, backend: str | None,
               progress: bool) -> None:
    """Run the pipeline of SCENARIO's [ingest] section, once per delivery mode and
    de-duplication, and print the checker's counts (see docs/ingestion.md)."""
    import dataclasses

    from tqdm import tqdm

    from mpp.ingest.pipeline import Progress, load_ingest, run_ingest

    name, spec = load_ingest(scenario)
    if backend is not None:
        spec = dataclasses.replace(spec, backend=backend)
    runs = len(spec.runs()) + len(spec.bulk_runs())
    with tqdm(total=spec.total_messages() * runs, desc=name, unit="msg",
              disable=not progress) as bar:
        def on_chunk(p: Progress) -> None:
            bar.update(p.index * p.planned + p.sent - bar.n)
            bar.set_postfix_str(f"{p.run}: {p.line()}")

        result = run_ingest(spec, warehouse=warehouse, on_chunk=on_chunk)
    click.echo(result.table())


if __name__ == "__main__":
    main()
