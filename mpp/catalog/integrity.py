"""Integrity of a table's Iceberg metadata: every read names its file, and what the metadata
says is cross-checked once per table load, before a query trusts it.

Iceberg metadata carries no checksum: metadata.json is plain JSON and manifests are Avro,
deflated without one. A flipped byte either fails to parse (pydantic, Avro, zlib and enum
errors, named here as :class:`~mpp.errors.DamagedMetadataError`) or parses into another
plausible value: a ``current-snapshot-id`` that names no snapshot (the table reads as empty),
a column bound that makes a scan skip a file, a partition value a scan fills into every row.
Those would be silent wrong answers, so :func:`check` verifies, without opening a data file:

1. the snapshot metadata.json names exists, and the ``main`` branch names the same one;
2. each manifest's counts and partition summary in the manifest list agree with its entries;
3. the snapshot summary's totals (records, files, bytes) agree with the data files;
4. the record mpp wrote with the commit (:mod:`mpp.catalog.digest`): the table's location,
   schema, spec and mpp properties, and every data file's manifest entry, are exactly what
   mpp committed. Any changed byte in a field a read uses fails here;
5. mpp's statistics (written in the same commit as the files) count what the files hold.

Without a record (a table written by another engine, or by an older mpp) each manifest entry
is checked for plausibility instead (ordered bounds, counts within the record count, identity
partition values within their bounds) and, with mpp's statistics, every file's bounds must lie
within the table's min/max. A table with neither statistics nor record is checked by what
Iceberg itself holds (1-3). When another engine appended to an mpp table (mpp's snapshot is an
ancestor of the current one), the record and statistics describe the older snapshot and are
not compared.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pyarrow as pa
import pydantic
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.exceptions import ValidationError as IcebergValidationError
from pyiceberg.manifest import DataFile, ManifestContent, ManifestFile, read_manifest_list
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

from mpp.catalog import consistency, iceberg
from mpp.catalog.codec import schema_from_text, stats_from_text
from mpp.catalog.digest import (
    PROP_INTEGRITY,
    RECORD_KEYS,
    by_path,
    files_digest,
    self_digest,
    table_digest,
)
from mpp.catalog.model import TableStats
from mpp.errors import DamagedMetadataError
from mpp.storage.base import Fragment

# What pyiceberg raises on a metadata.json it cannot parse: JSON and UTF-8 errors are
# ValueErrors, pydantic's are wrapped in pyiceberg's own ValidationError.
UNPARSABLE = (ValueError, KeyError, TypeError, IcebergValidationError)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class CheckedTable:
    """What a checked load yields: the fragments and mpp's decoded properties."""

    fragments: list[Fragment]
    stats: TableStats | None  # None: no ``mpp.stats`` (written by another engine)
    schema: pa.Schema | None  # None: no ``mpp.arrow-schema``


@dataclass(frozen=True, slots=True)
class _Listed:
    """The live data files of one manifest."""

    manifest: ManifestFile
    files: list[DataFile]


