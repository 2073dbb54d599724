"""The one commit that ends a write: Iceberg transaction or external-table registration.

Statistics are merged from the write tasks' partials here, and stored with the table: as
Iceberg table properties (``mpp.stats``, ``mpp.arrow-schema``, ``mpp.content-checksum``) or in
the external table's row. SQLite tables are loaded from their staged Arrow files into the one
database file first, and their fragments become rowid ranges.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Set
from typing import TYPE_CHECKING

import pyarrow as pa

from mpp.catalog import iceberg
from mpp.catalog.codec import schema_to_text, stats_to_text
from mpp.catalog.external import ExternalTable
from mpp.catalog.model import TableInfo, TableStats
from mpp.catalog.stats import append_stats, merge_partials
from mpp.catalog.write import (
    WriteTarget,
    WrittenFragment,
    appended_checksum,
    remove_write,
    table_checksum,
)
from mpp.errors import CatalogError, StorageError
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.files import local_path, resolve, storage_errors, to_uri
from mpp.storage.parquet import FOOTER_DIGEST

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from mpp.catalog import Catalog


class CommitConflict(CatalogError):
    """Another writer committed to the table after the write loaded it (pyiceberg's
    CommitFailedException): nothing was applied; the caller may re-base and retry."""


def sqlite_path(target: WriteTarget) -> str | None:
    """Local path of a SQLite table's database file (None if the location is remote)."""
    root = local_path(target.location)
    return None if root is None else os.path.join(root, f"{target.table}.sqlite")


def commit(catalog: Catalog, target: WriteTarget, written: list[WrittenFragment],
           properties: dict[str, str]) -> None:
    """Register ``written`` as table ``target.table`` in one atomic step."""
    from mpp.catalog import PROP_CHECKSUM, PROP_SCHEMA, PROP_STATS

    written.sort(key=lambda w: w.fragment.index)
    if [w.fragment.index for w in written] != list(range(len(written))):
        raise CatalogError(f"write of {target.table!r} is missing fragments "
                           f"(got indexes {[w.fragment.index for w in written][:10]}...)")
    fragments = [w.fragment for w in written]
    if target.format is StorageFormat.SQLITE:
        fragments = _load_sqlite(target, written)
    total_bytes = (sum(f.size_bytes for f in fragments) if target.format is not StorageFormat.SQLITE
                   else os.path.getsize(sqlite_path(target) or ""))
    stats = merge_partials((w.partials for w in written), total_bytes)
    props = {
        **properties,
        PROP_CHECKSUM: table_checksum(written),
        PROP_SCHEMA: schema_to_text(target.schema),
        PROP_STATS: stats_to_text(stats),
    }
    if target.format is StorageFormat.PARQUET:
        try:
            iceberg.create_with_files(catalog.iceberg, target.table, target.schema,
                                      target.location, target.partitioning, written, props)
        except Exception as exc:
            raise CatalogError(f"Iceberg commit of {target.table!r} failed: {exc}") from exc
        return
    if target.format in (StorageFormat.CSV, StorageFormat.ORC):
        # CSV needs the types to parse; ORC needs them to undo its timestamp widening.
        option = (("schema", props[PROP_SCHEMA]),)
        fragments = [_with_options(f, option) for f in fragments]
    catalog.registry.register(ExternalTable(
        name=target.table, format=target.format, location=target.location,
        schema=target.schema, partition_columns=target.partition_by,
        fragments=tuple(fragments), stats=stats, properties=props,
        created_at=dt.datetime.now(dt.UTC),
    ))
    if target.format is StorageFormat.SQLITE:
        remove_write(target)  # the staged Arrow files; the database file stays


def _remaining_stats(old: TableStats, base: Table, kept: list[Fragment]) -> TableStats:
    """Statistics of the files ``kept`` after a delete: counts exact (null counts from the
    manifests), bounds kept (still bounds), distinct and top counts capped by the rows left."""
    rows = sum(f.row_count for f in kept)
    if rows == 0:
        return TableStats(0, sum(f.size_bytes for f in kept), len(kept), {})
    paths = {f.uri for f in kept}
    files = [t.file for t in base.scan().plan_files() if t.file.file_path in paths]
    ids = {f.name: f.field_id for f in base.schema().fields}

    def nulls(name: str) -> int | None:
        counts = [(f.null_value_counts or {}).get(ids.get(name, -1)) for f in files]
        return None if None in counts else sum(counts)  # type: ignore[arg-type]

    columns = {
        n: dataclasses.replace(
            c, null_count=nulls(n),
            distinct_count=None if c.distinct_count is None else min(c.distinct_count, rows),
            top_values=tuple((v, k) for v, k in c.top_values if k <= rows))
        for n, c in old.columns.items()}
    return TableStats(rows, sum(f.size_bytes for f in kept), len(kept), columns)


