"""The files a table owns, deleting them (DROP TABLE), and finding orphans (``mpp catalog clean``).

**What a table owns.** An Iceberg table owns the files its metadata lists: the data files of
every snapshot, the manifests, the manifest lists and the metadata JSON files (current and
previous). A CSV, ORC or SQLite table that mpp wrote owns its fragment files. A table
registered from the user's own files (``mpp catalog register``) owns nothing: DROP forgets it.
DROP deletes only owned files, and only those inside the table's directory inside the
warehouse; then it removes the directories they leave empty. It never deletes a directory
recursively.

**Live writes.** A write announces itself before its first file: ``begin_write`` leaves a
marker ``<warehouse>/.mpp-writes/<write id>.json`` (table, process id, host, start time) and
the commit or abort removes it after its last step. A write is *live* while its marker is
there and its process runs (same host), or, for a process on another host, while the marker
is younger than ``older_than`` (default one day).

**Orphans.** A file in a table's directory is an orphan when it looks like mpp wrote it
(``part-NNNNNN-<write id>.*`` data and staging files, ``metadata/*.metadata.json`` and
``*.avro``, ``<table>.sqlite``), no table's metadata lists it, and no live write can own it:
a data file carries its write id, so its own write must be dead; a metadata file does not, so
no write of that table name may be live. Orphans come from a killed writer (the process died
between its first file and its commit or abort) and from a lost race for one table name (the
loser's Iceberg commit wrote metadata files before failing). They are never read: readers
list files from the catalog only. They are removed by the next write to that table name and
by ``mpp catalog clean``. The order of the checks (list files, then read markers, then read
the catalog) makes a concurrent commit safe: a write's marker outlives its commit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import pyarrow.fs as pafs
from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from mpp.catalog.place import check_table_name, is_inside
from mpp.errors import MppError
from mpp.storage.files import open_output, resolve

if TYPE_CHECKING:
    from mpp.catalog import Catalog
    from mpp.catalog.external import ExternalTable

WRITES_DIR = ".mpp-writes"
DEFAULT_OLDER_THAN = dt.timedelta(days=1)
_DATA_FILE = re.compile(r"part-\d{6,}-([0-9a-f]{12})\.(?:parquet|orc|csv|arrow)\Z")
_METADATA_FILE = re.compile(r"[^/]+(?:\.metadata\.json|\.avro)\Z")


# Manifest list (or manifest) path -> the files it lists, manifests and data files. Both are
# immutable once written (their names carry a fresh UUID), so what they list never changes: a
# process that cleans after every micro-batch commit reads each new one once, not once per
# commit.
# The lock makes the cache safe for threads cleaning at once (a lookup's move_to_end raced
# another thread's popitem of the same path); it is not held while a list is read, so two
# threads may read the same new list, and the reading (which looks up the manifests a list
# names, here again) cannot wait on itself.
_LISTS: OrderedDict[str, frozenset[str]] = OrderedDict()
_LISTS_KEPT = 4096
_LISTS_LOCK = threading.Lock()


def _remembered(path: str, read: Callable[[], Iterable[str]]) -> frozenset[str]:
    with _LISTS_LOCK:
        files = _LISTS.get(path)
        if files is not None:
            _LISTS.move_to_end(path)
            return files
    files = frozenset(read())
    with _LISTS_LOCK:
        _LISTS[path] = files
        _LISTS.move_to_end(path)
        while len(_LISTS) > _LISTS_KEPT:
            _LISTS.popitem(last=False)
    return files


def iceberg_files(tbl: Table) -> set[str]:
    """Every file an Iceberg table's metadata lists, over all its snapshots.

    What a snapshot's manifest list names, and what each manifest lists, is read once per
    process: successive snapshots share most manifests, and a table fed by micro-batches
    (one snapshot each) is cleaned after every commit, which made this quadratic in the
    snapshots (465 manifest reads at 30 snapshots). A remembered file that was damaged since
    still counts as listing its files: the clean-up keeps them, the safe side."""
    io, metadata = tbl.io, tbl.metadata
    files = {tbl.metadata_location, *(log.metadata_file for log in metadata.metadata_log)}

    def manifest_files(manifest: ManifestFile) -> Iterable[str]:
        return (e.data_file.file_path
                for e in manifest.fetch_manifest_entry(io, discard_deleted=False))

    def list_files(snapshot: Snapshot) -> Iterable[str]:
        for manifest in snapshot.manifests(io):
            yield manifest.manifest_path
            yield from _remembered(manifest.manifest_path, partial(manifest_files, manifest))

    for snapshot in metadata.snapshots:
        files.add(snapshot.manifest_list)
        files |= _remembered(snapshot.manifest_list, partial(list_files, snapshot))
    return files


def is_registered(ext: ExternalTable) -> bool:
    """True for a table registered from the user's own files (mpp owns none of them)."""
    from mpp.catalog.external import PROP_REGISTERED, PROP_SOURCE_TABLE

    return PROP_REGISTERED in ext.properties or PROP_SOURCE_TABLE in ext.properties


