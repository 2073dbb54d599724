"""Consistency checks of Iceberg metadata that was read without error: what one part says
must agree with what another part says, and with mpp's stored statistics.

Each check gets ``fail(path, problem)``, which makes the error naming the table, and raises it
at the first disagreement. :mod:`mpp.catalog.integrity` decides which checks a load runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFile, DataFileContent, ManifestFile
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import BinaryType, FixedType, PrimitiveType, StringType

from mpp.catalog.model import TableStats
from mpp.errors import DamagedMetadataError
from mpp.storage.base import Fragment

Fail = Callable[[str, str], DamagedMetadataError]


def _le(a: Any, b: Any) -> bool:
    """``a <= b``; True when the two cannot be ordered (NaN, mixed types): nothing to check."""
    try:
        if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
            return True
        return bool(a <= b)
    except TypeError:
        return True


def _inexact(type_: Any) -> bool:
    """String and binary bounds are truncated prefixes (16 chars by default), not values."""
    return isinstance(type_, (StringType, BinaryType, FixedType))


def _decode(fail: Fail, path: str, what: str, type_: Any, raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return from_bytes(type_, raw)
    except Exception as exc:  # struct.error, UnicodeDecodeError, ...: a bound of wrong size
        raise fail(path, f"{what} cannot be decoded ({type(exc).__name__}: {exc})") from None


def manifest(fail: Fail, mlist: str, m: ManifestFile, files: Sequence[DataFile],
             specs: Mapping[int, PartitionSpec], schema: Schema) -> None:
    """The manifest list's counts and partition summary of ``m`` agree with its entries.

    Iceberg skips a whole manifest by that summary, so a damaged one would hide every file.
    """
    rows = sum(f.record_count for f in files)
    for what, added, existing, actual in (
            ("live data files", m.added_files_count, m.existing_files_count, len(files)),
            ("rows", m.added_rows_count, m.existing_rows_count, rows)):
        if added is not None and existing is not None and added + existing != actual:
            raise fail(mlist, f"says manifest {m.manifest_path} holds {added + existing:,} "
                              f"{what}; it holds {actual:,}")
    spec = specs.get(m.partition_spec_id)
    if spec is None:
        raise fail(mlist, f"manifest {m.manifest_path} names partition spec "
                          f"{m.partition_spec_id}, which the table does not have")
    ptype = spec.partition_type(schema)
    for i, (field, summary) in enumerate(zip(ptype.fields, m.partitions or (), strict=False)):
        values = [f.partition[i] for f in files]
        present = [v for v in values if v is not None]
        what = f"the partition summary of {field.name} for {m.manifest_path}"
        lo = _decode(fail, mlist, what, field.field_type, summary.lower_bound)
        hi = _decode(fail, mlist, what, field.field_type, summary.upper_bound)
        ok = (summary.contains_null or len(present) == len(values)) and (
            not present or (lo is not None and _le(lo, min(present)) and hi is not None
                            and (_inexact(field.field_type) or _le(max(present), hi))))
        if not ok:
            raise fail(mlist, f"{what} ({lo} .. {hi}) does not contain its files' values")


def data_file(fail: Fail, path: str, f: DataFile, schema: Schema, spec: PartitionSpec) -> None:
    """One manifest entry (in the manifest at ``path``) is plausible on its own.

    Bounds are ordered, value and null counts fit the record count, and an identity partition
    value, which a scan fills into every row, lies within its column's bounds.
    """
    where = f"entry {f.file_path}"
    if f.content != DataFileContent.DATA:
        raise fail(path, f"{where} is a {f.content.name} file in a data manifest")
    if f.record_count < 0 or f.file_size_in_bytes <= 0:
        raise fail(path, f"{where} has {f.record_count} rows in {f.file_size_in_bytes} bytes")
    lower, upper = f.lower_bounds or {}, f.upper_bounds or {}
    nulls, values = f.null_value_counts or {}, f.value_counts or {}
    decoded: dict[int, tuple[Any, Any]] = {}
    for field in schema.fields:
        fid, name = field.field_id, field.name
        if not isinstance(field.field_type, PrimitiveType):
            continue
        if fid in values and values[fid] != f.record_count:
            raise fail(path, f"{where}: {name} has {values[fid]:,} values in "
                             f"{f.record_count:,} rows")
        if fid in nulls and not 0 <= nulls[fid] <= f.record_count:
            raise fail(path, f"{where}: {name} has {nulls[fid]:,} nulls in {f.record_count:,} rows")
        lo = _decode(fail, path, f"{where}: the lower bound of {name}", field.field_type,
                     lower.get(fid))
        hi = _decode(fail, path, f"{where}: the upper bound of {name}", field.field_type,
                     upper.get(fid))
        if lo is not None and hi is not None and not _le(lo, hi):
            raise fail(path, f"{where}: bounds of {name} are out of order ({lo!r} > {hi!r})")
        decoded[fid] = (lo, hi)
    for pos, pf in enumerate(spec.fields):
        if not isinstance(pf.transform, IdentityTransform) or pos >= len(f.partition):
            continue
        value = f.partition[pos]
        lo, hi = decoded.get(pf.source_id, (None, None))
        if None not in (value, lo, hi) and not (_le(lo, value) and _le(value, hi)):
            raise fail(path, f"{where}: partition value {pf.name}={value!r} lies outside the "
                             f"file's bounds ({lo!r} .. {hi!r})")


def summary(fail: Fail, meta: str, snap: Snapshot, files: Sequence[DataFile], where: str) -> None:
    """The snapshot summary's totals in metadata.json agree with the data files."""
    said: Mapping[str, Any] = snap.summary if snap.summary is not None else {}
    actual = {"total-records": sum(f.record_count for f in files),
              "total-data-files": len(files)}
    if str(said.get("total-delete-files", "0")) == "0":  # else the size counts those too
        actual["total-files-size"] = sum(f.file_size_in_bytes for f in files)
    for key, value in actual.items():
        text = said.get(key)
        if text is not None and str(text) != str(value):
            raise fail(meta, f"snapshot {snap.snapshot_id} summary says {key}={text}, but the "
                             f"data files in {where} give {value:,}")


