"""Settings: every planning and execution choice, by dotted name.

Settings are set with ``--set NAME=VALUE`` on the commands, ``settings={...}`` in
:func:`mpp.connect`, and the same dotted keys in scenario TOML. Every decision in the optimizer
and planner reads them from the context, never from ambient global state, so runs reproduce.
``mpp settings`` lists them with their defaults and meanings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mpp.errors import SettingError, suggest
from mpp.text import human_bytes

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True, slots=True)
class Setting:
    """One named setting: its type, default, allowed values or range, and meaning.

    ``minimum``/``maximum`` bound a numeric setting (inclusive; None: unbounded), so a value
    that would silently mean something else (-3 buckets read as "automatic") or crash later
    (a 0-byte target file size) is refused where it is set, naming the setting.
    """

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None

    @property
    def type(self) -> type:
        """The Python type values are converted to."""
        return type(self.default)

    def allowed(self) -> str:
        """The allowed values in words ("" if any value of the type is), for errors and
        ``mpp settings``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"from {lo:,} to {hi:,}"
        if lo is not None:
            return f"at least {lo:,}"
        if hi is not None:
            return f"at most {hi:,}"
        return ""

    def convert(self, value: Any) -> Any:
        """Convert ``value`` (a string from the shell or a TOML/Python value) to this type,
        checking its choices (case-insensitively) or range."""
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if kind is int:
                if isinstance(value, bool):
                    raise ValueError(value)
                converted: Any = int(str(value).strip().replace("_", ""))
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                converted = float(value)
                if not math.isfinite(converted):
                    raise ValueError(value)
            else:
                converted = str(value)
        except (TypeError, ValueError):
            raise SettingError(
                f"setting {self.name!r} takes {_TYPE_NAMES.get(kind, kind.__name__)}, "
                f"got {value!r}"
            ) from None
        if self.choices:
            for choice in self.choices:
                if converted.strip().lower() == choice.lower():
                    return choice
            raise SettingError(
                f"setting {self.name!r} must be one of {', '.join(self.choices)}; got {converted!r}"
            )
        if (self.minimum is not None and converted < self.minimum) or \
                (self.maximum is not None and converted > self.maximum):
            raise SettingError(f"setting {self.name!r} must be {self.allowed()}; got {converted}")
        return converted


def _s(name: str, default: Any, help: str, choices: tuple[str, ...] = (), *,
       minimum: int | float | None = None, maximum: int | float | None = None) -> Setting:
    return Setting(name, default, help, choices, minimum, maximum)


MAX_HASH_BUCKETS = 100_000
MAX_DATA_BUCKETS = 1024  # data-sized bucket counts stop here (each bucket is a task)
MAX_BROADCAST_BYTES = 16 * 2**30
MAX_TARGET_FILE_BYTES = 16 * 2**30

