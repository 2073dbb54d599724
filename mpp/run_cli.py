"""``mpp run``, ``mpp list``, ``mpp report``, ``mpp validate-model``: run scenario files,
list the shipped scenarios, recompute a saved run's report, check the what-if model.

Thin: validation, running and reporting live in :mod:`mpp.scenario`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

from mpp import crash, limits

# Exit codes: 0 every check passed, 1 a check failed, 2 bad input (MppError, from the group).
EXIT_CHECK_FAILED = 1


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply the generated row count (e.g. 0.01 for a quick look; at most "
                   "10,000).")
@click.option("--out", default=None,
              help="Folder the run folders (<scenario>-<timestamp>) are written into "
                   "(default: $MPP_RUNS or ./runs).")
@click.option("--scheduler", default=None,
              help="An existing Dask scheduler (tcp://host:8786) instead of a LocalCluster.")
@click.option("--cache", default=None,
              help="Where generated warehouses are cached by data hash "
                   "(default: $MPP_CACHE or ~/.cache/mpp/warehouses).")
@click.option("--dashboard-address", default=None, metavar="HOST:PORT",
              help="Where the LocalCluster's dashboard listens, instead of the scenario's "
                   "[cluster] dashboard_address (default 127.0.0.1, any free port; "
                   "0.0.0.0:8787 exposes it to other machines); not with --scheduler.")
@click.option("--keep-open", is_flag=True,
              help="Keep the cluster (and its dashboard) up after the last run, until Ctrl-C.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run(files: tuple[str, ...], scale: float, out: str | None, scheduler: str | None,
        cache: str | None, dashboard_address: str | None, keep_open: bool,
        no_progress: bool) -> None:
    """Run scenario FILES: data, cluster, queries, DuckDB checks, report.

    Every file is validated before anything runs. Exits 1 if a check failed.
    """
    from mpp.errors import ScenarioError
    from mpp.execution.cluster import local_memory_problem
    from mpp.scenario.runner import run_scenario
    from mpp.scenario.spec import load_scenario

    if scheduler is not None and dashboard_address is not None:
        raise click.UsageError("--dashboard-address places the dashboard of the LocalCluster "
                               "mpp starts; with --scheduler the existing cluster keeps its own.")
    scenarios = [load_scenario(f, scale=scale) for f in files]  # all valid, or nothing runs
    if scheduler is None:  # every local cluster fits this machine, or nothing runs
        for sc in scenarios:
            problem = (None if sc.cluster.scheduler else
                       local_memory_problem(sc.cluster.workers, sc.cluster.memory_limit))
            if problem:
                raise ScenarioError(f"cluster.{problem[0]}: {problem[1]}.", file=sc.source)
    if dashboard_address is not None:
        scenarios = [dataclasses.replace(sc, cluster=dataclasses.replace(
            sc.cluster, dashboard_address=dashboard_address)) for sc in scenarios]
    failed: list[str] = []
    # An internal error's traceback file goes where the run folders go (the failed run's own
    # folder is removed: no half-written reports).
    runs = Path(out or os.environ.get("MPP_RUNS", "runs")).absolute()
    for i, sc in enumerate(scenarios):
        with crash.context(scenario=sc.name, folder=runs):
            outcome = run_scenario(sc, out=out, scheduler=scheduler, cache=cache,
                                   keep_open=keep_open and i == len(scenarios) - 1,
                                   progress=not no_progress, echo=click.echo)
        failed += [f"{sc.name}: {c.message}" for c in outcome.failures]
    if failed:
        click.echo(f"mpp: {len(failed)} check(s) failed:", err=True)
        for line in failed:
            click.echo(f"  {line}", err=True)
        sys.exit(EXIT_CHECK_FAILED)


@click.command("list")
@click.argument("folder", default="scenarios", type=click.Path(file_okay=False))
def list_(folder: str) -> None:
    """List the scenario files in FOLDER (default: ./scenarios) with their descriptions."""
    from mpp.errors import MppError
    from mpp.scenario.spec import load_scenario

    paths = sorted(Path(folder).glob("*.toml"))
    if not paths:
        raise MppError(f"no scenario files (*.toml) in {folder}")
    for path in paths:
        try:
            sc = load_scenario(path)
            d = sc.data
            size = (f"TPC-H SF {d.scale_factor:g}" if d.tpch
                    else f"{d.rows:,} rows / {d.partitions:,} fragments" if d.generated
                    else f"warehouse {d.warehouse}")
            click.echo(f"{str(path):40s} {sc.description}\n{'':40s} {size}; "
                       f"{len(sc.variants)} variant(s) x {len(sc.queries)} quer"
                       f"{'y' if len(sc.queries) == 1 else 'ies'}")
        except MppError as exc:
            click.echo(f"{str(path):40s} INVALID: {exc}")


@click.command("validate-model")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--workers", "counts", multiple=True, type=int,
              help="Worker counts to run at (default: 1 and 2; each a LocalCluster of "
                   "1-thread workers).")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply the generated row count.")
@click.option("--repeats", type=limits.REPEATS.click_type(), default=5, show_default=True,
              help="Interleaved passes at each count (1, 2, 1, 2, ...); the median error over "
                   "the passes is reported.")
@click.option("--warmup", type=limits.WARMUP.click_type(), default=1, show_default=True,
              help="Untimed runs of every query at the start of each pass (a fresh worker is "
                   "slower in its first queries).")
@click.option("--runs", type=limits.REPEATS.click_type(), default=3, show_default=True,
              help="Timed runs of every query in each pass; the median one is predicted from "
                   "and compared with (this machine's speed varies from run to run).")
@click.option("--out", default=None, help="Folder the run folders are written into.")
@click.option("--cache", default=None, help="Where generated warehouses are cached.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--from", "saved", default=None, type=click.Path(file_okay=False),
              help="Run nothing: recompute the tables from the run folders already in this "
                   "folder (an earlier validation's --out), with today's model.")
def validate_model(file: str | None, counts: tuple[int, ...], scale: float, repeats: int,
                   warmup: int, runs: int, out: str | None, cache: str | None, no_progress: bool,
                   saved: str | None) -> None:
    """Check the what-if model across worker counts: run FILE's scenario at each count,
    predict every count from every other, print the prediction errors (or, with --from,
    recompute them from runs already made)."""
    from mpp.scenario.model_check import revalidate
    from mpp.scenario.model_check import validate_model as run_checks
    from mpp.scenario.spec import load_scenario

    if saved is not None:
        if file is not None:
            raise click.UsageError("--from recomputes saved runs; give it without a "
                                   "scenario FILE")
        click.echo(revalidate(saved).table)
        return
    if file is None:
        raise click.UsageError("give a scenario FILE to run, or --from a folder of saved runs")
    counts = counts or (1, 2)
    for w in counts:
        if limits.WORKERS.problem(w):
            raise click.BadParameter(f"{limits.WORKERS.problem(w)}", param_hint="--workers")
    sc = load_scenario(file, scale=scale)
    check = run_checks(sc, counts, out=out, cache=cache, progress=not no_progress,
                       repeats=repeats, warmup=warmup, runs=runs)
    click.echo(check.table)
    if check.report is not None:
        click.echo(f"report (with this table): {check.report / 'report.html'}")


@click.command("report")
@click.argument("folder", type=click.Path(exists=True))
@click.option("--write", "out", default=None, type=click.Path(file_okay=False),
              help="Also write the recomputed report.json and report.html into this folder "
                   "(never over the saved run's).")
def report(folder: str, out: str | None) -> None:
    """Recompute a saved run's summary from its report.json (FOLDER: a run folder, or the
    file): the W= columns, the fit and the variants compared at the named warehouse, by
    today's what-if model from the saved task records. Runs no query."""
    from mpp.errors import MppError
    from mpp.scenario.report import format_summary, load_run, write_report

    data = load_run(folder)
    load = (data.environment or {}).get("load_average") or "not recorded"
    click.echo(f"{data.scenario} (started {data.started or '?'}): recomputed from "
               f"{sum(len(r.records) for r in data.runs):,} saved task records with today's "
               f"model; load average at the run: {load}; checks as saved")
    click.echo(format_summary(data))
    if out is not None:
        src = Path(folder)
        src = src if src.is_dir() else src.parent
        if Path(out).absolute() == src.absolute():
            raise MppError(f"{out}: is the saved run's folder; --write to another one")
        paths = write_report(data, out)
        click.echo(f"report: {paths['html']}")