def external_files(ext: ExternalTable) -> set[str]:
    """The files an external table owns: its fragments' files if mpp wrote them, else none."""
    return set() if is_registered(ext) else {f.uri for f in ext.fragments}


def _path(uri: str) -> str:
    return posixpath.normpath(resolve(uri)[1])


def _remove_empty_dirs(fs: pafs.FileSystem, dirs: Iterable[str], stop: str) -> None:
    """Remove each of ``dirs`` and its parents up to ``stop`` (included) while empty."""
    stop = stop.rstrip("/")
    for d in sorted(set(dirs), key=len, reverse=True):
        while d == stop or d.startswith(stop + "/"):
            try:
                if fs.get_file_info(pafs.FileSelector(d, allow_not_found=True)):
                    break  # not empty
                fs.delete_dir(d)
            except OSError:
                break
            if d == stop:
                break
            d = d.rsplit("/", 1)[0]


def delete_owned(warehouse: str, location: str, files: Iterable[str]) -> list[str]:
    """Delete ``files`` that lie inside ``location``, itself strictly inside ``warehouse``.

    Returns the paths deleted. Files elsewhere are left alone (a table never owns them); a
    location outside the warehouse (a legacy table) deletes nothing.
    """
    if not is_inside(location, warehouse):
        return []
    fs, root = resolve(location)
    deleted = []
    for uri in sorted(set(files)):
        if not is_inside(uri, location):
            continue
        path = _path(uri)
        try:
            fs.delete_file(path)
            deleted.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise MppError(f"cannot delete {path}: {exc}") from None
    _remove_empty_dirs(fs, (p.rsplit("/", 1)[0] for p in deleted), posixpath.normpath(root))
    return deleted


# ---- live writes ---------------------------------------------------------------------------

def _writes_dir(warehouse: str) -> str:
    return f"{warehouse.rstrip('/')}/{WRITES_DIR}"


def start_write(warehouse: str, table: str, write_id: str) -> None:
    """Leave the marker that says write ``write_id`` of ``table`` runs in this process."""
    record = {"table": table, "write_id": write_id, "pid": os.getpid(),
              "host": socket.gethostname(), "started": dt.datetime.now(dt.UTC).isoformat()}
    with open_output(f"{_writes_dir(warehouse)}/{write_id}.json") as out:
        out.write(json.dumps(record).encode())


def end_write(warehouse: str, write_id: str) -> None:
    """Remove the marker of write ``write_id`` (after its commit or its clean-up)."""
    fs, path = resolve(f"{_writes_dir(warehouse)}/{write_id}.json")
    try:
        fs.delete_file(path)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(frozen=True, slots=True)
class _Marker:
    path: str
    table: str
    write_id: str
    live: bool


def _markers(warehouse: str, older_than: dt.timedelta) -> list[_Marker]:
    fs, root = resolve(_writes_dir(warehouse))
    out = []
    now = dt.datetime.now(dt.UTC)
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if not info.base_name.endswith(".json"):
            continue
        try:
            with fs.open_input_stream(info.path) as f:
                rec = json.loads(f.read())
            started = dt.datetime.fromisoformat(rec["started"])
            live = (_alive(int(rec["pid"])) if rec["host"] == socket.gethostname()
                    else now - started < older_than)
            out.append(_Marker(info.path, str(rec["table"]), str(rec["write_id"]), live))
        except (OSError, ValueError, KeyError, TypeError):
            # Being written right now, or damaged: treat as live until it is old.
            age = now - dt.datetime.fromtimestamp(info.mtime.timestamp(), dt.UTC) \
                if info.mtime else older_than
            out.append(_Marker(info.path, "", info.base_name[:-5], age < older_than))
    return out


