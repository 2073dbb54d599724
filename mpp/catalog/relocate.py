"""Relocating a copied or moved warehouse: ``mpp catalog relocate -w DIR``.

Iceberg metadata names files by absolute location, so a warehouse copied with ``cp -r`` still
points at the original's files (and one moved with ``mv`` at files that are gone).
:meth:`Catalog.open <mpp.catalog.Catalog.open>` notices and refuses to work; this module makes
the copy use its own files:

* every Iceberg table gets new metadata written inside the new warehouse: its current
  snapshot's data files, at their new paths, are committed as the one snapshot of a new
  metadata file (schema, partitioning and mpp's properties, statistics included, are kept;
  earlier snapshots are not carried over), and mpp's integrity record is checked against the
  copy's files and rewritten for their new paths;
* every external table's location and fragment files that lay inside the old warehouse get
  the new place (the user's registered files elsewhere keep their paths);
* the catalog's pointers change in ONE transaction of ``catalog.db``: all tables move, or
  none does.

Everything is read from the new place (the old one may be gone) and written inside it;
nothing under the old warehouse is read, changed or deleted. The copied metadata files the new
metadata supersedes are orphans, removed at the end as ``mpp catalog clean`` would.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import DATA_FILE_TYPE, DataFile
from pyiceberg.serializers import FromInputFile

from mpp.catalog import Catalog, iceberg
from mpp.catalog.codec import fragment_to_json
from mpp.catalog.digest import PROP_INTEGRITY, by_path, files_digest, integrity_record
from mpp.catalog.place import shown
from mpp.errors import CatalogError, DamagedMetadataError
from mpp.storage.base import Fragment
from mpp.storage.files import file_size


def _moved(uri: str, old: str, new: str) -> str:
    """``uri`` with the ``old`` warehouse prefix replaced by ``new`` (others unchanged)."""
    old, new = old.rstrip("/"), new.rstrip("/")
    return new + uri[len(old):] if uri == old or uri.startswith(old + "/") else uri


class _MovedIO(PyArrowFileIO):
    """Reads what the metadata names under the old warehouse from the new one instead."""

    def __init__(self, old: str, new: str):
        super().__init__()
        self._old, self._new = old, new

    def new_input(self, location: str) -> Any:
        return super().new_input(_moved(location, self._old, self._new))


@dataclass
class Relocation:
    """What :func:`relocate` did: the old place, and per table the files it now names."""

    old: str
    new: str
    tables: dict[str, int] = field(default_factory=dict)  # name -> data files relocated
    orphans_removed: int = 0

    def summary(self) -> str:
        """Lines for the terminal."""
        if not self.old:
            return f"{shown(self.new)} is in its own place: nothing to relocate"
        lines = [f"relocated {shown(self.new)} (copied or moved from {shown(self.old)}):"]
        lines += [f"  {name}: {n} file(s)" for name, n in sorted(self.tables.items())]
        lines.append(f"  {self.orphans_removed} superseded metadata file(s) of the copy removed")
        return "\n".join(lines)


def _moved_data_file(df: DataFile, old: str, new: str) -> DataFile:
    args = {f.name: getattr(df, f.name) for f in DATA_FILE_TYPE[2].fields}
    args["file_path"] = _moved(df.file_path, old, new)
    out = DataFile.from_args(**args)
    out.spec_id = df.spec_id
    return out


def _stage_iceberg(name: str, pointer: str, old: str, new: str,
                   scratch: SqlCatalog) -> tuple[str, int]:
    """Write table ``name``'s metadata for the new place; its new metadata location."""
    io = _MovedIO(old, new)
    try:
        metadata = FromInputFile.table_metadata(io.new_input(pointer))
        snapshot = metadata.current_snapshot()
        listed = [e.data_file for m in (snapshot.manifests(io) if snapshot else [])
                  for e in m.fetch_manifest_entry(io)]
    except (OSError, ValueError) as exc:
        raise CatalogError(f"table {name!r}: cannot read its metadata in the new place "
                           f"({_moved(pointer, old, new)}): {exc}") from None
    record = json.loads(metadata.properties.get(PROP_INTEGRITY, "null"))
    if record is not None and record.get("files") != files_digest(listed):
        raise DamagedMetadataError(
            f"table {name!r}: its metadata is damaged: {_moved(pointer, old, new)}: its data "
            f"files differ from what mpp recorded at commit ({PROP_INTEGRITY}); not relocated")
    files = [_moved_data_file(df, old, new) for df in listed]
    for df in files:
        file_size(df.file_path)  # StorageError naming a data file the copy lacks
    txn = scratch.create_table_transaction(
        (iceberg.NAMESPACE, name), metadata.schema(), location=_moved(metadata.location, old, new),
        partition_spec=metadata.spec(), sort_order=metadata.sort_order(),
        properties=metadata.properties)
    if files:
        with txn.update_snapshot().fast_append() as append:
            for df in files:
                append.append_data_file(df)
    if record is not None:  # the same files and footers, at their new paths (same order)
        footers = dict(zip((f.file_path for f in by_path(files)), record["footers"], strict=True))
        txn.set_properties({PROP_INTEGRITY: integrity_record(txn.table_metadata, files, footers)})
    return txn.commit_transaction().metadata_location, len(files)


def _moved_fragment(f: Fragment, old: str, new: str) -> dict[str, Any]:
    return fragment_to_json(Fragment(uri=_moved(f.uri, old, new), format=f.format, index=f.index,
                                     row_count=f.row_count, size_bytes=f.size_bytes,
                                     partition=f.partition, bounds=f.bounds, options=f.options))


def relocate(warehouse: str | os.PathLike[str]) -> Relocation:
    """Make the copied or moved warehouse at ``warehouse`` use its own files (see module)."""
    cat = Catalog.open(warehouse, allow_moved=True)
    old, new = cat.moved_from, cat.warehouse
    if old is None:
        return Relocation("", new)
    if not isinstance(cat.iceberg, SqlCatalog):
        raise CatalogError("only a warehouse with its own catalog.db can be relocated")
    engine = cat.iceberg.engine
    with engine.connect() as con:
        pointers = con.execute(sa.text(
            "SELECT table_name, metadata_location FROM iceberg_tables "
            "WHERE catalog_name = :c AND table_namespace = :ns"),
            {"c": cat.iceberg.name, "ns": iceberg.NAMESPACE}).all()
    out = Relocation(old, new)
    scratch = SqlCatalog("relocate", uri="sqlite:///:memory:", warehouse=new)
    scratch.create_namespace(iceberg.NAMESPACE)
    staged = {}
    for name, pointer in pointers:
        staged[name], out.tables[name] = _stage_iceberg(name, pointer, old, new, scratch)
    with engine.begin() as con:  # every pointer changes, or none
        for name, pointer in staged.items():
            con.execute(sa.text(
                "UPDATE iceberg_tables SET metadata_location = :m, "
                "previous_metadata_location = NULL WHERE catalog_name = :c "
                "AND table_namespace = :ns AND table_name = :n"),
                {"m": pointer, "c": cat.iceberg.name, "ns": iceberg.NAMESPACE, "n": name})
        for ext in cat.registry.all():
            frags = [_moved_fragment(f, old, new) for f in ext.fragments]
            con.execute(sa.text("UPDATE mpp_external_tables SET location = :loc, "
                                "fragments = :frags WHERE name = :n"),
                        {"loc": _moved(ext.location, old, new), "frags": json.dumps(frags),
                         "n": ext.name})
            out.tables[ext.name] = len({f.uri for f in ext.fragments})
    out.orphans_removed = len(Catalog.open(new).clean().orphans)
    return out
