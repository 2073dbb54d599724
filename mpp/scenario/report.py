"""A scenario run's report: ``report.json``, a self-contained ``report.html`` and a terminal table.

The runner hands over a :class:`RunData` (environment, data checksum, and per variant x query
the plan text, metrics and task records); :func:`query_run` derives what the report shows from
the records alone: skew per stage (:mod:`mpp.metrics.skew`) and what-if predictions
(:mod:`mpp.metrics.whatif`). Nothing here runs queries.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from mpp.errors import MppError
from mpp.metrics.calibration import Calibration, calibrate, predict_calibrated, task_cpu
from mpp.metrics.records import TaskRecord, format_key
from mpp.metrics.skew import StageSkew, skew_by_stage
from mpp.metrics.whatif import (
    Overheads,
    Prediction,
    StageTiming,
    measure_overheads,
    measured_makespan,
    predict_makespan,
)
from mpp.scenario.spec import WhatIf

REPORT_FORMAT = "mpp-report/1"
_VERSIONED = ("mpp", "dask", "distributed", "pyarrow", "pandas", "sqlglot", "duckdb",
              "pyiceberg", "bokeh")


@dataclass(frozen=True, slots=True)
class QueryRun:
    """One query under one variant: what ran, what it measured, and what that implies.

    ``records`` are the task records of the repeat the report shows (the runner's choice,
    typically the last); ``wall_s`` has one wall time per repeat.
    """

    variant: str
    query: str
    sql: str
    plan: str
    wall_s: tuple[float, ...]
    records: tuple[TaskRecord, ...]
    skew: Mapping[int, StageSkew]
    whatif: Mapping[int, Prediction]
    result_rows: int | None = None
    oracle: str | None = None  # "equal", "differs: ...", or None when not checked
    metrics: Mapping[str, Any] = field(default_factory=dict)
    stage_deps: Mapping[int, tuple[int, ...]] | None = None  # from the plan; None = default
    threads_per_worker: int = 1
    workers: int | None = None  # the real worker count the records come from
    overheads: Overheads | None = None  # measured from the run, used by the predictions
    options: Mapping[str, Any] = field(default_factory=dict)  # predict_makespan's keywords
    # The run's costs separated (mpp.metrics.calibration); None: durations replayed as given.
    calibration: Calibration | None = None

    def predict(self, workers: int) -> Prediction:
        """The what-if prediction on a warehouse of ``workers`` nodes, each with cores of its
        own (precomputed or replayed with the same model)."""
        if workers in self.whatif:
            return self.whatif[workers]
        if self.calibration is not None:
            return predict_calibrated(self.records, workers, self.calibration,
                                      **_replay_options(self.options))
        return predict_makespan(self.records, workers, **self.options)

    def predict_here(self, workers: int) -> Prediction:
        """The prediction for ``workers`` workers on the machine the run was measured on:
        its cores shared by them and by the other load measured during the run (what
        ``mpp validate-model`` compares with real runs at other worker counts)."""
        if self.calibration is None:
            return self.predict(workers)
        return predict_calibrated(self.records, workers, self.calibration,
                                  shared_cores=self.calibration.cores,
                                  **_replay_options(self.options))

    @property
    def fit_error(self) -> float | None:
        """The model's calibration check: prediction at the real worker count / wall - 1."""
        if not (self.records and self.wall_s and self.workers and self.wall_s[-1] > 0):
            return None
        return self.predict_here(self.workers).makespan / self.wall_s[-1] - 1.0

    @property
    def wall_median_s(self) -> float:
        """Median wall time over the repeats, the lower middle for an even count, so that it is
        the wall time of one real repeat: the one whose records the run holds (0 when none)."""
        return statistics.median_low(self.wall_s) if self.wall_s else 0.0

    def verdict_summary(self) -> str:
        """The tripped skew verdicts of every stage, each named with its stage, as the summary
        table shows them: ``s1: trino, redshift; s3: time`` (``none`` when nothing tripped)."""
        parts = [f"s{stage}: " + ", ".join(v.name.split("_")[0] for v in sk.tripped)
                 for stage, sk in sorted(self.skew.items()) if sk.skewed]
        return "; ".join(parts) or "none"

    @property
    def final_stage(self) -> StageSkew | None:
        """Skew of the highest-numbered stage (the one producing the result)."""
        return self.skew[max(self.skew)] if self.skew else None