def snapshot(base: Table, info: TableInfo, current: list[Fragment], target: WriteTarget,
             written: list[WrittenFragment], *, replace: bool = False,
             deleted: Set[str] = frozenset(),
             properties: dict[str, str] | None = None,
             snapshot_properties: dict[str, str] | None = None) -> Table:
    """Commit ``written`` to Iceberg table ``target.table`` as ONE snapshot: appended to its
    files, or (``replace``) instead of all of them, or instead of the files in ``deleted``;
    statistics and content checksum are updated in the same commit, with ``properties`` (table
    properties) and ``snapshot_properties`` (the new snapshot's summary). Returns the table as
    committed.

    ``base``, ``info`` and ``current`` are the table as loaded when the write began (or as
    re-loaded for a retry): a commit by anyone else since then fails this one
    (:class:`CommitConflict`), and nothing is applied."""
    from pyiceberg.exceptions import CommitFailedException

    from mpp.catalog import PROP_CHECKSUM, PROP_STATS

    written.sort(key=lambda w: w.fragment.index)
    if [w.fragment.index for w in written] != list(range(len(written))):
        raise CatalogError(f"write into {target.table!r} is missing fragments")
    new = merge_partials((w.partials for w in written),
                         sum(w.fragment.size_bytes for w in written))
    if replace:
        stats, checksum = new, table_checksum(written)
        deleted = frozenset(f.uri for f in current)
    else:
        old = info.stats
        if deleted:  # the checksum chains the removed paths too: another content
            old = _remaining_stats(old, base, [f for f in current if f.uri not in deleted])
        stats = append_stats(old, new)
        checksum = appended_checksum(base.properties.get(PROP_CHECKSUM, "")
                                     + "".join(sorted(deleted)), written)
    props = {**(properties or {}), PROP_STATS: stats_to_text(stats), PROP_CHECKSUM: checksum}
    footers = {f.uri: f.option(FOOTER_DIGEST) for f in current}
    try:
        return iceberg.commit_files(base, written, props, footers, deleted,
                                    snapshot_properties=snapshot_properties)
    except CommitFailedException as exc:
        raise CommitConflict(f"table {target.table!r} changed while this write ran (another "
                             f"commit came first: {exc}); nothing was written, run it "
                             "again") from None
    except Exception as exc:
        raise CatalogError(f"Iceberg commit of {target.table!r} failed: {exc}") from exc


def _with_options(f: Fragment, options: tuple[tuple[str, object], ...]) -> Fragment:
    return Fragment(uri=f.uri, format=f.format, index=f.index, row_count=f.row_count,
                    size_bytes=f.size_bytes, partition=f.partition, bounds=f.bounds,
                    options=f.options + options)


def _read_staged(uri: str) -> pa.Table:
    fs, path = resolve(uri)
    with storage_errors(uri), fs.open_input_file(path) as f:
        return pa.ipc.open_file(f).read_all()


def _load_sqlite(target: WriteTarget, written: list[WrittenFragment]) -> list[Fragment]:
    """Load the staged fragments into ``<location>/<table>.sqlite``; rowid-range fragments."""
    from mpp.storage import sqlite

    db = sqlite_path(target)
    if db is None:
        raise StorageError("SQLite tables must live on a local filesystem", target.location)
    if os.path.exists(db):
        raise CatalogError(f"database file {db} already exists")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    ranges = sqlite.load(db, target.table, target.schema,
                         (_read_staged(w.fragment.uri) for w in written))
    total_rows = sum(w.fragment.row_count for w in written)
    row_bytes = sqlite.average_row_bytes(db, target.table, total_rows)
    uri = to_uri(db)
    out = []
    for w, (lo, hi) in zip(written, ranges, strict=True):
        f = w.fragment
        out.append(Fragment(
            uri=uri, format=StorageFormat.SQLITE, index=f.index, row_count=f.row_count,
            size_bytes=int(f.row_count * row_bytes), partition=f.partition, bounds=f.bounds,
            options=(("table", target.table), ("rowid_range", (lo, hi)),
                     ("row_bytes", row_bytes)),
        ))
    return out
