"""Small-file compaction: many micro-batch files rewritten into few target-size files.

Every committed micro-batch adds at least one file per partition it touches, so a table fed
by a stream collects many small files, and every scan pays a task (and a footer read) per
file. :func:`compact` rewrites, per partition, the files smaller than ``small_file_bytes``
(when a partition has at least two) into files near ``target_file_bytes``, and commits the
new files and the removal of the old ones in ONE Iceberg overwrite snapshot
(``Catalog.commit_append(..., deleted=...)``, the path DELETE uses). Readers see either the
old files or the new ones, never both; older snapshots keep listing the old files (time
travel), so they stay on disk. A consumer that commits in between makes the compaction's
commit fail (nothing changes; run it again): nothing a consumer wrote is lost.

This is the "optimize" of the data-mart work. The integrate branch had no
``ALTER TABLE ... EXECUTE optimize`` when this was written, so it lives here, on the catalog's
overwrite commit; the table's other properties (the sink's batch IDs and offsets) are kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from mpp.catalog import Catalog
from mpp.ingest.sink import TARGET_FILE_BYTES, _top_columns, write_files
from mpp.storage.files import resolve


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


def compact(catalog: Catalog, table: str, *, target_file_bytes: int = TARGET_FILE_BYTES,
            small_file_bytes: int | None = None) -> Compaction:
    """Rewrite ``table``'s small files per partition into target-size files, in one snapshot.

    ``small_file_bytes`` (default: 3/4 of the target): files below it are candidates; a
    partition with fewer than two candidates is left as it is.
    """
    small = int(target_file_bytes * 0.75) if small_file_bytes is None else small_file_bytes
    catalog.refresh(table)
    frags = catalog.fragments(table)
    by_partition = defaultdict(list)
    for f in frags:
        if 0 <= f.size_bytes < small:
            by_partition[f.partition].append(f)
    doomed = [f for group in by_partition.values() if len(group) > 1 for f in group]
    if not doomed:
        return Compaction(table, len(frags), len(frags), 0, 0, 0, None)
    info = catalog.table(table)
    parts = []
    for f in doomed:
        fs, path = resolve(f.uri)
        parts.append(pq.read_table(path, filesystem=fs).select(info.schema.names))
    rows = pa.concat_tables(parts)
    target = catalog.begin_append(table, top_columns=_top_columns(info.schema),
                                  statement="compaction")
    try:
        written = write_files(target, rows, target_file_bytes, f"compact-{table}")
        catalog.commit_append(target, written, deleted={f.uri for f in doomed})
    except BaseException:
        catalog.abort_write(target)
        raise
    after = catalog.fragments(table)
    snaps = catalog.snapshots(table)
    return Compaction(table, len(frags), len(after), len(doomed), len(written), rows.num_rows,
                      snaps[-1].get("snapshot_id") if snaps else None)
