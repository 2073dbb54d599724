"""The metastore: an Apache Iceberg catalog plus external tables, behind one small class.

A warehouse is a directory (or object-store prefix). By default its metastore is pyiceberg's
SQL catalog on ``<warehouse>/catalog.db`` (SQLite); any other Iceberg catalog URI (REST,
Hive, Glue, PostgreSQL) can be given instead, which is how a team shares one warehouse and how
Trino or Spark read the same tables. Parquet tables are Iceberg tables; CSV, ORC and SQLite
tables are external tables registered in the same database (:mod:`mpp.catalog.external`).

The planner asks :meth:`Catalog.table` for schema and statistics and :meth:`Catalog.fragments`
for the fragments a scan must read after partition and min/max pruning; neither reads table
data. Writers use :meth:`Catalog.begin_write`, :func:`~mpp.catalog.write.write_fragment` on the
workers, then :meth:`Catalog.commit_write`: one atomic commit for all files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Sequence, Set
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.catalog import load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from mpp.catalog import cleanup, iceberg, integrity, metadata_tables
from mpp.catalog.external import ExternalRegistry, ExternalTable
from mpp.catalog.model import ColumnStats, Committed, SchemaChange, TableInfo, TableStats
from mpp.catalog.place import check_table_name, moved_error, moved_from, table_location
from mpp.catalog.write import (
    WriteTarget,
    WrittenFragment,
    partition_field,
    remove_write,
    write_fragment,
)
from mpp.errors import CatalogError, StorageError, UnknownTableError, suggest
from mpp.storage import fragment_may_match
from mpp.storage.base import ColumnPredicate, Fragment, StorageFormat
from mpp.storage.files import local_path, redact_uri, to_uri
from mpp.storage.parquet import FOOTER_DIGEST
from mpp.text import plural

__all__ = ["Catalog", "TableInfo", "WriteTarget", "WrittenFragment", "write_fragment"]

CATALOG_DB = "catalog.db"
PROP_SCHEMA = "mpp.arrow-schema"
PROP_STATS = "mpp.stats"
PROP_CHECKSUM = "mpp.content-checksum"


class Catalog:
    """A warehouse's metastore: Iceberg tables and external tables, by name."""

    def __init__(self, warehouse: str, iceberg_catalog: IcebergCatalog, registry: ExternalRegistry,
                 moved_from: str | None = None):
        self.warehouse = warehouse  # URL of the warehouse root
        self.iceberg = iceberg_catalog
        self.registry = registry
        self.moved_from = moved_from  # the warehouse this one was copied from (relocate only)
        self._info: dict[str, TableInfo] = {}
        self._loaded: dict[str, Table] = {}  # the Iceberg table version _info describes
        self._fragments: dict[str, list[Fragment]] = {}
        # Time travel: the fragments of (table, snapshot id), see :meth:`table_at`.
        self._travelled: dict[tuple[str, int], list[Fragment]] = {}
        # Appends begun: the table as loaded at begin_append, by write id.
        self._bases: dict[str, tuple[Table, TableInfo, list[Fragment]]] = {}

    @classmethod
    def open(cls, warehouse: str | os.PathLike[str], uri: str | None = None, *,
             create: bool = False, allow_moved: bool = False) -> Catalog:
        """Open the metastore of ``warehouse`` (``uri``: any Iceberg catalog URI instead).

        Raises CatalogError if there is no warehouse there (unless ``create``), and if the
        warehouse was copied or moved and not relocated yet (unless ``allow_moved``: the
        relocation itself, see :mod:`mpp.catalog.place`).
        """
        root = to_uri(warehouse)
        path = local_path(root)
        db = os.path.join(path, CATALOG_DB) if path is not None else None
        if path is not None:
            if create:
                _make_dir(path)
            elif uri is None and not os.path.exists(db or ""):
                raise CatalogError(f"no warehouse at {path} (no {CATALOG_DB}); "
                                   f"create one with `mpp datagen --out {path}`")
        try:
            if uri is None:
                if db is None:
                    raise CatalogError("a remote warehouse needs an Iceberg catalog URI (--catalog)")
                ice: IcebergCatalog = SqlCatalog("mpp", uri=f"sqlite:///{db}", warehouse=root)
            else:
                ice = load_catalog("mpp", uri=sqlalchemy_uri(uri), warehouse=root)
        except CatalogError:
            raise
        except Exception as exc:  # pyiceberg raises many kinds; name the catalog, not a trace
            shown = redact_uri(uri) if uri else db
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if uri and uri in reason:
                reason = reason.replace(uri, shown or "")
            raise CatalogError(f"cannot open the Iceberg catalog {shown}: {reason}") from None
        if isinstance(ice, SqlCatalog):  # external tables live in the same database
            engine = ice.engine
        elif db is not None:  # REST/Hive/Glue: external tables in the warehouse's catalog.db
            engine = sa.create_engine(f"sqlite:///{db}")
        else:  # a remote warehouse behind a non-SQL catalog holds Iceberg tables only
            engine = sa.create_engine("sqlite://")
        registry = ExternalRegistry(engine)
        old = None
        if uri is None:  # the warehouse's own catalog.db: its pointers must lie inside it
            owned = {e.name: e.location for e in registry.all() if not cleanup.is_registered(e)}
            old = moved_from(engine, root, owned)
            if old is not None and not allow_moved:
                raise moved_error(root, old)
        return cls(root, ice, registry, old)

    # ---- reading -------------------------------------------------------------------------

    def _iceberg_names(self) -> list[str]:
        try:
            return [ident[-1] for ident in self.iceberg.list_tables(iceberg.NAMESPACE)]
        except NoSuchNamespaceError:  # nothing written yet
            return []

    def tables(self) -> list[str]:
        """Names of every table, sorted."""
        return sorted({*self._iceberg_names(), *self.registry.names()})

    def _load_iceberg(self, name: str) -> Table | None:
        try:
            return self.iceberg.load_table((iceberg.NAMESPACE, name))
        except NoSuchTableError:
            return None
        except FileNotFoundError as exc:
            # The catalog's pointer names a metadata file that is gone (a copied or moved
            # warehouse is refused when it is opened, so this is a file deleted behind mpp).
            missing = getattr(exc, "filename", None) or str(exc)
            raise CatalogError(
                f"table {name!r}: its Iceberg metadata file {missing} is missing (deleted or "
                "moved outside mpp); the table cannot be read. Drop it with DROP TABLE, or "
                "restore the file") from None
        except integrity.UNPARSABLE as exc:  # JSON, UTF-8 or schema errors
            raise integrity.load_error(self.iceberg, name, exc) from None

    def table(self, name: str) -> TableInfo:
        """Schema, format, location and statistics of table ``name``."""
        if name in self._info:
            return self._info[name]
        ext = self.registry.get(name)
        if ext is not None:
            info = _external_info(ext)
            self._fragments[name] = list(ext.fragments)
        else:
            tbl = self._load_iceberg(name)
            if tbl is None and metadata_tables.split(name) is not None:
                return self._metadata_table(name)
            if tbl is None:
                raise UnknownTableError(f"unknown table {name!r}." + suggest(name, self.tables()))
            checked = integrity.check(name, tbl)  # once per load; DamagedMetadataError
            self._fragments[name] = checked.fragments
            self._loaded[name] = tbl
            info = _iceberg_info(name, tbl, checked)
        self._info[name] = info
        return info

    def _metadata_table(self, name: str) -> TableInfo:
        """A metadata table such as ``t$snapshots`` (:mod:`mpp.catalog.metadata_tables`):
        built from ``t``'s Iceberg metadata as one in-memory fragment."""
        from mpp.storage import arrow_ipc

        base, kind = metadata_tables.split(name) or (name, "")
        build = metadata_tables.BUILDERS.get(kind)
        if build is None:
            raise UnknownTableError(
                f"unknown table {name!r}: {kind!r} is not a metadata table (Iceberg tables have "
                f"{', '.join(repr(base + '$' + k) for k in metadata_tables.BUILDERS)})")
        info = self.table(base)
        if info.external:
            raise CatalogError(f"table {name!r}: {base!r} is an external "
                               f"{info.format.value.upper()} table; metadata tables describe "
                               "Iceberg tables")
        data = build(self._loaded[base])
        fragment = arrow_ipc.to_fragment(f"{info.location}#{kind}", data)
        meta = TableInfo(name=name, format=StorageFormat.ARROW, schema=data.schema,
                         stats=TableStats(data.num_rows, fragment.size_bytes, 1),
                         location=info.location)
        self._info[name], self._fragments[name] = meta, [fragment]
        return meta

    def table_at(self, name: str, *, snapshot_id: int | None = None,
                 timestamp: dt.datetime | None = None) -> TableInfo:
        """Table ``name`` as of snapshot ``snapshot_id`` (FOR VERSION AS OF) or as of the
        snapshot current at ``timestamp`` (FOR TIMESTAMP AS OF): a TableInfo carrying the
        snapshot id and statistics from that snapshot's own manifests (see
        :mod:`mpp.catalog.travel`); :meth:`fragments` then lists that snapshot's files."""
        from mpp.catalog import travel

        current = self.table(name)
        if current.external:
            raise CatalogError(f"table {name!r} is an external {current.format.value.upper()} "
                               "table: it has no snapshots to travel to (Iceberg tables do)")
        tbl = self._loaded[name]
        snap = travel.resolve(name, tbl, snapshot_id=snapshot_id, timestamp=timestamp)
        done = travel.travel(name, tbl, current, snap)
        self._travelled[(name, snap.snapshot_id)] = done.fragments
        return done.info

    def refresh(self, name: str) -> None:
        """Forget what this catalog loaded of table ``name``: the next use reads the current
        version (a write starts so, and commits on top of exactly the version it read)."""
        self._info.pop(name, None)
        self._fragments.pop(name, None)
        self._loaded.pop(name, None)
        for key in [k for k in self._travelled if k[0] == name]:
            del self._travelled[key]
        for meta in [k for k in self._info if k.startswith(name + metadata_tables.SEPARATOR)]:
            self.refresh(meta)  # "t$snapshots" describes t as loaded

    def fragments(self, table: TableInfo | str,
                  predicates: Sequence[ColumnPredicate] = ()) -> list[Fragment]:
        """The fragments a scan with ``predicates`` must read, in stable (time) order.

        Partition and min/max pruning: Iceberg's scan plan for Iceberg tables, the catalog's
        per-fragment bounds for every table. ``Fragment.index`` is the position in the unpruned
        list, so task numbers stay comparable between pruned and unpruned runs.
        """
        name = table if isinstance(table, str) else table.name
        sid = None if isinstance(table, str) else table.snapshot_id
        info = self.table(name)
        if sid is not None and (name, sid) not in self._travelled:
            self.table_at(name, snapshot_id=sid)
        frags = self._fragments[name] if sid is None else self._travelled[(name, sid)]
        if not predicates:
            return list(frags)
        keep: set[str] | None = None
        if not info.external:
            tbl = self._load_iceberg(name)
            keep = (iceberg.planned_paths(tbl, predicates, sid)
                    if tbl is not None else None)
        return [f for f in frags
                if (keep is None or f.uri in keep) and fragment_may_match(f, predicates)]

    def properties(self, name: str) -> dict[str, str]:
        """mpp and Iceberg properties of table ``name`` (e.g. the content checksum)."""
        info = self.table(name)
        if info.external:
            ext = self.registry.get(name)
            return dict(ext.properties) if ext else {}
        tbl = self._load_iceberg(name)
        return dict(tbl.properties) if tbl is not None else {}

    def snapshots(self, name: str) -> list[dict[str, Any]]:
        """Snapshots of table ``name``, oldest first (external tables: their registration)."""
        info = self.table(name)
        if info.external:
            ext = self.registry.get(name)
            return [{"snapshot_id": None, "timestamp": ext.created_at if ext else None,
                     "operation": "register", "summary": {}}]
        tbl = self._load_iceberg(name)
        return [{"snapshot_id": s.snapshot_id,
                 "timestamp": dt.datetime.fromtimestamp(s.timestamp_ms / 1000, dt.UTC),
                 "operation": s.summary.operation.value if s.summary else None,
                 "summary": dict(s.summary.additional_properties) if s.summary else {}}
                for s in (tbl.snapshots() if tbl is not None else [])]

    def listed_files(self) -> tuple[set[str], set[str]]:
        """Every file some table's metadata lists (registered files included), and the names
        of tables whose metadata could not be read (their folders must be left alone).

        A registered MySQL table lists no file: its fragments are key ranges of a database
        table, addressed by a ``mysql://`` URL that is not a path."""
        files: set[str] = set()
        unreadable: set[str] = set()
        for ext in self.registry.all():
            if ext.format is not StorageFormat.MYSQL:
                files.update(f.uri for f in ext.fragments)
        for name in self._iceberg_names():
            try:
                tbl = self._load_iceberg(name)
                files |= cleanup.iceberg_files(tbl) if tbl is not None else set()
            except Exception:  # damaged metadata: whatever it lists stays
                unreadable.add(name)
        return files, unreadable

    def clean(self, names: Sequence[str] | None = None, *, dry_run: bool = False,
              older_than: dt.timedelta = cleanup.DEFAULT_OLDER_THAN) -> cleanup.Cleaning:
        """Find (and unless ``dry_run`` delete) orphan files in the folders of ``names``
        (default: every table folder); see :mod:`mpp.catalog.cleanup`."""
        orphans, skipped = cleanup.find_orphans(self, names, older_than=older_than)
        if not dry_run:
            cleanup.remove_orphans(self, orphans, older_than=older_than)
        return cleanup.Cleaning(orphans, skipped)

    def describe(self) -> str:
        """What ``mpp catalog -w DIR`` prints: tables, formats, partitions, snapshots, stats."""
        from mpp.catalog.describe import describe

        return describe(self)

    # ---- writing -------------------------------------------------------------------------

    def begin_write(self, name: str, schema: pa.Schema, format: StorageFormat, *,
                    partition_by: Sequence[str] = (), top_columns: Sequence[str] = (),
                    dictionary_columns: Sequence[str] | None = None,
                    partitioning: Sequence[str] = ()) -> WriteTarget:
        """Start writing new table ``name``: a target to hand to every write task.

        ``top_columns`` get their most frequent values kept in the statistics (skewed keys);
        ``dictionary_columns`` limits Parquet dictionary encoding (None: every column);
        ``partitioning``: Iceberg partition fields (``'date'``, ``'day(time)'``) instead of
        the identity ``partition_by``.
        """
        check_table_name(name)
        if name in self.tables():
            raise CatalogError(f"table {name!r} already exists in {self.warehouse}")
        fields = [partition_field(f) for f in partitioning]
        if partitioning:
            partition_by = [c for t, c in fields if t == "identity"]
        for col in [*partition_by, *top_columns, *(c for _, c in fields)]:
            if schema.get_field_index(col) < 0:
                raise CatalogError(f"no column {col!r} in the schema of {name!r}")
        location = table_location(self.warehouse, name)
        self.clean([name])  # files an earlier, killed attempt at this name left behind
        write_id = WriteTarget.new_id()
        cleanup.start_write(self.warehouse, name, write_id)  # before its first file
        return WriteTarget(
            table=name, format=format, location=location,
            schema=schema, write_id=write_id, partition_by=tuple(partition_by),
            field_ids=iceberg.field_ids(schema) if format is StorageFormat.PARQUET else (),
            top_columns=tuple(top_columns),
            dictionary_columns=None if dictionary_columns is None else tuple(dictionary_columns),
            transforms=tuple((t, c) for t, c in fields if t != "identity"),
            spec=tuple(partitioning),
        )

    def commit_write(self, target: WriteTarget, written: Sequence[WrittenFragment],
                     properties: dict[str, str] | None = None) -> TableInfo:
        """Register every written fragment in one atomic commit; on failure remove the files."""
        from mpp.catalog.commit import commit

        try:
            commit(self, target, list(written), dict(properties or {}))
        except BaseException:
            self.abort_write(target)
            raise
        cleanup.end_write(self.warehouse, target.write_id)  # after the commit: see cleanup
        self.refresh(target.table)
        return self.table(target.table)

    def begin_append(self, name: str, *, top_columns: Sequence[str] = (),
                     statement: str = "INSERT") -> WriteTarget:
        """Start writing into existing Iceberg table ``name`` (INSERT, CREATE OR REPLACE): a
        target for the write tasks.

        :meth:`commit_append` commits on top of the version this catalog loaded (the one a
        statement planned with: :meth:`refresh` first); if anyone else committed since, it
        re-bases on their version where the statement still holds, or fails (so no commit is
        lost)."""
        info = self.table(name)
        if info.external:
            raise CatalogError(f"table {name!r} is an external {info.format.value.upper()} "
                               f"table; {statement} writes Iceberg (Parquet) tables only")
        tbl = self._loaded[name]  # the version ``info`` (and any planning) read
        try:
            spec = iceberg.spec_fields(tbl)
        except ValueError as exc:
            raise CatalogError(f"table {name!r}: {exc} (mpp writes identity, year, month, "
                               "day and hour partitions)") from None
        fields = [partition_field(f) for f in spec]
        self.clean([name])  # files an earlier, killed write left behind
        write_id = WriteTarget.new_id()
        cleanup.start_write(self.warehouse, name, write_id)  # before its first file
        self._bases[write_id] = (tbl, info, list(self._fragments[name]))
        return WriteTarget(
            table=name, format=StorageFormat.PARQUET, location=info.location,
            schema=info.schema, write_id=write_id,
            partition_by=tuple(c for t, c in fields if t == "identity"),
            field_ids=tuple((f.name, f.field_id) for f in tbl.schema().fields),
            top_columns=tuple(c for c in top_columns if c in info.schema.names),
            transforms=tuple((t, c) for t, c in fields if t != "identity"), spec=spec,
        )

    def commit_append(self, target: WriteTarget, written: Sequence[WrittenFragment], *,
                      replace: bool = False, deleted: Set[str] = frozenset(),
                      properties: dict[str, str] | None = None,
                      snapshot_properties: dict[str, str] | None = None,
                      retries: int = 0) -> Committed:
        """Append every written fragment in one snapshot (``replace``: they replace every
        current file; ``deleted``: they replace the files of those paths; older snapshots keep
        listing the files removed); on failure remove the written files. ``properties`` are
        set on the table and ``snapshot_properties`` put in the new snapshot's summary, in
        the same commit.

        A commit by another writer since the write began loses this one the race; it is then
        re-based on the new version and committed again, up to ``retries`` times, if its
        preconditions still hold (:meth:`_rebase`): an append always, a statement that
        replaces files only if the other commit removed none of them (and the schema is the
        one the files were written with). Statistics and the integrity record are computed
        again on the new version; the files are the same."""
        from mpp.catalog.commit import CommitConflict, snapshot

        try:
            base = self._bases.pop(target.write_id, None)
            if base is None:
                raise CatalogError(f"no append to {target.table!r} was begun with write id "
                                   f"{target.write_id}")
            for attempt in range(retries + 1):
                try:
                    done = snapshot(*base, target, list(written), replace=replace,
                                    deleted=deleted, properties=properties,
                                    snapshot_properties=snapshot_properties)
                    break
                except CommitConflict:
                    if attempt == retries:
                        raise
                    base = self._rebase(target, base, deleted, replace)
        except BaseException:
            self.abort_write(target)
            raise
        cleanup.end_write(self.warehouse, target.write_id)  # after the commit: see cleanup
        self.refresh(target.table)
        snap = done.current_snapshot()
        assert snap is not None  # a commit of a snapshot
        operation = snap.summary.operation.value if snap.summary else "append"
        return Committed(self.table(target.table), snap.snapshot_id, operation, attempt)

    def _rebase(self, target: WriteTarget, base: tuple[Table, TableInfo, list[Fragment]],
                deleted: Set[str], replace: bool) -> tuple[Table, TableInfo, list[Fragment]]:
        """The table as another writer's commit left it, for committing ``target`` again;
        CatalogError (nothing written) when the statement's preconditions no longer hold:
        files it replaces were removed (naming the snapshot that removed them), a replace of
        every file whose files changed, or a schema other than the one its files have."""
        name = target.table
        old_tbl, _, old_files = base
        self.refresh(name)
        info = self.table(name)
        tbl = self._loaded[name]
        current = list(self._fragments[name])
        why = ""
        if tbl.schema().schema_id != old_tbl.schema().schema_id:
            why = ("its schema changed (ALTER TABLE) while this write ran; its files have the "
                   "old columns")
        else:
            uris = {f.uri for f in current}
            replaced = {f.uri for f in old_files} if replace else set(deleted)
            gone = sorted(replaced - uris)
            if replace and (gone or uris - replaced):
                why = "its files changed while this CREATE OR REPLACE ran"
            elif gone:
                sid = _removed_by(old_tbl, tbl, gone)
                why = (f"another commit (snapshot {sid}) removed {plural(len(gone), 'file')} "
                       f"this statement replaces ({gone[0]})")
        if why:
            raise CatalogError(f"table {name!r}: {why}; nothing was written, run it again")
        return tbl, info, current

    def alter_schema(self, name: str,
                     change: Callable[[TableInfo, Table], SchemaChange | None], *,
                     retries: int = 0) -> bool:
        """Evolve the schema of Iceberg table ``name`` in one metadata commit (no snapshot).

        ``change`` gets the table as loaded now, checks the statement against it (raising
        its errors) and returns the change, or None when there is nothing to do (IF EXISTS).
        A commit by another writer in between loses the race: the table is loaded again and
        ``change`` checked again against it, up to ``retries`` times (a schema change keeps
        no files, so re-checking is all a retry needs). False if nothing was done."""
        from pyiceberg.exceptions import CommitFailedException

        from mpp.catalog.codec import schema_to_text, stats_to_text

        for attempt in range(retries + 1):
            self.refresh(name)  # check against, and commit on top of, the current version
            info = self.table(name)
            if info.external:
                raise CatalogError(f"table {name!r} is an external {info.format.value.upper()} "
                                   "table; ALTER TABLE changes the schema of Iceberg tables")
            tbl = self._loaded[name]
            planned = change(info, tbl)
            if planned is None:
                return False
            props = {PROP_SCHEMA: schema_to_text(planned.schema)}
            if PROP_STATS in tbl.properties:
                props[PROP_STATS] = stats_to_text(planned.stats)
            footers = {f.uri: f.option(FOOTER_DIGEST) for f in self._fragments[name]}
            try:
                iceberg.commit_schema(tbl, planned.update, props, footers)
            except CommitFailedException as exc:
                if attempt < retries:
                    continue
                raise CatalogError(
                    f"table {name!r} changed while ALTER TABLE ran: another commit came first "
                    f"{plural(retries + 1, 'time')} ({exc}); nothing was changed, run it "
                    "again") from None
            except ValueError as exc:  # pyiceberg refused the change
                raise CatalogError(f"ALTER TABLE {name}: {exc}") from None
            finally:
                self.refresh(name)
            return True
        return False  # unreachable: the last attempt returns or raises

    def drop_table(self, name: str) -> None:
        """Unregister table ``name`` and delete the files it owns (see :mod:`.cleanup`):
        those its metadata lists, inside its own folder; registered files are only forgotten.

        A table whose metadata is damaged or missing is only forgotten: what its metadata
        lists cannot be trusted, so none of its files is deleted (the docs say where they are).
        """
        try:
            info = self.table(name)
        except CatalogError:
            if name not in self._iceberg_names():
                raise
            self.iceberg.drop_table((iceberg.NAMESPACE, name))
            self.refresh(name)
            return
        if info.external:
            ext = self.registry.get(name)
            files = cleanup.external_files(ext) if ext is not None else set()
            self.registry.drop(name)
        else:
            tbl = self._load_iceberg(name)
            files = cleanup.iceberg_files(tbl) if tbl is not None else set()
            self.iceberg.drop_table((iceberg.NAMESPACE, name))
        self.refresh(name)
        cleanup.delete_owned(self.warehouse, info.location, files)

    def abort_write(self, target: WriteTarget) -> None:
        """Remove every file a write produced (nothing is registered before the commit), and
        what a failed commit left (a lost race for the name: Iceberg metadata files)."""
        self._bases.pop(target.write_id, None)
        remove_write(target)
        if target.format is StorageFormat.SQLITE:
            from mpp.catalog.commit import sqlite_path

            db = sqlite_path(target)
            if db is not None and os.path.exists(db) and target.table not in self.tables():
                os.remove(db)
        cleanup.end_write(self.warehouse, target.write_id)
        with contextlib.suppress(Exception):  # best effort: never hide why the write failed
            self.clean([target.table])