def totals(fail: Fail, meta: str, stats: TableStats, files: Sequence[DataFile],
           where: str) -> None:
    """mpp's statistics, written in the same commit as the files, count what the files hold."""
    for what, stored, actual in (("rows", stats.row_count, sum(f.record_count for f in files)),
                                 ("data files", stats.fragment_count, len(files)),
                                 ("bytes", stats.total_bytes,
                                  sum(f.file_size_in_bytes for f in files))):
        if stored != actual:
            raise fail(meta, f"mpp's statistics (mpp.stats) say {stored:,} {what}, but the "
                             f"current snapshot's data files in {where} hold {actual:,}")


def columns(fail: Fail, meta: str, stats: TableStats, schema: Schema,
            files: Sequence[DataFile], fragments: Sequence[Fragment],
            manifest_of: Mapping[str, str]) -> None:
    """Per column: the files' null counts add up to mpp's, and every file's bounds lie within
    the table's min/max (a file whose bounds disagree is a damaged manifest, not one to skip).
    """
    inexact = {f.name for f in schema.fields if _inexact(f.field_type)}
    for frag in fragments:
        for name, lo, hi in frag.bounds:
            col = stats.columns.get(name)
            if col is None or name in inexact:
                continue
            if (col.min is not None and not _le(col.min, lo)) or (
                    col.max is not None and not _le(hi, col.max)):
                raise fail(manifest_of.get(frag.uri, meta),
                           f"entry {frag.uri}: bounds of {name} ({lo} .. {hi}) lie outside the "
                           f"table's ({col.min} .. {col.max}, mpp.stats in {meta})")
    for field in schema.fields:
        col = stats.columns.get(field.name)
        counts = [(f.null_value_counts or {}).get(field.field_id) for f in files]
        if col is None or col.null_count is None or None in counts:
            continue
        if sum(counts) != col.null_count:  # type: ignore[arg-type]
            raise fail(meta, f"mpp's statistics say {field.name} has {col.null_count:,} nulls; "
                             f"the manifests count {sum(counts):,}")  # type: ignore[arg-type]