def query_run(variant: str, query: str, *, sql: str, plan: str, wall_s: Sequence[float],
              records: Sequence[TaskRecord], whatif: WhatIf | None = None,
              stage_deps: Mapping[int, Collection[int]] | None = None,
              threads_per_worker: int = 1, workers: int | None = None,
              result_rows: int | None = None, oracle: str | None = None,
              metrics: Mapping[str, Any] | None = None, cores: int | None = None) -> QueryRun:
    """Build a :class:`QueryRun`, computing skew per stage and the what-if predictions.

    ``workers`` is the real worker count (default: the workers seen in the records). With
    ``whatif.measured_overheads`` and records that carry CPU times, the run is calibrated
    (:func:`~mpp.metrics.calibration.calibrate`: task CPU, per-task worker and scheduler costs,
    the fixed per-query cost and what they leave of the span kept apart, against the last
    repeat's wall time, the repeat whose records these are; ``cores``: the measuring
    machine's, by default this one's) and the predictions replay it on dedicated nodes;
    records without CPU times are replayed as measured, with the run's mean task gap and
    outside-the-span time added (:func:`~mpp.metrics.whatif.measure_overheads`).
    """
    recs = tuple(records)
    whatif = whatif or WhatIf()
    deps = {s: tuple(u) for s, u in stage_deps.items()} if stage_deps is not None else None
    overheads = (measure_overheads(recs, wall_s[-1] if wall_s else None)
                 if whatif.measured_overheads else Overheads(0.0, 0.0))
    options = {"stage_deps": deps, "bandwidth_bytes_per_s": whatif.bandwidth_bytes_per_s,
               "task_overhead_s": whatif.task_overhead_s + overheads.task_s,
               "fixed_overhead_s": overheads.fixed_s, "threads_per_worker": threads_per_worker}
    real = workers or len({r.worker for r in recs}) or None
    calibration = None
    if recs and wall_s and real and whatif.measured_overheads and all(
            r.cpu_s is not None for r in recs):
        calibration = calibrate(recs, wall_s[-1], workers=real,
                                cores=cores or os.cpu_count() or 1,
                                client_cpu_s=(metrics or {}).get("client_cpu_s"),
                                worker_cpu_s=(metrics or {}).get("worker_cpu_s"),
                                graph_tasks=graph_tasks(metrics or {}, plan, len(recs)),
                                transfer_s=(metrics or {}).get("transfer_s_per_byte") or 0.0,
                                **_replay_options(options))
        calibration = replace(calibration,
                              task_s=calibration.task_s + whatif.task_overhead_s)
    run = QueryRun(variant, query, sql, plan, tuple(wall_s), recs,
                   skew_by_stage(recs, stage_deps=stage_deps) if recs else {}, {},
                   result_rows, oracle, dict(metrics or {}), deps, threads_per_worker,
                   real, overheads, options, calibration)
    predictions = {w: run.predict(w) for w in whatif.workers} if recs else {}
    if recs and whatif.warehouse_nodes:  # the named warehouse: its nodes with its threads
        threads = {"threads_per_worker": whatif.warehouse_threads}
        predictions[whatif.warehouse_nodes] = (
            predict_calibrated(recs, whatif.warehouse_nodes, calibration,
                               **{**_replay_options(options), **threads})
            if calibration is not None
            else predict_makespan(recs, whatif.warehouse_nodes, **{**options, **threads}))
    return replace(run, whatif=predictions)


def run_from_dict(d: Mapping[str, Any], whatif: WhatIf | None = None,
                  cores: int | None = None) -> QueryRun:
    """A :class:`QueryRun` from its saved form (:func:`run_to_dict`, a report.json's ``runs``
    item): the task records and measurements as they were, the skew and what-if recomputed by
    today's code (``whatif``: the scenario's, from the report's ``spec``; ``cores``: those of
    the machine that ran it, from the report's ``environment``)."""
    deps = d.get("stage_deps")
    return query_run(
        d["variant"], d["query"], sql=d.get("sql", ""), plan=d.get("plan", ""),
        wall_s=d["wall_s"], records=[TaskRecord.from_dict(t) for t in d.get("tasks", ())],
        whatif=whatif, stage_deps=({int(s): tuple(u) for s, u in deps.items()}
                                   if deps is not None else None),
        threads_per_worker=d.get("threads_per_worker", 1), workers=d.get("workers"),
        result_rows=d.get("result_rows"), oracle=d.get("oracle"), metrics=d.get("metrics"),
        cores=cores)


def graph_tasks(metrics: Mapping[str, Any], plan: str, recorded: int) -> int:
    """Tasks of the graph a run ran: its ``graph_tasks`` metric, or for a report written
    before it had one, the recorded tasks and the split tasks its plan text names
    (``... and 2,048 split tasks``; split tasks leave no record)."""
    if metrics.get("graph_tasks"):
        return int(metrics["graph_tasks"])
    splits = re.findall(r"\band ([\d,]+) split tasks?\b", plan)
    return recorded + sum(int(n.replace(",", "")) for n in splits)


