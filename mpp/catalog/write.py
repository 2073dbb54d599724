"""Writing a table: many tasks write fragments in parallel, then the catalog commits once.

The flow (used by ``mpp datagen`` and by CREATE TABLE AS)::

    target = catalog.begin_write("t", schema, StorageFormat.PARQUET, partition_by=("date",))
    written = client.map(write_fragment, [target] * n, range(n), tables)   # on the workers
    catalog.commit_write(target, client.gather(written))                   # one atomic commit

:func:`write_fragment` runs on a worker: it writes one file and returns a small
:class:`WrittenFragment` (the fragment with its bounds, the Parquet footer, statistics partials
and a content checksum), so the commit never re-reads the files. SQLite tables are staged as
Arrow IPC files and loaded into the one database file at commit time (SQLite has one writer).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from mpp.catalog.place import is_inside
from mpp.catalog.stats import FragmentPartials, fragment_partials
from mpp.errors import StorageError
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.files import open_output, resolve

_SUFFIX = {StorageFormat.PARQUET: "parquet", StorageFormat.ORC: "orc", StorageFormat.CSV: "csv",
           StorageFormat.SQLITE: "arrow"}


TRANSFORMS = ("year", "month", "day", "hour")  # Iceberg partition transforms mpp writes
_FIELD = re.compile(r"^\s*(?:(\w+)\s*\(\s*(\w+)\s*\)|(\w+))\s*$")


def partition_field(text: str) -> tuple[str, str]:
    """``(transform, column)`` of one Iceberg partition field as Trino writes it:
    ``'date'`` -> ``("identity", "date")``, ``'day(time)'`` -> ``("day", "time")``.
    ValueError for text of another shape (``bucket(x, 8)``: two arguments)."""
    m = _FIELD.match(text)
    if m is None:
        raise ValueError(f"partition field {text!r} is neither a column nor transform(column)")
    if m.group(3):
        return "identity", m.group(3)
    return m.group(1).lower(), m.group(2)


def transform_key(transform: str, values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A grouping key equal for two values iff the Iceberg ``transform`` of them is equal."""
    if transform == "year":
        return pc.year(values)
    if transform == "month":
        return pc.add(pc.multiply(pc.year(values), 12), pc.month(values))
    if transform == "day":
        return values.cast(pa.date32())
    if transform == "hour":
        return pc.floor_temporal(values, unit="hour")
    raise ValueError(f"partition transform {transform} is not written by mpp "
                     f"(it writes identity, {', '.join(TRANSFORMS)})")


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where and how one write's fragments go; small and picklable, sent to every task."""

    table: str
    format: StorageFormat
    location: str  # URL of the table root
    schema: pa.Schema
    write_id: str
    partition_by: tuple[str, ...] = ()  # identity partition columns, constant per fragment
    field_ids: tuple[tuple[str, int], ...] = ()  # Iceberg field ids (Parquet)
    top_columns: tuple[str, ...] = ()  # columns whose most frequent values are kept
    dictionary_columns: tuple[str, ...] | None = None  # Parquet dictionary encoding (None: all)
    # Non-identity Iceberg partition fields, ``(transform, column)``: each file holds one
    # value of each (e.g. one day of ``time``); files are grouped by their keys.
    transforms: tuple[tuple[str, str], ...] = ()
    spec: tuple[str, ...] = ()  # Iceberg partition fields in order ('date', 'day(time)')

    @property
    def partitioning(self) -> tuple[str, ...]:
        """The Iceberg partition fields of the table (identity ``partition_by`` by default)."""
        return self.spec or self.partition_by

    @property
    def group_columns(self) -> tuple[str, ...]:
        """The columns a file holds one value of: identity partition columns, then one key
        column per transform (added by the write stage's ``prepare``, never written)."""
        return self.partition_by + tuple(f"__{t}_{c}" for t, c in self.transforms)

    @staticmethod
    def new_id() -> str:
        """A fresh write id; it is part of every file name of the write (for clean-up)."""
        return uuid.uuid4().hex[:12]

    def fragment_uri(self, index: int, partition: tuple[tuple[str, Any], ...]) -> str:
        """``<location>/data/<col>=<value>/part-<index>-<write_id>.<suffix>``.

        Column names and values are percent-encoded (``/`` and ``%`` included), so a value
        such as ``../../x`` stays one folder name inside the table's folder.
        """
        parts = "".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}/"
                        for k, v in partition)
        sub = "staging" if self.format is StorageFormat.SQLITE else "data"
        return (f"{self.location.rstrip('/')}/{sub}/{parts}"
                f"part-{index:06d}-{self.write_id}.{_SUFFIX[self.format]}")