# The fixed settings, in the order `mpp settings` prints them after the rule switches. The
# "optimizer.<rule>" switches are not listed here: SETTINGS derives one per rule in
# mpp.optimizer.RULES (see _Registry), so adding a rule needs no line in this file.
_FIXED: dict[str, Setting] = {
    s.name: s
    for s in [
        _s("optimizer.broadcast_threshold_bytes", 32 * 1024 * 1024,
           "A join side estimated at or below this many bytes (in memory) is broadcast. At most "
           "16 GiB: a broadcast side is copied into every task's worker, and no worker holds "
           "more (join.strategy=broadcast forces a broadcast regardless).",
           minimum=0, maximum=MAX_BROADCAST_BYTES),
        _s("optimizer.broadcast_max_bytes", 256 * 1024 * 1024,
           "A join side over optimizer.broadcast_threshold_bytes but at most this many bytes "
           "(estimated, in memory) is still broadcast when copying it to every worker moves "
           "fewer bytes than exchanging both sides (side x workers <= left + right): its hash "
           "table is built once per worker. 0 turns this comparison off, and so does an "
           "optimizer.broadcast_threshold_bytes of 0.",
           minimum=0, maximum=MAX_BROADCAST_BYTES),
        _s("join.strategy", "auto",
           "Join distribution: auto (from statistics), broadcast or partitioned.",
           ("auto", "broadcast", "partitioned")),
        _s("aggregate.distinct_strategy", "automatic",
           "DISTINCT aggregates (Trino's distinct_aggregations_strategy): single_step exchanges "
           "raw (group, x) rows by the group key; pre_aggregate keeps distinct (group, x) per "
           "fragment first; rewrite plans count(DISTINCT x) as count(x) over a DISTINCT "
           "(group, x) exchanged by both; automatic picks from catalog statistics (key skew, "
           "distinct estimates) and EXPLAIN says why.",
           ("automatic", "single_step", "pre_aggregate", "rewrite")),
        _s("aggregate.partial_skip_ratio", 0.8,
           "Adaptive partial aggregation (Trino's task.adaptive-partial-aggregation): a task "
           "whose partial aggregation or partial top-N keeps more than this fraction of the "
           "first rows it reduces (a quarter of its rows, at most 100,000) stops reducing: it "
           "passes its other rows through (a DISTINCT or GROUP BY without aggregates, a top-N; "
           "with aggregates it still aggregates), and the exchange's combine only concatenates "
           "such outputs instead of merging them. 1 never skips, 0 always does; EXPLAIN "
           "ANALYZE counts the tasks that skipped.",
           minimum=0.0, maximum=1.0),
        _s("execution.hash_buckets", 0,
           "Buckets of a hash exchange (final aggregation / partitioned join tasks); "
           "0 means 2 x the cluster's total threads. Each bucket is a task of every hash stage, "
           "so past 100,000 the scheduler would be swamped.",
           minimum=0, maximum=MAX_HASH_BUCKETS),
        _s("execution.hash_bucket_bytes", 64 * 1024 * 1024,
           "With execution.hash_buckets = 0: a hash exchange gets more buckets than 2 x the "
           "cluster's threads when the rows flowing into it are estimated (catalog statistics, "
           "in-memory Arrow bytes) above this many bytes per bucket, so no final aggregation, "
           "window or join task holds the data of a big table alone (Spark's advisory "
           "partition size is 64 MB too). 0 turns data sizing off. Counts are powers of two, "
           f"at most {MAX_DATA_BUCKETS:,}.",
           minimum=0, maximum=2**40),
        _s("execution.window_batch_rows", 1 << 20,
           "A window task holding more rows than this evaluates them in batches of this many "
           "(sorting only their order, carrying running values from batch to batch), so a hot "
           "partition key does not hold its whole partition several times over; windows that "
           "need rows after the current one (lead, ntile, FOLLOWING frames) always take whole "
           "partitions. 0 turns batches off; at most 2^40, more rows than any task holds.",
           minimum=0, maximum=2**40),
        _s("execution.exchange_fan_in", 64,
           "Map outputs a combine task of a hash exchange merges; bounds the graph's edges. "
           "At least 2 (a combine of one output merges nothing), at most 100,000 (no stage "
           "has more tasks: fragments and buckets stop there).",
           minimum=2, maximum=MAX_HASH_BUCKETS),
        _s("scan.max_task_bytes", 128 * 1024 * 1024,
           "A scan task reads several fragments when each is small, as Spark packs files into "
           "partitions (spark.sql.files.maxPartitionBytes) and Trino batches splits: "
           "consecutive fragments go into one task while their bytes (the column chunks the "
           "scan reads, from the catalog's column sizes, plus scan.fragment_open_bytes each) "
           "stay within this bound, or within total / (scan.min_tasks_per_thread x threads) "
           "when that is smaller, but never under scan.fragment_open_bytes. The task reads "
           "them one after another, pruning each, and streams them to its pipeline. 0 gives "
           "every fragment a task of its own; at most 16 GiB (a task may hold its fragments' "
           "rows at once).", minimum=0, maximum=MAX_TARGET_FILE_BYTES),
        _s("scan.fragment_open_bytes", 4 * 1024 * 1024,
           "What opening one fragment costs, counted in bytes when scan tasks are packed "
           "(Spark's spark.sql.files.openCostInBytes): a fragment read for no column data "
           "(count(*), partition values) costs only this. At most 1 GiB.",
           minimum=0, maximum=2**30),
        _s("scan.min_tasks_per_thread", 2,
           "Packed scan tasks are made no larger than a table's bytes / (this x the planned "
           "threads), so a small table still spreads over every thread (Spark's "
           "minPartitionNum is the default parallelism). At least 1, at most 1,024.",
           minimum=1, maximum=1024),
        _s("write.target_file_bytes", 128 * 1024 * 1024,
           "CREATE TABLE AS: target size of each output file (object storage likes files of "
           "~128 MB); small inputs are combined and large ones split to land near it. At least "
           "1 KiB (below it a table would be a file per handful of rows), at most 16 GiB (a "
           "write task holds its file's rows in memory).",
           minimum=1024, maximum=MAX_TARGET_FILE_BYTES),
        _s("write.insert_existing_partitions", "append",
           "INSERT into a partitioned table: append adds the rows; overwrite replaces exactly "
           "the partitions the query produces, in one snapshot (Trino Hive's "
           "insert_existing_partitions_behavior = 'OVERWRITE'), so re-running a day's load "
           "leaves no duplicates.", ("append", "overwrite")),
        _s("write.commit_retries", 4,
           "A write whose Iceberg commit lost the race to another writer's commit is retried "
           "this many times on top of the new version: an append as it is, a DELETE, UPDATE, "
           "MERGE, overwrite or optimize only if none of the files it replaces was removed by "
           "the other commit (else it fails, naming the conflicting snapshot). 0 fails at the "
           "first lost race; at most 100.", minimum=0, maximum=100),
        _s("iceberg.expire_snapshots_min_retention_seconds", 7 * 86400,
           "ALTER TABLE ... EXECUTE expire_snapshots refuses a retention_threshold below this "
           "many seconds (Trino's iceberg.expire-snapshots.min-retention, 7 days): readers of "
           "old snapshots may still need their files. Lower it for tests; at most 10 years.",
           minimum=0, maximum=10 * 365 * 86400),
        _s("write.fail_task", -1,
           "Fault injection for tests: CREATE TABLE AS write task N fails after writing its "
           "file (-1: off). The conversion must then leave no table and no files behind. At "
           "most 100,000 (no stage has more tasks).",
           minimum=-1, maximum=MAX_HASH_BUCKETS),
        _s("metrics.spark_skew_threshold_bytes", 256 * 1024 * 1024,
           "Spark AQE skew verdict: a partition over 5 x the median must also exceed this many "
           "bytes (spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes). At most 1 TiB "
           "(no partition a worker holds is larger).", minimum=0, maximum=2**40),
        _s("planning.workers", 0,
           "Workers (a warehouse's nodes) the physical plan is made for: hash exchanges get 2 x "
           "workers x planning.threads_per_worker buckets. 0 plans for the cluster the session "
           "runs on; `mpp explain` without --analyze starts no cluster and plans for this "
           "(or --workers). At most 100,000.", minimum=0, maximum=MAX_HASH_BUCKETS),
        _s("planning.threads_per_worker", 0,
           "Threads per worker the physical plan is made for (with planning.workers); 0 takes "
           "the cluster's. At most 1,024.", minimum=0, maximum=1024),
        _s("metrics.skew_floor_rows", 10_000,
           "Skew verdicts on data (Trino's input rule, Redshift's skew_rows) never call a stage "
           "skewed whose largest task takes fewer input rows than this: a few tasks holding a "
           "few rows is not a distribution problem. 0 turns the floor off; at most 10^12.",
           minimum=0, maximum=10**12),
        _s("metrics.skew_floor_seconds", 0.05,
           "The time_straggler verdict needs the slowest task at least this many seconds over "
           "the stage's median task time (besides 3 x the median): milliseconds of jitter are "
           "not skew. 0 turns the floor off; at most a day.", minimum=0.0, maximum=86400.0),
    ]
}


