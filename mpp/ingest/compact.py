"""Small-file compaction of an ingestion table: ``ALTER TABLE ... EXECUTE optimize``.

Every committed micro-batch adds at least one file per partition it touches, so a table fed
by a stream collects many small files, and every scan pays a task (and a footer read) per
file. :func:`compact` runs the write path's table maintenance on it
(:func:`mpp.write.maintenance.optimize`, the one compaction mpp has):

    ALTER TABLE events EXECUTE optimize(file_size_threshold => '100663296B')

with ``write.target_file_bytes`` set to the target for that statement. Per partition, the
files below the threshold (when a partition has at least two) are read as scan tasks on the
cluster, the write stage combines them into files near the target size, and ONE Iceberg
overwrite snapshot replaces them. Readers see either the old files or the new ones, never
both; older snapshots keep listing the old files (time travel), so they stay on disk. A
consumer that commits in between makes the compaction's commit fail (nothing changes; run it
again): nothing a consumer wrote is lost. The table's properties (the sink's batch IDs and
offsets) are kept, and the snapshots the sink committed keep their summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpp.ingest.sink import TARGET_FILE_BYTES

if TYPE_CHECKING:
    from mpp.session import Session


@dataclass(frozen=True)
class Compaction:
    """What :func:`compact` did."""

    table: str
    files_before: int
    files_after: int
    rewritten: int  # small files replaced
    written: int  # files that replaced them
    rows: int  # rows rewritten
    snapshot_id: int | None  # the overwrite snapshot (None when nothing was small)
    statement: str = ""  # the ALTER TABLE ... EXECUTE optimize that ran


def optimize_sql(table: str, small_file_bytes: int) -> str:
    """The statement :func:`compact` runs."""
    return f'ALTER TABLE "{table}" EXECUTE optimize(file_size_threshold => ' \
           f"'{small_file_bytes}B')"


def compact(session: Session, table: str, *, target_file_bytes: int = TARGET_FILE_BYTES,
            small_file_bytes: int | None = None) -> Compaction:
    """Rewrite ``table``'s small files per partition into target-size files, in one snapshot,
    with ``ALTER TABLE ... EXECUTE optimize`` on ``session``'s cluster.

    ``small_file_bytes`` (default: 3/4 of the target) is the statement's
    ``file_size_threshold``: files below it are candidates; a partition with fewer than two
    candidates is left as it is.
    """
    small = int(target_file_bytes * 0.75) if small_file_bytes is None else small_file_bytes
    catalog = session.catalog
    catalog.refresh(table)
    files_before = len(catalog.fragments(table))
    sql = optimize_sql(table, small)
    result = session.sql(sql, settings={"write.target_file_bytes": target_file_bytes})
    catalog.refresh(table)
    files_after = len(catalog.fragments(table))
    outcome = result.write
    if outcome is None:  # no partition had two small files: no snapshot
        return Compaction(table, files_before, files_after, 0, 0, 0, None, sql)
    written = len(outcome.files)
    return Compaction(table, files_before, files_after, files_before - files_after + written,
                      written, outcome.rows, catalog.snapshots(table)[-1]["snapshot_id"], sql)