@dataclass(frozen=True, slots=True)
class WrittenFragment:
    """What a write task returns: the fragment and what the commit needs to know about it."""

    fragment: Fragment
    partials: FragmentPartials
    checksum: str  # hex digest of the fragment's Arrow content
    parquet_metadata: Any = None  # pyarrow FileMetaData (Parquet only)


def content_checksum(table: pa.Table) -> str:
    """Digest of a table's Arrow IPC stream: equal iff same schema, values and row order."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(memoryview(sink.getvalue())).hexdigest()[:32]  # no copy; SHA-NI


def _partition_of(target: WriteTarget, table: pa.Table) -> tuple[tuple[str, Any], ...]:
    out = []
    for col in target.partition_by:
        mm = pc.min_max(table.column(col))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo != hi:
            raise StorageError(f"fragment spans several values of partition column {col!r} "
                               f"({lo} .. {hi}); split it by {col} first", target.table)
        out.append((col, lo))
    return tuple(out)


def _write_file(target: WriteTarget, table: pa.Table, uri: str) -> Any:
    if target.format is StorageFormat.PARQUET:
        from mpp.storage import parquet

        return parquet.write(table, uri, field_ids=dict(target.field_ids),
                             dictionary_columns=target.dictionary_columns)
    if target.format is StorageFormat.ORC:
        from mpp.storage import orc

        orc.write(table, uri)
    elif target.format is StorageFormat.CSV:
        from mpp.storage import csvfile

        csvfile.write(table, uri)
    else:  # SQLite: stage as Arrow IPC, loaded at commit
        with open_output(uri) as out, pa.ipc.new_file(out, table.schema) as w:
            w.write_table(table)
    return None


def write_fragment(target: WriteTarget, index: int, table: pa.Table) -> WrittenFragment:
    """Write one fragment (runs on a worker) and summarise it for the commit."""
    table = table.select(target.schema.names).cast(target.schema)
    partition = _partition_of(target, table)
    uri = target.fragment_uri(index, partition)
    if not is_inside(uri, target.location):  # defence in depth: never outside the table
        raise StorageError(f"fragment {index} would lie outside the table's folder "
                           f"{target.location}", uri)
    metadata = _write_file(target, table, uri)
    fs, path = resolve(uri)
    size = fs.get_file_info(path).size
    partials = fragment_partials(table, target.top_columns)
    bounds = tuple((name, p.min, p.max) for name, p in partials.columns.items()
                   if p.min is not None)
    options: tuple[tuple[str, Any], ...] = ()
    if target.format is StorageFormat.PARQUET:
        from mpp.storage import parquet

        options = ((parquet.FOOTER_DIGEST, parquet.footer_digest(uri)),)  # read back from cache
    fragment = Fragment(uri=uri, format=target.format, index=index, row_count=table.num_rows,
                        size_bytes=int(size), partition=partition, bounds=bounds,
                        options=options)
    return WrittenFragment(fragment=fragment, partials=partials,
                           checksum=content_checksum(table), parquet_metadata=metadata)


def table_checksum(written: list[WrittenFragment]) -> str:
    """One digest of a table's content: the fragment digests in index order."""
    h = hashlib.blake2b(digest_size=16)
    for w in sorted(written, key=lambda w: w.fragment.index):
        h.update(w.checksum.encode())
    return h.hexdigest()


def appended_checksum(old: str, written: list[WrittenFragment]) -> str:
    """The content digest after ``written`` is appended to a table whose digest was ``old``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(old.encode())
    h.update(table_checksum(written).encode())
    return h.hexdigest()


def remove_write(target: WriteTarget) -> None:
    """Delete every file of one write (a failed or aborted write leaves nothing behind)."""
    fs, root = resolve(target.location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError:
        return
    for info in infos:
        if info.type == pafs.FileType.File and target.write_id in info.base_name:
            fs.delete_file(info.path)
    # Remove directories the write left empty, deepest first.
    dirs = sorted((i.path for i in infos if i.type == pafs.FileType.Directory),
                  key=len, reverse=True)
    for d in [*dirs, root]:
        try:
            if not fs.get_file_info(pafs.FileSelector(d, allow_not_found=True)):
                fs.delete_dir(d)
        except OSError:
            pass
