"""Per-stage skew diagnostics from measured task records.

For every stage: task time, rows and input bytes as min / p50 / p99 / max and the max/median
ratio; the slowest task and the heaviest task (most input rows) with the key values they held,
which attributes a straggler to its hot key; and three verdicts in the vocabularies users know:

* ``trino_input_skewed``: Trino's EXPLAIN ANALYZE prints "Amount of input data processed by the
  workers for this stage might be skewed" when the t-digest of the tasks' processed input bytes
  has ``valueAt(0.99) > 2 * valueAt(0.49)`` (``PlanPrinter.formatFragment``).
* ``spark_skewed_partition``: Spark AQE's ``OptimizeSkewedJoin`` calls a partition skewed when
  ``size > skewedPartitionFactor (5) * median size`` **and**
  ``size > skewedPartitionThresholdInBytes (256 MB)``; the median is Spark's (mean of the two
  middle sizes for an even count, integer bytes, at least 1).
* ``redshift_skew_rows``: Redshift's ``SVV_TABLE_INFO.skew_rows`` is rows of the slice with the
  most rows / rows of the slice with the fewest; its tuning guide says to reconsider the
  distribution at a skew of 4.00 or higher. Here each partition task of the stage plays a slice.
* ``time_straggler``: the slowest task took more than 3 x the median task time **and** at least
  ``metrics.skew_floor_seconds`` (0.05 s) longer than it: a straggler that costs the stage real
  time. The three rules above judge data (input bytes, rows); this one judges time, since a task
  can straggle on the same input (a slow worker, a spill, a costly key).

Floors: a stage whose largest task takes fewer than ``metrics.skew_floor_rows`` (10,000) rows in
is never called skewed by the data rules (a 4-task stage holding 13 rows is not a distribution
problem; Spark's rule has its own 256 MiB floor), and the time rule needs the absolute gap above.
Every verdict names the measure it judged (:attr:`Verdict.measure`).

Percentiles (documented in docs/architecture/metrics.md): p50 is the median (the mean of the
two middle values for an even count); every other percentile is nearest-rank, the
``ceil(p/100 * n)``-th smallest value, so p99 of up to 100 tasks is the maximum. Trino uses a
t-digest, which interpolates; nearest-rank is exact and reproducible on small task sets.

A task's input bytes are ``bytes_read`` when its stage reads storage; otherwise (a stage fed by an
exchange) ``rows_in`` times the mean width of the rows its upstream stages sent
(``bytes_sent / rows_out``), since a task record does not carry received bytes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mpp import config
from mpp.metrics.records import TaskRecord, format_key

MiB = 1024 * 1024
SPARK_SKEW_FACTOR = 5.0  # spark.sql.adaptive.skewJoin.skewedPartitionFactor
# spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes: a setting
# (metrics.spark_skew_threshold_bytes) so a scenario variant or `--set` can move it, as Spark's is.
SPARK_SKEW_THRESHOLD_BYTES: int = config.SETTINGS["metrics.spark_skew_threshold_bytes"].default
TRINO_SKEW_FACTOR = 2.0  # p99 > 2 x p49 of task input
REDSHIFT_SKEW_ROWS = 4.0  # "a skew value of 4.00 or higher"
TIME_SKEW_FACTOR = 3.0  # the slowest task over 3 x the median task time
SKEW_FLOOR_ROWS: int = config.SETTINGS["metrics.skew_floor_rows"].default
SKEW_FLOOR_SECONDS: float = config.SETTINGS["metrics.skew_floor_seconds"].default


def skew_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`stage_skew` that come from settings (defaults for
    those ``settings`` lacks)."""
    return {"spark_threshold_bytes": int(settings.get("metrics.spark_skew_threshold_bytes",
                                                      SPARK_SKEW_THRESHOLD_BYTES)),
            "floor_rows": int(settings.get("metrics.skew_floor_rows", SKEW_FLOOR_ROWS)),
            "floor_seconds": float(settings.get("metrics.skew_floor_seconds",
                                                SKEW_FLOOR_SECONDS))}