def _problem(exc: BaseException) -> str:
    """One line on why a metadata file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IcebergValidationError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, pydantic.ValidationError):
        errors = exc.errors()
        if not errors:
            return f"invalid content: {exc}"
        where = ".".join(str(p) for p in errors[0]["loc"]) or "content"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"invalid {where}: {errors[0]['msg']}{more}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"cannot be read ({type(exc).__name__}{': ' + text if text else ''})"


def metadata_location(catalog: IcebergCatalog, name: str) -> str:
    """The metadata.json the catalog names for table ``name`` (read without parsing it)."""
    from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    if isinstance(catalog, SqlCatalog):
        with contextlib.suppress(Exception), Session(catalog.engine) as session:
            row = session.execute(select(IcebergTables.metadata_location).where(
                IcebergTables.catalog_name == catalog.name,
                IcebergTables.table_name == name)).first()
            if row is not None and row[0]:
                return str(row[0])
    return "its metadata.json"


def load_error(catalog: IcebergCatalog, name: str, exc: BaseException) -> DamagedMetadataError:
    """The error for a metadata.json that Iceberg could not parse (JSON, UTF-8, schema)."""
    return DamagedMetadataError(name, metadata_location(catalog, name), _problem(exc))


class _Load:
    """One table load: the table, its metadata.json, and the error naming both."""

    def __init__(self, name: str, table: Table):
        self.name = name
        self.table = table
        self.meta = table.metadata_location

    def fail(self, path: str, problem: str) -> DamagedMetadataError:
        return DamagedMetadataError(self.name, path, problem)

    def read(self, path: str, named_by: str, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except Exception as exc:  # Avro, zlib, enum, pydantic, I/O: any failure is unreadable
            raise self.fail(path, f"{_problem(exc)} (named by {named_by})") from None

    def decoded(self, key: str, decode: Callable[[str], _T]) -> _T | None:
        text = self.table.properties.get(key)
        if text is None:
            return None
        try:
            return decode(text)
        except Exception as exc:  # JSON, base64 or Arrow IPC errors of a damaged property
            raise self.fail(self.meta, f"property {key} {_problem(exc)}") from None

    def snapshot(self) -> Snapshot | None:
        md = self.table.metadata
        sid = md.current_snapshot_id
        main = md.refs.get("main")
        if main is not None and main.snapshot_id != sid:
            raise self.fail(self.meta, f"current-snapshot-id {sid} disagrees with the main "
                                       f"branch's snapshot-id {main.snapshot_id}")
        if sid is None:
            return None
        snap = self.table.snapshot_by_id(sid)
        if snap is None:
            ids = ", ".join(str(s.snapshot_id) for s in md.snapshots[:5]) or "none"
            raise self.fail(self.meta, f"current-snapshot-id {sid} names no snapshot "
                                       f"(snapshots: {ids})")
        return snap

    def listed(self, snap: Snapshot) -> list[_Listed]:
        """The data manifests of ``snap`` with their live files, read fresh (not cached)."""
        io, mlist = self.table.io, snap.manifest_list
        manifests = self.read(mlist, self.meta,
                              lambda: list(read_manifest_list(io.new_input(mlist))))
        out = []
        for m in manifests:
            if m.content != ManifestContent.DATA:
                continue  # delete files: mpp reads data files only
            entries = self.read(m.manifest_path, mlist, partial(
                m.fetch_manifest_entry, io, discard_deleted=True))
            files = [e.data_file for e in entries]
            consistency.manifest(self.fail, mlist, m, files, self.table.specs(),
                                 self.table.schema())
            out.append(_Listed(m, files))
        return out

    def recorded(self, record: Any, snap: Snapshot | None,
                 files: list[DataFile], where: str) -> dict[str, str] | None:
        """Compare with mpp's record; the footer digests by path, or None if a later commit by
        another engine made the record (and mpp's statistics) describe an older snapshot."""
        if (not isinstance(record, dict) or set(record) != RECORD_KEYS
                or record["self"] != self_digest(record)):
            raise self.fail(self.meta, f"property {PROP_INTEGRITY} is damaged (its own digest "
                                       "differs)")
        sid = snap.snapshot_id if snap is not None else None
        if sid != record["snapshot"]:
            if record["snapshot"] in _ancestors(self.table.metadata, snap):
                return None
            raise self.fail(self.meta, f"current snapshot {sid} is neither the one mpp "
                                       f"committed ({record['snapshot']}) nor a later one")
        if record["table"] != table_digest(self.table.metadata, record["schema"],
                                           record["spec"]):
            raise self.fail(self.meta, "its location, schema, partition spec or mpp properties "
                                       f"differ from what mpp recorded at commit ({PROP_INTEGRITY})")
        if files_digest(files) != record["files"]:
            raise self.fail(where, "the data files listed differ from what mpp recorded at "
                                   f"commit ({PROP_INTEGRITY} in {self.meta})")
        ordered = by_path(files)
        if len(record["footers"]) != len(ordered):
            raise self.fail(self.meta, f"property {PROP_INTEGRITY} lists "
                                       f"{len(record['footers'])} footers for {len(ordered)} files")
        return {f.file_path: d for f, d in zip(ordered, record["footers"], strict=True) if d}


def _ancestors(md: TableMetadata, snap: Snapshot | None) -> set[int]:
    seen: set[int] = set()
    while snap is not None and snap.snapshot_id not in seen:  # a damaged parent id may loop
        seen.add(snap.snapshot_id)
        parent = snap.parent_snapshot_id
        snap = md.snapshot_by_id(parent) if parent is not None else None
    return seen


def _where(snap: Snapshot | None, listed: list[_Listed]) -> str:
    if snap is None:
        return "no snapshot"
    paths = [entry.manifest.manifest_path for entry in listed]
    named = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"{named or 'no manifest'} (listed in {snap.manifest_list})"


def check(name: str, table: Table) -> CheckedTable:
    """Read the current snapshot's data files of ``table``, cross-check its metadata, and
    return its fragments. Raises DamagedMetadataError naming ``name`` and the file."""
    from mpp.catalog import PROP_SCHEMA, PROP_STATS

    load = _Load(name, table)
    stats = load.decoded(PROP_STATS, stats_from_text)
    schema = load.decoded(PROP_SCHEMA, schema_from_text)
    record = load.decoded(PROP_INTEGRITY, json.loads)
    snap = load.snapshot()
    listed = load.listed(snap) if snap is not None else []
    files = [f for entry in listed for f in entry.files]
    where = _where(snap, listed)
    if snap is not None:
        consistency.summary(load.fail, load.meta, snap, files, where)
    footers = load.recorded(record, snap, files, where) if record is not None else None
    verified = footers is not None  # every entry is byte for byte what mpp committed
    if not verified:
        for entry in listed:
            for f in entry.files:
                consistency.data_file(load.fail, entry.manifest.manifest_path, f,
                                      table.schema(), table.specs().get(f.spec_id, table.spec()))
    fragments = iceberg.all_fragments(table, files, footers, arrow=schema)
    if stats is not None and (record is None or verified):
        consistency.totals(load.fail, load.meta, stats, files, where)
        if not verified:
            manifest_of = {f.file_path: e.manifest.manifest_path for e in listed for f in e.files}
            consistency.columns(load.fail, load.meta, stats, table.schema(), files, fragments,
                                manifest_of)
    return CheckedTable(fragments=fragments, stats=stats, schema=schema)