class _Registry(Mapping[str, Setting]):
    """Every setting by name: one ``optimizer.<rule>`` switch (bool, default true, the rule's
    help) per rule in :data:`mpp.optimizer.RULES`, then the fixed settings above.

    The switches are derived from RULES on first use, not at import: mpp.optimizer imports
    this module (its rules read :class:`PlannerContext`), so importing it here would be a
    cycle. Importing only mpp.config (as the CLI does before parsing ``--set``) is enough to
    know every rule. A fixed name is found without loading the optimizer.
    """

    def __init__(self, fixed: dict[str, Setting]):
        self._fixed = fixed
        self._switches: dict[str, Setting] | None = None
        self._loading = False

    def _settings(self) -> dict[str, Setting]:
        if self._switches is None:
            if self._loading:  # a module the optimizer imports reads a setting at import
                return self._fixed
            self._loading = True
            try:
                from mpp.optimizer import RULES
            finally:
                self._loading = False
            self._switches = {f"optimizer.{r.name}": Setting(f"optimizer.{r.name}", True, r.help)
                              for r in RULES}
        return {**self._switches, **self._fixed}

    def __getitem__(self, name: str) -> Setting:
        fixed = self._fixed.get(name)
        return fixed if fixed is not None else self._settings()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fixed or name in self._settings()

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings())

    def __len__(self) -> int:
        return len(self._settings())


