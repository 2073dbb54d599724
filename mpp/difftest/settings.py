"""Random planner settings: every query of the differential test runs under its own draw.

Each setting that changes how a query is planned or executed has its candidate values here;
every other setting is listed in :data:`NOT_VARIED` with the reason. A setting in neither is a
new one, and the test suite fails until it is placed in one of them (so new planner choices are
tested differentially from the day they are added). An optimizer rule's on/off switch
(``optimizer.<rule>``) needs no entry: every boolean ``optimizer.*`` setting is varied.
"""

from __future__ import annotations

import random
from typing import Any

import mpp.optimizer  # noqa: F401 (each rule registers its optimizer.<rule> switch)
from mpp.config import SETTINGS

CANDIDATES: dict[str, tuple[Any, ...]] = {
    "join.strategy": ("auto", "broadcast", "partitioned"),
    "aggregate.distinct_strategy": ("automatic", "single_step", "pre_aggregate", "rewrite"),
    # 0 broadcasts nothing, 2 KB some dimensions, the default every small table.
    "optimizer.broadcast_threshold_bytes": (0, 2048, 32 * 1024 * 1024),
    # 0 turns the "broadcast moves fewer bytes" comparison off; 4 KiB lets it broadcast a
    # side just over a 2 KB threshold; the default every side of the small warehouse.
    "optimizer.broadcast_max_bytes": (0, 4096, 256 * 1024 * 1024),
    # 0 = 2 x threads; 1 puts every key in one bucket; odd counts split keys unevenly.
    "execution.hash_buckets": (0, 1, 3, 7),
    # 4 KiB sizes the small warehouse's exchanges from the data (more buckets, a join's sides
    # aligned); 0 keeps 2 x threads; the default only at scale.
    "execution.hash_bucket_bytes": (0, 4096, 64 * 1024 * 1024),
    # The size a plan is made for (0: the cluster's): 1 worker x 1 thread gives 2 buckets,
    # 3 x 2 gives 12, whatever cluster runs the query.
    "planning.workers": (0, 1, 3),
    "planning.threads_per_worker": (0, 1, 2),
    # 5 streams every window task of more than 5 rows in batches (the hot-partition path).
    "execution.window_batch_rows": (0, 5, 1 << 20),
    # 2 builds the deepest combine trees the exchange can make.
    "execution.exchange_fan_in": (2, 3, 64),
    # Packing a scan's fragments into tasks: 0 gives each fragment its own task; 4 KiB packs
    # a few of the small warehouse's fragments by their column bytes; the default packs them
    # by open cost (a table spreads over min_tasks_per_thread x threads tasks). An open cost
    # of 0 packs by the column bytes alone (a task may then hold every fragment read for no
    # column data); 1 task per thread is Spark's minimum, 8 leaves most fragments alone.
    "scan.max_task_bytes": (0, 4096, 128 * 1024 * 1024),
    "scan.fragment_open_bytes": (0, 1024, 4 * 1024 * 1024),
    "scan.min_tasks_per_thread": (1, 2, 8),
    # 0 makes every partial aggregate and top-N pass rows through (and every combine only
    # concatenate); 1 never skips; 0.8 is Trino's threshold.
    "aggregate.partial_skip_ratio": (0.0, 0.8, 1.0),
}

NOT_VARIED: dict[str, str] = {
    "write.target_file_bytes": "CREATE TABLE AS only; queries write nothing",
    "write.fail_task": "CREATE TABLE AS fault injection",
    "metrics.spark_skew_threshold_bytes": "changes a report's verdict, not the plan",
    "metrics.skew_floor_rows": "changes a report's verdict, not the plan",
    "metrics.skew_floor_seconds": "changes a report's verdict, not the plan",
    "write.insert_existing_partitions": "INSERT into partitioned tables only; queries write "
                                        "nothing",
    "iceberg.expire_snapshots_min_retention_seconds": "ALTER TABLE ... EXECUTE only",
    "write.commit_retries": "writes only, and only when another writer commits meanwhile",
    # Trino never evaluates an expression nothing reads; with this rule off mpp computes every
    # projected column, so an unused one that fails (a CASE branch's CAST(3000000000 AS
    # INTEGER)) fails the query. Off is a teaching switch that changes which errors can occur.
    "optimizer.prune_projections": "off evaluates unused columns, whose errors Trino never "
                                   "raises",
}

SWITCH_OFF = 0.25  # chance that each optimizer rule is switched off in a draw


def varied() -> list[str]:
    """The names of the settings a draw may change."""
    return sorted(set(CANDIDATES) | {
        name for name, s in SETTINGS.items()
        if name.startswith("optimizer.") and isinstance(s.default, bool)
        and name not in NOT_VARIED})


def unplaced() -> list[str]:
    """Settings that are neither varied nor listed as not varied (should be none)."""
    return sorted(set(SETTINGS) - set(varied()) - set(NOT_VARIED))


def draw(rng: random.Random) -> dict[str, Any]:
    """A random set of planner settings (only those that differ from the defaults)."""
    out: dict[str, Any] = {}
    for name in varied():
        default = SETTINGS[name].default
        if name in CANDIDATES:
            value = rng.choice(CANDIDATES[name])
        else:
            value = not default if rng.random() < SWITCH_OFF else default
        if value != default:
            out[name] = value
    return out