# ---- orphans -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Orphan:
    """A file no table lists and no live write owns."""

    path: str  # in the warehouse's filesystem
    size: int
    table: str  # the directory (table name) it lies in
    busy: bool = False  # a write of that table name is live: its folders stay


def _candidates(fs: pafs.FileSystem, warehouse: str, root: str,
                name: str) -> list[pafs.FileInfo]:
    """Files in ``<root>/<name>/`` that look like mpp wrote them (and really lie there: a
    symlink leading out of the warehouse is not followed)."""
    base = f"{root}/{name}"
    folder = f"{warehouse.rstrip('/')}/{name}"
    out = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base) + 1:]
        if ((_DATA_FILE.search(info.base_name) or rel == f"{name}.sqlite"
                or (rel.startswith("metadata/") and _METADATA_FILE.match(rel[9:])))
                and is_inside(f"{folder}/{rel}", folder)
                and is_inside(f"{folder}/{rel}", warehouse)):
            out.append(info)
    return out


def _table_dirs(fs: pafs.FileSystem, root: str) -> list[str]:
    names = []
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if info.type == pafs.FileType.Directory:
            try:
                names.append(check_table_name(info.base_name))
            except MppError:
                continue  # hidden or foreign folders are not mpp's
    return sorted(names)


@dataclass(frozen=True, slots=True)
class Cleaning:
    """What a clean-up found: the orphans, and tables whose folders were left alone because
    their metadata cannot be read (what it lists is unknown)."""

    orphans: list[Orphan]
    skipped: list[str]

    @property
    def bytes(self) -> int:
        """Total size of the orphans."""
        return sum(o.size for o in self.orphans)


def find_orphans(catalog: Catalog, names: Iterable[str] | None = None, *,
                 older_than: dt.timedelta = DEFAULT_OLDER_THAN) -> tuple[list[Orphan], list[str]]:
    """Orphans in the directories of ``names`` (default: every table directory).

    Returns the orphans and the names of tables whose files could not be listed (their
    directories are left alone).
    """
    fs, root = resolve(catalog.warehouse)
    root = posixpath.normpath(root)
    dirs = (sorted({check_table_name(n) for n in names}) if names is not None
            else _table_dirs(fs, root))
    files = {d: _candidates(fs, catalog.warehouse, root, d) for d in dirs}  # 1. list
    if not any(files.values()):
        return [], []  # nothing to judge: spare reading every table's metadata
    markers = _markers(catalog.warehouse, older_than)  # 2. live writes
    live_ids = {m.write_id for m in markers if m.live}
    busy = {m.table for m in markers if m.live}
    if any(m.live and not m.table for m in markers):
        busy |= set(dirs)  # an unreadable live marker could be anyone's
    referenced, unreadable = catalog.listed_files()  # 3. what the catalog lists
    ref_paths = {_path(u) for u in referenced}
    orphans = []
    for d in dirs:
        if d in unreadable:
            continue
        for info in files[d]:
            m = _DATA_FILE.search(info.base_name)
            owned_by_live = (m.group(1) in live_ids) if m else d in busy
            if info.path not in ref_paths and not owned_by_live:
                orphans.append(Orphan(info.path, int(info.size or 0), d, d in busy))
    return orphans, sorted(unreadable)


def remove_orphans(catalog: Catalog, orphans: list[Orphan], *,
                   older_than: dt.timedelta = DEFAULT_OLDER_THAN) -> None:
    """Delete ``orphans``, the directories they leave empty, and markers of dead writes."""
    fs, root = resolve(catalog.warehouse)
    root = posixpath.normpath(root)
    tables = set(catalog.tables())
    prefix = catalog.warehouse.rstrip("/")
    for o in orphans:
        uri = prefix + o.path[len(root):]
        if not (o.path.startswith(root + "/") and is_inside(uri, f"{prefix}/{o.table}")
                and is_inside(uri, prefix)):
            continue  # never outside the table's folder in this warehouse
        try:
            fs.delete_file(o.path)
        except FileNotFoundError:
            pass
        if o.busy:
            continue  # a live write may be about to write into these folders
        # Folders left empty go, up to the table's folder (kept while the table exists).
        stop = f"{root}/{o.table}"
        if o.table in tables:
            stop = f"{stop}/{o.path[len(stop) + 1:].split('/', 1)[0]}"
        _remove_empty_dirs(fs, [o.path.rsplit("/", 1)[0]], stop)
    for m in _markers(catalog.warehouse, older_than):
        if not m.live:
            end_write(catalog.warehouse, m.write_id)
