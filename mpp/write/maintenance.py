"""Table maintenance, Trino's table procedures for Iceberg tables:

* ``ALTER TABLE t EXECUTE optimize(file_size_threshold => '10MB')`` bin-packs the data files
  smaller than the threshold, per partition, into files near ``write.target_file_bytes``. The
  small files are read as one scan task each, the write stage combines consecutive rows of one
  partition into files of about the target size (:mod:`mpp.write.sizing`), and ONE overwrite
  snapshot replaces the small files by the new ones. The content is unchanged; a partition
  with fewer than two small files is left as it is (nothing to combine).
* ``ALTER TABLE t EXECUTE expire_snapshots(retention_threshold => '7d')`` removes the
  snapshots committed longer ago than the threshold (never the current one), then deletes
  the data files, manifests and manifest lists that no remaining snapshot lists, and only
  those inside the table's own folder. As in Trino a threshold below the minimum retention
  (the ``iceberg.expire_snapshots_min_retention_seconds`` setting, 7 days by default) is
  refused: readers of an old snapshot (time travel) and writes still running may need them.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mpp import crash
from mpp.catalog import cleanup, iceberg
from mpp.errors import CatalogError, SqlError
from mpp.metrics.summary import QueryStats
from mpp.physical.planner import plan_physical
from mpp.sql.statements import ExpireSnapshots, Optimize
from mpp.storage.base import Fragment
from mpp.write.ctas import top_value_columns
from mpp.write.stage import (
    WriteOutcome,
    current_table,
    one_commit,
    run_write_stage,
    write_outcome,
)

if TYPE_CHECKING:
    from mpp.session import Session

MIN_RETENTION = "iceberg.expire_snapshots_min_retention_seconds"


def _iceberg_table(session: Session, name: str, place: tuple[int, int], what: str) -> Any:
    """Table ``name`` as loaded now (refreshed), refusing external tables."""
    info = current_table(session, name, place)
    if info.external:
        raise SqlError(f"ALTER TABLE {name} EXECUTE {what}: {name!r} is an external "
                       f"{info.format.value.upper()} table; table procedures maintain Iceberg "
                       "tables", *place)
    return info


def _partition_keys(session: Session, name: str) -> dict[str, tuple[Any, ...]]:
    """Each current data file's partition (spec id and partition values), by path."""
    tbl = session.catalog.iceberg.load_table((iceberg.NAMESPACE, name))
    return {task.file.file_path: (task.file.spec_id, tuple(task.file.partition))
            for task in tbl.scan().plan_files()}


def small_files(files: list[Fragment], keys: Mapping[str, tuple[Any, ...]],
                threshold: int) -> list[Fragment]:
    """The files below ``threshold`` bytes in partitions holding at least two of them, in
    partition order (so the write stage combines the rows of one partition)."""
    groups: dict[tuple[Any, ...], list[Fragment]] = defaultdict(list)
    for f in files:
        if f.size_bytes < threshold:
            groups[keys.get(f.uri, ())].append(f)
    picked = [fs for fs in groups.values() if len(fs) >= 2]
    return [f for fs in sorted(picked, key=lambda fs: fs[0].index) for f in fs]