def _removed_by(old: Table, new: Table, paths: Sequence[str]) -> int | None:
    """The first snapshot of ``new`` after ``old``'s current one in which one of ``paths`` is
    no longer live (the commit that removed it)."""
    start = old.metadata.current_snapshot_id
    chain = []
    snap = new.current_snapshot()
    while snap is not None and snap.snapshot_id != start:
        chain.append(snap.snapshot_id)
        parent = snap.parent_snapshot_id
        snap = new.snapshot_by_id(parent) if parent is not None else None
    for sid in reversed(chain):
        live = {t.file.file_path for t in new.scan(snapshot_id=sid).plan_files()}
        if any(p not in live for p in paths):
            return sid
    return new.metadata.current_snapshot_id


def _make_dir(path: str) -> None:
    """Create the warehouse directory and prove it is writable (StorageError otherwise)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        probe = Path(path) / ".mpp-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"cannot write the warehouse directory: {exc.strerror or exc}",
                           path) from None


def _fallback_stats(frags: Sequence[Fragment]) -> TableStats:
    cols: dict[str, ColumnStats] = {}
    for f in frags:
        for c, lo, hi in f.bounds:
            old = cols.get(c)
            cols[c] = ColumnStats(min=lo if old is None else min(old.min, lo),
                                  max=hi if old is None else max(old.max, hi))
    return TableStats(row_count=sum(max(0, f.row_count) for f in frags),
                      total_bytes=sum(max(0, f.size_bytes) for f in frags),
                      fragment_count=len(frags), columns=cols)


def _iceberg_info(name: str, tbl: Table, checked: integrity.CheckedTable) -> TableInfo:
    schema = (checked.schema if checked.schema is not None
              else schema_to_pyarrow(tbl.schema(), include_field_ids=False))
    stats = (checked.stats if checked.stats is not None
             else _fallback_stats(checked.fragments))
    return TableInfo(
        name=name, format=StorageFormat.PARQUET, schema=schema, stats=stats,
        location=tbl.location(),
        # Columns constant per data file: identity fields only (a day(time) file holds many
        # times).
        partition_columns=tuple(tbl.schema().find_field(f.source_id).name
                                for f in tbl.spec().fields
                                if isinstance(f.transform, iceberg.IdentityTransform)),
    )


def sqlalchemy_uri(uri: str) -> str:
    """``uri`` with the driver SQLAlchemy should use: ``postgresql://`` (and ``postgres://``)
    go through psycopg 3, the driver mpp installs; other URIs pass through."""
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme):
            return "postgresql+psycopg://" + uri[len(scheme):]
    return uri


def _external_info(ext: ExternalTable) -> TableInfo:
    return TableInfo(name=ext.name, format=ext.format, schema=ext.schema, stats=ext.stats,
                     location=ext.location, partition_columns=ext.partition_columns,
                     external=True)