def _replay_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The replay's keywords without the overheads the calibration replaces."""
    return {k: v for k, v in options.items() if k not in ("task_overhead_s", "fixed_overhead_s")}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one scenario check (oracle equality or an expectation)."""

    check: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class RunData:
    """Everything a report shows about one scenario run."""

    scenario: str
    spec: Mapping[str, Any]  # Scenario.to_dict()
    environment: Mapping[str, Any]
    data_hash: str
    data_checksum: str | None
    runs: tuple[QueryRun, ...]
    checks: tuple[CheckResult, ...] = ()
    started: str = ""
    dashboard: str | None = None
    ingest: tuple[Mapping[str, Any], ...] = ()  # the [ingest] runs (RunRow.as_dict())
    mart: Mapping[str, Any] | None = None  # the [mart] pipeline (MartResult.as_dict())
    model_check: str = ""  # mpp validate-model's error table, when this run was one of its

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)


def environment() -> dict[str, Any]:
    """Where the run happened: Python, platform, cores, memory and library versions."""
    import psutil

    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total, "versions": versions,
        "load_average": load_average(),
    }


def load_average() -> str:
    """The machine's load averages over 1, 5 and 15 minutes, as reports print them (the other
    users' load is what the what-if model's background term stands for)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not on this platform
        return "unknown"