def optimize(session: Session, stmt: Optimize, *,
             settings: Mapping[str, Any] | None = None) -> WriteOutcome:
    """Run ``stmt``: the outcome counts the rows rewritten (0 and no snapshot when no
    partition has two small files)."""
    from mpp.session import ddl_stats

    catalog = session.catalog
    info = _iceberg_table(session, stmt.name, stmt.place, "optimize")
    files = catalog.fragments(stmt.name)
    candidates = small_files(files, _partition_keys(session, stmt.name),
                             stmt.file_size_threshold)
    query_id = f"optimize-{stmt.name}-{uuid.uuid4().hex[:8]}"
    ctx = session.context(settings)
    start = time.perf_counter()
    if not candidates:
        return WriteOutcome(0, (), ddl_stats(query_id, time.perf_counter() - start), (),
                            stmt.name, "nothing to optimize: no snapshot")
    target = catalog.begin_append(stmt.name, top_columns=top_value_columns(info.schema),
                                  statement="ALTER TABLE EXECUTE optimize")
    with one_commit(session, target, query_id, ctx) as pending:
        with crash.context(query_id=query_id):
            scan_all = session.optimize(session.bind(f'SELECT * FROM "{stmt.name}"'), ctx)
            plan = plan_physical(scan_all, ctx, lambda scan: (
                list(candidates) if scan.table.name == stmt.name
                and scan.table.snapshot_id is None
                else catalog.fragments(scan.table, scan.predicates)))
            pending.written, tasks = run_write_stage(session, ctx, plan, target, query_id,
                                                     names=tuple(target.schema.names),
                                                     empty_file=False)
        pending.deleted = {f.uri for f in candidates}
    return write_outcome(session, stmt.name, query_id, start, plan,
                         sum(f.row_count for f in candidates), tasks, pending,
                         f"{len(candidates)} of {len(files)} files (under "
                         f"{stmt.file_size_threshold:,} bytes) replaced by "
                         f"{len(pending.written)}", idle="")


@dataclass(frozen=True, slots=True)
class Expired:
    """What expire_snapshots did: snapshots removed and files deleted (paths)."""

    snapshots: tuple[int, ...]
    deleted: tuple[str, ...]
    stats: QueryStats


def live_files(tbl: Any) -> set[str]:
    """The files the remaining snapshots of ``tbl`` need: manifest lists, manifests, and the
    data files live in some snapshot (a file a manifest lists only as deleted is not needed:
    the snapshots it was live in are gone)."""
    io, files = tbl.io, set()
    for snapshot in tbl.metadata.snapshots:
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            files.add(manifest.manifest_path)
            files.update(e.data_file.file_path
                         for e in manifest.fetch_manifest_entry(io, discard_deleted=True))
    return files


def _days(t: dt.timedelta) -> str:
    return f"{t.total_seconds() / 86400:.2f}d"


def expire_snapshots(session: Session, stmt: ExpireSnapshots, *,
                     settings: Mapping[str, Any] | None = None) -> Expired:
    """Run ``stmt``: remove the snapshots older than its threshold (never the current one) in
    one metadata commit, then delete the files inside the table's folder that no remaining
    snapshot lists."""
    from mpp.session import ddl_stats

    catalog = session.catalog
    info = _iceberg_table(session, stmt.name, stmt.place, "expire_snapshots")
    ctx = session.context(settings)
    minimum = dt.timedelta(seconds=int(ctx.settings[MIN_RETENTION]))
    if stmt.retention < minimum:  # Trino's words
        raise SqlError(f"Retention specified ({_days(stmt.retention)}) is shorter than the "
                       f"minimum retention configured in the system ({_days(minimum)}). "
                       f"Minimum retention can be changed with the {MIN_RETENTION} setting",
                       *stmt.place)
    start = time.perf_counter()
    query_id = f"expire-{stmt.name}-{uuid.uuid4().hex[:8]}"
    tbl = catalog.iceberg.load_table((iceberg.NAMESPACE, stmt.name))
    cutoff = dt.datetime.now(dt.UTC) - stmt.retention
    current = tbl.metadata.current_snapshot_id
    expiring = tuple(s.snapshot_id for s in tbl.snapshots()
                     if s.timestamp_ms < cutoff.timestamp() * 1000 and s.snapshot_id != current)
    deleted: list[str] = []
    if expiring:
        before = cleanup.iceberg_files(tbl)
        try:
            tbl.maintenance.expire_snapshots().by_ids(list(expiring)).commit()
        except Exception as exc:  # a concurrent commit, or a protected (tagged) snapshot
            raise CatalogError(f"expire_snapshots on {stmt.name!r} failed: {exc}; nothing "
                               "was removed") from None
        catalog.refresh(stmt.name)
        after = live_files(catalog.iceberg.load_table((iceberg.NAMESPACE, stmt.name)))
        doomed = {f for f in before - after if not f.endswith(".metadata.json")}
        deleted = cleanup.delete_owned(catalog.warehouse, info.location, doomed)
    return Expired(expiring, tuple(deleted), ddl_stats(query_id, time.perf_counter() - start))
