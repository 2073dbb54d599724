"""``mpp difftest``: run the differential test longer than the suite does, keep what fails."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from mpp.difftest import FLAGS


def failure_record(checked: Any, flags: frozenset[str]) -> dict[str, Any]:
    """A failing case as JSON-able data: how to regenerate it, both outcomes, the minimal query."""
    case = checked.case
    return {
        "seed": case.seed, "index": case.index, "flags": sorted(flags),
        "verdict": checked.verdict.kind, "detail": checked.verdict.detail,
        "settings": case.settings, "sql": case.sql,
        "minimal_sql": checked.minimal_sql, "minimal_settings": checked.minimal_settings,
        "mpp": checked.mpp.describe(), "duckdb": checked.duckdb.describe(),
    }


def write_failure(out: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as ``failure-<seed>-<index>.json`` and the minimal query beside it as
    a runnable ``.sql`` file."""
    stem = out / f"failure-{record['seed']}-{record['index']:06d}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".sql").write_text(_sql_file(record))


def _sql_file(record: dict[str, Any]) -> str:
    """The minimal failing query as a runnable file, what happened in comments on top."""
    def comment(text: str) -> str:
        return "\n".join(f"-- {line}".rstrip() for line in str(text).splitlines())

    settings = record["minimal_settings"] if record["minimal_sql"] else record["settings"]
    sets = " ".join(f"--set {k}={v}" for k, v in sorted(settings.items()))
    lines = [
        f"-- {record['verdict']}: seed {record['seed']}, case {record['index']}, "
        f"flags {','.join(record['flags']) or '(none)'}",
        f"-- settings: {sets or '(defaults)'}",
        comment(record["detail"]),
        "-- mpp:", comment(record["mpp"]),
        "-- DuckDB:", comment(record["duckdb"]),
        "-- generated query:", comment(record["sql"]),
        (record["minimal_sql"] or record["sql"]) + ";",
    ]
    return "\n".join(lines) + "\n"


def _prepare(path: Path, data_seed: int) -> None:
    """Build the difftest tables at ``path`` unless a warehouse is there; refuse a warehouse
    without them."""
    from mpp.catalog import CATALOG_DB, Catalog
    from mpp.difftest.data import TABLES, build_warehouse

    if not (path / CATALOG_DB).exists():
        build_warehouse(path, data_seed)
    missing = {t.name for t in TABLES} - set(Catalog.open(path).tables())
    if missing:
        raise click.UsageError(f"{path} is a warehouse without the difftest tables "
                               f"({', '.join(sorted(missing))}); give a new directory")


@click.command("difftest", epilog="Flags (each off by default): " + "; ".join(
    f"{name}: {meaning}" for name, meaning in FLAGS.items()) + ".")
@click.option("--queries", "-n", default=1000, show_default=True, type=click.IntRange(1),
              help="How many queries to generate and check.")
@click.option("--seed", default=0, show_default=True, help="Seed of the queries and settings.")
@click.option("--start", default=0, show_default=True, type=click.IntRange(0),
              help="Index of the first case (to resume or repeat one case).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Directory for summary.json and one .sql/.json pair per failure.")
@click.option("--enable", "flags", multiple=True, type=click.Choice(sorted(FLAGS)),
              help="Generate a construct gated behind a known bug (repeatable).")
@click.option("--data-seed", default=0, show_default=True, help="Seed of the tables' rows.")
@click.option("--shrink-budget", default=300, show_default=True, type=click.IntRange(0),
              help="Query runs spent minimizing each failure (0: keep it as generated).")
@click.option("--warehouse", "-w", default=None, type=click.Path(file_okay=False),
              help="Build the tables here and keep them (reused if already built), so that "
                   "failures can be rerun with `mpp sql -w`. Default: a temporary directory.")
@click.option("--scheduler", default=None, metavar="ADDR",
              help="An existing Dask scheduler (tcp://host:8786) instead of a 2-worker "
                   "LocalCluster.")
def difftest(queries: int, seed: int, start: int, out: str, flags: tuple[str, ...],
             data_seed: int, shrink_budget: int, warehouse: str | None,
             scheduler: str | None) -> None:
    """Check random queries against DuckDB; write each minimal failing query into OUT.

    Each query is generated from (SEED, case index) and runs under its own random planner
    settings. Exits 1 if any query failed.
    """
    from tqdm import tqdm

    import mpp
    from mpp.difftest.runner import run_cases
    from mpp.execution.cluster import ClusterSpec

    enabled = frozenset(flags)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mpp-difftest-") as tmp:
        path = Path(warehouse) if warehouse is not None else Path(tmp) / "warehouse"
        _prepare(path, data_seed)
        spec = ClusterSpec(scheduler=scheduler)
        with mpp.connect(path, cluster=spec) as session, \
                tqdm(total=queries, desc="difftest", unit="query") as bar:
            def on_case(checked: Any) -> None:
                bar.update()
                if checked.verdict.failed:
                    write_failure(target, failure_record(checked, enabled))
                    bar.write(f"case {checked.case.index}: {checked.verdict.kind}: "
                              f"{checked.verdict.detail[:200]}")
                    failed.append(checked.case.index)
                    bar.set_postfix(failed=len(failed))

            failed: list[int] = []
            report = run_cases(session, seed=seed, queries=queries, start=start, flags=enabled,
                               shrink_budget=shrink_budget, on_case=on_case)
    summary = {"seed": seed, "start": start, "queries": report.queries, "flags": sorted(enabled),
               "data_seed": data_seed, "verdicts": dict(report.verdicts),
               "failures": len(report.failures), "coverage": dict(sorted(report.coverage.items())),
               "settings": dict(sorted(report.settings.items()))}
    (target / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(report.verdicts.items()))
    click.echo(f"{report.queries} queries: {verdicts}; {len(report.failures)} failed "
               f"(written to {target})")
    sys.exit(1 if report.failures else 0)