def load_run(folder: str | os.PathLike[str]) -> RunData:
    """A saved run (a run folder's ``report.json``, or the file itself) with its skew and
    what-if recomputed from its task records by today's model (the scenario's ``[whatif]``
    and ``[warehouse]`` from the saved spec, the cores of the machine that ran it); the
    checks are the run's own, as saved. Nothing is run.

    Raises:
        MppError: no report there, or one that cannot be read.
    """
    from mpp.scenario.spec import parse_whatif

    path = Path(folder)
    path = path / "report.json" if path.is_dir() else path
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        spec = d.get("spec") or {}
        env = d.get("environment") or {}
        whatif = parse_whatif(spec, source=str(path))
        runs = tuple(run_from_dict(r, whatif, env.get("cpus")) for r in d.get("runs", ()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MppError(f"{path}: cannot read the saved run: {exc}") from None
    data = d.get("data") or {}
    return RunData(d.get("scenario", "?"), spec, env, data.get("hash", ""),
                   data.get("checksum"), runs,
                   tuple(CheckResult(c["check"], c["ok"], c["message"])
                         for c in d.get("checks", ())),
                   d.get("started", ""), d.get("dashboard"), tuple(d.get("ingest", ())),
                   d.get("mart"), d.get("model_check", ""))


def _finite(value: Any) -> Any:
    """JSON has no infinity: ratios with a zero median become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_to_dict(run: QueryRun) -> dict[str, Any]:
    """The JSON-ready form of one query run, task records included."""
    return {
        "variant": run.variant, "query": run.query, "sql": run.sql, "plan": run.plan,
        "wall_s": list(run.wall_s), "wall_median_s": run.wall_median_s,
        "measured_makespan_s": measured_makespan(run.records),
        "result_rows": run.result_rows, "oracle": run.oracle,
        "metrics": {k: _finite(v) for k, v in run.metrics.items()},
        "stages": [sk.to_dict() for sk in run.skew.values()],
        "whatif": {str(w): p.to_dict() for w, p in run.whatif.items()},
        "stage_deps": ({str(s): list(u) for s, u in run.stage_deps.items()}
                       if run.stage_deps is not None else None),
        "workers": run.workers, "threads_per_worker": run.threads_per_worker,
        "overheads": ({"task_s": run.overheads.task_s, "fixed_s": run.overheads.fixed_s}
                      if run.overheads else None),
        "calibration": run.calibration.to_dict() if run.calibration else None,
        "fit_error": run.fit_error,
        "task_count": len(run.records),
        "tasks": [r.to_dict() for r in run.records],
    }


def report_dict(data: RunData) -> dict[str, Any]:
    """The whole report as one JSON-ready dict (the content of report.json)."""
    return {
        "format": REPORT_FORMAT, "scenario": data.scenario, "started": data.started,
        "spec": dict(data.spec), "environment": dict(data.environment),
        "data": {"hash": data.data_hash, "checksum": data.data_checksum},
        "dashboard": data.dashboard, "ok": data.ok,
        "checks": [{"check": c.check, "ok": c.ok, "message": c.message} for c in data.checks],
        "runs": [run_to_dict(r) for r in data.runs],
    } | ({"ingest": [_finite_all(r) for r in data.ingest]} if data.ingest else {}) \
      | ({"mart": _finite_all(data.mart)} if data.mart else {}) \
      | ({"model_check": data.model_check} if data.model_check else {})


def _finite_all(value: Any) -> Any:
    """:func:`_finite` through nested dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _finite_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_all(v) for v in value]
    return _finite(value)


def write_report(data: RunData, folder: str | Path) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder``; return their paths.

    Each file is written to a temporary name and renamed into place, so a failure never leaves
    a half-written report behind.
    """
    from mpp.scenario.plots import report_html

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "html": out / "report.html"}
        _atomic_write(paths["json"], json.dumps(report_dict(data), indent=1, default=str))
        _atomic_write(paths["html"], report_html(data))
    except OSError as exc:
        raise MppError(f"{out}: cannot write the report: {exc.strerror or exc}") from None
    return paths


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def comparison_workers(data: RunData) -> int | None:
    """The worker count variants are compared at: the named warehouse's nodes when the
    scenario has a ``[warehouse]``, else the largest what-if count (None: no predictions)."""
    nodes = (data.spec.get("warehouse") or {}).get("nodes")
    counts = {w for r in data.runs for w in r.whatif}
    if nodes in counts:
        return int(nodes)
    return max(counts) if counts else None


def _straggler(run: QueryRun, timing: StageTiming) -> TaskRecord:
    """The task of a stage the replay ran longest (its key in the timing; for a prediction
    saved without it, the most CPU seconds when the run is calibrated, else the longest
    measured)."""
    recs = [r for r in run.records if r.stage == timing.stage]
    named = [r for r in recs if r.key == timing.longest_key]
    if named:
        return named[0]
    return max(recs, key=task_cpu if run.calibration is not None else (lambda r: r.duration))


def format_comparison(data: RunData) -> str:
    """Per query run under several variants, each variant's predicted makespan at
    :func:`comparison_workers`, its ratio to the fastest variant's, and its straggler: the
    longest task of its critical stage, that task's share of the makespan and the key values
    it held (the seed's "one hot day's task is the whole stage" read off the plan that ran).
    Empty when no query ran under two variants."""
    w = comparison_workers(data)
    by_query: dict[str, list[QueryRun]] = {}
    for r in data.runs:
        if w is not None and w in r.whatif:
            by_query.setdefault(r.query, []).append(r)
    rows = [["query", "variant", f"W={w} s", "x fastest", "straggler s", "share", "stage",
             "straggler's keys"]]
    for query, runs in by_query.items():
        if len(runs) < 2:
            continue
        best = min(r.whatif[w].makespan for r in runs)  # type: ignore[index]
        for r in runs:
            p = r.whatif[w]  # type: ignore[index]
            stage = p.critical_stage
            longest = p.stage(stage).longest_task_s if stage is not None else 0.0
            held = _straggler(r, p.stage(stage)).hot_keys[:2] if stage is not None else ()
            keys = ", ".join(f"{format_key(k)} ({n:,} rows)" for k, n in held)
            rows.append([query, r.variant, f"{p.makespan:.3f}",
                         f"{p.makespan / best:.2f}x" if best > 0 else "-", f"{longest:.3f}",
                         f"{longest / p.makespan:.0%}" if p.makespan > 0 else "-",
                         str(stage) if stage is not None else "-", keys or "-"])
    if len(rows) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(n) for c, n in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * n for n in widths))
    return (f"variants at W={w} (predicted makespan; straggler = longest task of the critical "
            f"stage, share = its seconds over the makespan):\n" + "\n".join(lines))


def format_summary(data: RunData) -> str:
    """The terminal table: per variant x query, wall time, final-stage skew ratio, the skew
    verdicts of every stage (named by stage) and what-if."""
    workers = sorted({w for r in data.runs for w in r.whatif})
    head = ["variant", "query", "wall s", "tasks", "final max/med rows", "skew verdicts",
            *[f"W={w} s" for w in workers], "fit", "oracle"]
    rows = [head]
    for r in data.runs:
        final = r.final_stage
        ratio = f"{final.rows.max_over_median:.2f}" if final else "-"
        rows.append([r.variant, r.query, f"{r.wall_median_s:.3f}", str(len(r.records)), ratio,
                     r.verdict_summary(),
                     *[f"{r.whatif[w].makespan:.3f}" if w in r.whatif else "-" for w in workers],
                     f"{r.fit_error:+.0%}" if r.fit_error is not None else "-", r.oracle or "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r.fit_error is not None for r in data.runs):
        lines.append("fit: what-if prediction at the real worker count vs the measured wall time")
    comparison = format_comparison(data)
    if comparison:
        lines += ["", comparison]
    if data.ingest:
        from mpp.ingest.pipeline import format_rows

        lines += ["", "ingestion (checker counts per delivery mode / de-duplication):",
                  format_rows(data.ingest)]
    if data.mart:
        from mpp.mart.steps import format_mart

        lines += ["", format_mart(data.mart)]
    for c in data.checks:
        lines.append(("PASS " if c.ok else "FAIL ") + c.message)
    return "\n".join(lines)