SETTINGS: Mapping[str, Setting] = _Registry(_FIXED)


class Settings(Mapping[str, Any]):
    """An immutable, validated set of setting values over the defaults."""

    def __init__(self, values: Mapping[str, Any] | None = None):
        self._values: dict[str, Any] = {name: s.default for name, s in SETTINGS.items()}
        for name, value in (values or {}).items():
            self._values[name] = lookup(name).convert(value)

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            lookup(name)  # raises with a suggestion
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` (dotted names given with ``__`` for ``.``) applied."""
        merged = dict(self._values)
        merged.update({k.replace("__", "."): v for k, v in changes.items()})
        return Settings(merged)

    def merged(self, values: Mapping[str, Any] | None) -> Settings:
        """Return a copy with ``values`` (dotted names) applied over these."""
        merged = dict(self._values)
        merged.update(values or {})
        return Settings(merged)

    def changed(self) -> dict[str, Any]:
        """The settings that differ from their defaults."""
        return {k: v for k, v in self._values.items() if v != SETTINGS[k].default}

    def __repr__(self) -> str:
        return f"Settings({self.changed()!r})"


def lookup(name: str) -> Setting:
    """Return the setting called ``name``, or raise naming the closest known names."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise SettingError(f"unknown setting {name!r}.{suggest(name, SETTINGS)}") from None


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``NAME=VALUE`` strings from ``--set`` options into a validated dict."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingError(f"--set takes NAME=VALUE, got {item!r}")
        name = name.strip()
        out[name] = lookup(name).convert(value.strip())
    return out


@dataclass(frozen=True, slots=True)
class PlannerContext:
    """Everything a planning decision may read: settings and the cluster's shape.

    Built once per query from the session (or scenario); rules and the physical planner read
    it instead of ambient state, so the same scenario reproduces the same plan.
    """

    settings: Settings
    workers: int = 2  # the warehouse's nodes
    threads: int = 2  # total threads across workers: the slices

    def with_settings(self, values: Mapping[str, Any]) -> PlannerContext:
        """A copy planning with ``values`` (dotted names) over these settings."""
        return PlannerContext(self.settings.merged(values), self.workers, self.threads)

    @property
    def hash_buckets(self) -> int:
        """Buckets of a hash exchange: the setting, or 2 x total threads when it is 0."""
        n = int(self.settings["execution.hash_buckets"])
        return n if n > 0 else 2 * max(1, self.threads)

    def buckets_for(self, estimated_bytes: float) -> tuple[int, str]:
        """(buckets, why) of a hash exchange whose input is estimated at ``estimated_bytes``.

        A fixed ``execution.hash_buckets`` wins; otherwise 2 x the threads, or, when the data
        needs more buckets of ``execution.hash_bucket_bytes``, the next power of two (at most
        :data:`MAX_DATA_BUCKETS`). ``why`` is "" for the threads' count (EXPLAIN's header says
        it) and names the estimate for a data-sized one.
        """
        base = self.hash_buckets
        target = int(self.settings["execution.hash_bucket_bytes"])
        if int(self.settings["execution.hash_buckets"]) > 0 or target <= 0 \
                or estimated_bytes <= base * target:
            return base, ""
        need = math.ceil(estimated_bytes / target)
        n = min(MAX_DATA_BUCKETS, 1 << (need - 1).bit_length())
        return n, (f"sized from the data: est. {human_bytes(estimated_bytes)}, "
                   f"{human_bytes(target)} per bucket")