# Names of the verdicts, as they appear in StageSkew.metrics() (1.0 tripped, 0.0 not).
VERDICTS = ("trino_input_skewed", "spark_skewed_partition", "redshift_skew_rows",
            "time_straggler")


def nearest_rank(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of already sorted values.

    >>> nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 49)
    5
    >>> nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)
    10
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ratio(top: float, bottom: float) -> float:
    """top / bottom, with 0/0 = 1 (all equal) and x/0 = inf."""
    if bottom == 0:
        return 1.0 if top == 0 else math.inf
    return top / bottom


@dataclass(frozen=True, slots=True)
class Dist:
    """A distribution over a stage's tasks: min, p49, p50 (median), p99, max."""

    min: float
    p49: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Dist:
        """Summarise ``values`` (at least one)."""
        s = sorted(values)
        return cls(s[0], nearest_rank(s, 49), statistics.median(s), nearest_rank(s, 99), s[-1])

    @property
    def max_over_median(self) -> float:
        """The skew ratio: max / median (1.0 when balanced; inf when the median is 0)."""
        return _ratio(self.max, self.p50)


@dataclass(frozen=True, slots=True)
class TaskRef:
    """One notable task of a stage (the slowest or the heaviest) and the keys it held."""

    partition: int
    worker: str
    key: str
    seconds: float
    rows_in: int
    hot_keys: tuple[tuple[Any, int], ...]

    @classmethod
    def of(cls, r: TaskRecord) -> TaskRef:
        """The reference to record ``r``."""
        return cls(r.partition, r.worker, r.key, r.duration, r.rows_in, r.hot_keys)

    def describe(self) -> str:
        """One line: partition, worker, time, rows and hot keys."""
        keys = ", ".join(f"{format_key(k)} ({n:,})" for k, n in self.hot_keys) or "none recorded"
        return (f"partition {self.partition} on {self.worker}: {self.seconds:.3f}s, "
                f"{self.rows_in:,} rows in; hot keys: {keys}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A named skew rule applied to a stage: whether it tripped, and the figures behind it."""

    name: str
    tripped: bool
    detail: str
    measure: str = "input bytes"  # what the rule judged: input bytes, rows or time

    def label(self) -> str:
        """``name (measure)``, as EXPLAIN ANALYZE and the summaries name a tripped verdict."""
        return f"{self.name} ({self.measure})"


@dataclass(frozen=True, slots=True)
class StageSkew:
    """Skew statistics and verdicts for one stage of one query."""

    stage: int
    name: str
    tasks: int
    seconds: Dist
    rows: Dist
    input_bytes: Dist
    slowest: TaskRef
    heaviest: TaskRef
    verdicts: tuple[Verdict, ...]
    exchange_tasks: int = 0  # the stage's exchange helper tasks (not in the statistics)

    @property
    def skewed(self) -> bool:
        """True when any verdict tripped."""
        return any(v.tripped for v in self.verdicts)

    @property
    def tripped(self) -> tuple[Verdict, ...]:
        """The verdicts that tripped, in :data:`VERDICTS` order."""
        return tuple(v for v in self.verdicts if v.tripped)

    def verdict(self, name: str) -> Verdict:
        """The verdict called ``name`` (one of :data:`VERDICTS`)."""
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(name)

    def metrics(self) -> dict[str, float]:
        """Flat named figures (the names scenario expectations use; see :data:`SKEW_METRICS`)."""
        # "tasks" counts every task recorded under the stage, exchange helpers included.
        out: dict[str, float] = {"tasks": float(self.tasks + self.exchange_tasks),
                                 "exchange_tasks": float(self.exchange_tasks)}
        for label, dist in (("seconds", self.seconds), ("rows", self.rows),
                            ("input_bytes", self.input_bytes)):
            for field in ("min", "p50", "p99", "max"):
                out[f"{field}_{label}"] = float(getattr(dist, field))
            out[f"max_over_median_{label}"] = dist.max_over_median
        for v in self.verdicts:
            out[v.name] = 1.0 if v.tripped else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (infinite ratios become None)."""
        metrics = {k: (v if math.isfinite(v) else None) for k, v in self.metrics().items()}
        return {
            "stage": self.stage, "name": self.name, "metrics": metrics,
            "exchange_tasks": self.exchange_tasks,
            "slowest": _ref_dict(self.slowest), "heaviest": _ref_dict(self.heaviest),
            "verdicts": [{"name": v.name, "measure": v.measure, "tripped": v.tripped,
                          "detail": v.detail} for v in self.verdicts],
        }


def _ref_dict(ref: TaskRef) -> dict[str, Any]:
    return {"partition": ref.partition, "worker": ref.worker, "key": ref.key,
            "seconds": ref.seconds, "rows_in": ref.rows_in,
            "hot_keys": [[format_key(k), n] for k, n in ref.hot_keys]}


# Every name StageSkew.metrics() returns, for validating scenario expectations up front.
SKEW_METRICS: tuple[str, ...] = ("tasks", "exchange_tasks") + tuple(
    f"{field}_{label}"
    for label in ("seconds", "rows", "input_bytes")
    for field in ("min", "p50", "p99", "max", "max_over_median")
) + VERDICTS


def spark_median(sizes: Sequence[int]) -> int:
    """Spark AQE's median partition size: integer mean of the two middle sizes, at least 1."""
    s = sorted(int(x) for x in sizes)
    n = len(s)
    mid = (s[n // 2] + s[n // 2 - 1]) // 2 if n % 2 == 0 else s[n // 2]
    return max(mid, 1)


def trino_verdict(input_sizes: Sequence[float], factor: float = TRINO_SKEW_FACTOR) -> Verdict:
    """Trino's rule: task input p99 > ``factor`` x p49 means the input might be skewed."""
    s = sorted(input_sizes)
    p99, p49 = nearest_rank(s, 99), nearest_rank(s, 49)
    tripped = p99 > factor * p49
    return Verdict("trino_input_skewed", tripped,
                   f"task input p99 {p99:,.0f} {'>' if tripped else '<='} "
                   f"{factor:g} x p49 {p49:,.0f}")


def spark_verdict(sizes: Sequence[int], *, factor: float = SPARK_SKEW_FACTOR,
                  threshold_bytes: int = SPARK_SKEW_THRESHOLD_BYTES) -> Verdict:
    """Spark AQE's rule: some partition > ``factor`` x median size and > ``threshold_bytes``."""
    median = spark_median(sizes)
    limit = max(factor * median, threshold_bytes)
    skewed = [x for x in sizes if x > limit]
    biggest = max(sizes)
    if skewed:
        detail = (f"{len(skewed)} partition(s) over max({factor:g} x median {median:,}, "
                  f"{threshold_bytes:,}) bytes; largest {biggest:,}")
    else:
        detail = (f"largest {biggest:,} bytes <= max({factor:g} x median {median:,}, "
                  f"{threshold_bytes:,})")
    return Verdict("spark_skewed_partition", bool(skewed), detail)


def redshift_verdict(rows: Sequence[int], limit: float = REDSHIFT_SKEW_ROWS) -> Verdict:
    """Redshift's skew_rows: rows of the largest slice / rows of the smallest, flagged at >= 4."""
    ratio = _ratio(max(rows), min(rows))
    tripped = ratio >= limit
    return Verdict("redshift_skew_rows", tripped,
                   f"skew_rows {max(rows):,} / {min(rows):,} = {ratio:.2f} "
                   f"{'>=' if tripped else '<'} {limit:g}", "rows")


def time_verdict(seconds: Sequence[float], *, factor: float = TIME_SKEW_FACTOR,
                 floor_seconds: float = SKEW_FLOOR_SECONDS) -> Verdict:
    """A straggler in time: the slowest task over ``factor`` x the median task time and at
    least ``floor_seconds`` longer than the median (milliseconds of jitter are not skew)."""
    median, slowest = statistics.median(seconds), max(seconds)
    over, gap = slowest > factor * median, slowest - median
    tripped = len(seconds) > 1 and over and gap >= floor_seconds
    if tripped:
        detail = (f"slowest task {slowest:.3f} s > {factor:g} x median {median:.3f} s, "
                  f"{gap:.3f} s over it (floor {floor_seconds:g} s)")
    elif over and len(seconds) > 1:
        detail = (f"slowest task {slowest:.3f} s > {factor:g} x median {median:.3f} s but only "
                  f"{gap:.3f} s over it, below the floor {floor_seconds:g} s")
    else:
        detail = f"slowest task {slowest:.3f} s <= {factor:g} x median {median:.3f} s"
    return Verdict("time_straggler", tripped, detail, "time")


def _floored(v: Verdict, largest_rows: int, floor_rows: int) -> Verdict:
    """``v`` untripped, saying why, when the stage's largest task input is below the floor."""
    if not v.tripped or largest_rows >= floor_rows:
        return v
    return replace(v, tripped=False,
                   detail=f"{v.detail}; not called skewed: the largest task takes "
                          f"{largest_rows:,} rows in, below the floor of {floor_rows:,}")


def stage_skew(records: Sequence[TaskRecord], *, exchange_row_bytes: float | None = None,
               spark_threshold_bytes: int = SPARK_SKEW_THRESHOLD_BYTES,
               spark_factor: float = SPARK_SKEW_FACTOR, trino_factor: float = TRINO_SKEW_FACTOR,
               redshift_limit: float = REDSHIFT_SKEW_ROWS, time_factor: float = TIME_SKEW_FACTOR,
               floor_rows: int = SKEW_FLOOR_ROWS,
               floor_seconds: float = SKEW_FLOOR_SECONDS) -> StageSkew:
    """Statistics and verdicts for the tasks of one stage.

    Args:
        records: the stage's task records (at least one, all of the same stage).
        exchange_row_bytes: mean bytes per row the stage receives through its exchange, used as
            the input size of a stage that reads no storage (``skew_by_stage`` derives it from
            the upstream stages). Without it such a stage's input is counted in rows.
        spark_threshold_bytes, spark_factor, trino_factor, redshift_limit, time_factor: the
            rules' knobs.
        floor_rows: below this many input rows in the largest task, the data rules never trip.
        floor_seconds: the time rule needs the slowest task this much over the median.
    """
    if not records:
        raise ValueError("stage_skew needs at least one task record")
    stages = {r.stage for r in records}
    if len(stages) != 1:
        raise ValueError(f"stage_skew got records of several stages: {sorted(stages)}")
    sizes = _input_sizes(records, exchange_row_bytes)
    rows = [r.rows_in for r in records]
    largest = max(rows)
    verdicts = (
        _floored(trino_verdict(sizes, trino_factor), largest, floor_rows),
        spark_verdict(sizes, factor=spark_factor, threshold_bytes=spark_threshold_bytes),
        _floored(redshift_verdict(rows, redshift_limit), largest, floor_rows),
        time_verdict([r.duration for r in records], factor=time_factor,
                     floor_seconds=floor_seconds),
    )
    # Ties go to the lowest partition so the attribution is deterministic.
    by_partition = sorted(records, key=lambda r: r.partition)
    slowest = max(by_partition, key=lambda r: r.duration)
    heaviest = max(by_partition, key=lambda r: r.rows_in)
    return StageSkew(
        stage=records[0].stage, name=records[0].name, tasks=len(records),
        seconds=Dist.of([r.duration for r in records]), rows=Dist.of(rows),
        input_bytes=Dist.of(sizes), slowest=TaskRef.of(slowest), heaviest=TaskRef.of(heaviest),
        verdicts=verdicts,
    )


def _input_sizes(records: Sequence[TaskRecord], row_bytes: float | None) -> list[int]:
    """Per-task input bytes: bytes read from storage, else received rows x row width."""
    if any(r.bytes_read for r in records):
        return [r.bytes_read for r in records]
    width = row_bytes if row_bytes else 1.0
    return [round(r.rows_in * width) for r in records]


def group_by_stage(records: Sequence[TaskRecord]) -> dict[int, list[TaskRecord]]:
    """Task records grouped by stage number, in stage order."""
    out: dict[int, list[TaskRecord]] = {}
    for r in sorted(records, key=lambda r: (r.stage, r.partition)):
        out.setdefault(r.stage, []).append(r)
    return out


def task_groups(stage_records: Sequence[TaskRecord]) -> list[list[TaskRecord]]:
    """A stage's tasks split by task name, in order of their first start.

    A stage's own pipeline tasks start first; an exchange's helper tasks recorded under the
    same stage (e.g. ``stage1-combine``, which merges map outputs before the consumers fetch
    them) start only after some of those finished, so they come after.
    """
    by_name: dict[str, list[TaskRecord]] = {}
    for r in stage_records:
        by_name.setdefault(r.name, []).append(r)
    return sorted(by_name.values(), key=lambda g: (min(r.start for r in g), g[0].name))


def default_stage_deps(stages: Collection[int]) -> dict[int, tuple[int, ...]]:
    """Without a plan, every stage is taken to depend on every lower-numbered stage."""
    ordered = sorted(stages)
    return {s: tuple(u for u in ordered if u < s) for s in ordered}


def skew_by_stage(records: Sequence[TaskRecord], *,
                  stage_deps: Mapping[int, Collection[int]] | None = None,
                  **rules: Any) -> dict[int, StageSkew]:
    """:func:`stage_skew` for every stage of a query's records, keyed by stage number.

    The statistics cover each stage's own pipeline tasks (its first :func:`task_groups`);
    exchange helper tasks recorded under the stage are only counted (``exchange_tasks``).

    ``stage_deps`` maps a stage to the upstream stages whose exchange output it reads (from the
    physical plan); it only matters for the row width of exchange-fed stages. ``rules`` are
    passed on to :func:`stage_skew`.
    """
    groups = {s: task_groups(recs) for s, recs in group_by_stage(records).items()}
    deps = stage_deps if stage_deps is not None else default_stage_deps(groups)
    out: dict[int, StageSkew] = {}
    for stage, (main, *helpers) in groups.items():
        # What consumers receive is what the upstream stage's last task group sent.
        upstream = [r for u in deps.get(stage, ()) if u in groups for r in groups[u][-1]]
        sent = sum(r.bytes_sent for r in upstream)
        rows = sum(r.rows_out for r in upstream if r.bytes_sent)
        width = sent / rows if sent and rows else None
        sk = stage_skew(main, exchange_row_bytes=width, **rules)
        out[stage] = replace(sk, exchange_tasks=sum(len(h) for h in helpers))
    return out


def format_skew(skews: Mapping[int, StageSkew] | Sequence[StageSkew]) -> str:
    """EXPLAIN ANALYZE lines: per stage, the distributions, the straggler and the verdicts."""
    items = list(skews.values()) if isinstance(skews, Mapping) else list(skews)
    lines: list[str] = []
    for sk in items:
        helpers = f" (+{sk.exchange_tasks} exchange tasks)" if sk.exchange_tasks else ""
        lines.append(f"Stage {sk.stage} [{sk.name}]: {sk.tasks} tasks{helpers}"
                     + ("  ** SKEWED **" if sk.skewed else ""))
        lines += ["  " + line for line in stage_lines(sk)]
    return "\n".join(lines)


def stage_lines(sk: StageSkew) -> list[str]:
    """One stage's distributions, slowest (and heaviest) task and verdicts, one per line."""
    lines = [_dist_line("time (s)", sk.seconds, "{:.3f}"),
             _dist_line("rows in", sk.rows, "{:,.0f}"),
             _dist_line("input bytes", sk.input_bytes, "{:,.0f}"),
             f"slowest:  {sk.slowest.describe()}"]
    if sk.heaviest.partition != sk.slowest.partition:
        lines.append(f"heaviest: {sk.heaviest.describe()}")
    lines += [f"[{'SKEWED' if v.tripped else 'ok'}] {v.name} ({v.measure}): {v.detail}"
              for v in sk.verdicts]
    return lines


def _dist_line(label: str, d: Dist, fmt: str) -> str:
    figures = "  ".join(f"{n} {fmt.format(getattr(d, n))}" for n in ("min", "p50", "p99", "max"))
    return f"{label:<12} {figures}  max/median {d.max_over_median:.2f}"
