"""Register a user's own Parquet, CSV or ORC files as a table, read in place.

``mpp catalog register --format parquet --table orders --path /lake/orders/`` lists the files
(one file, a folder, or a glob; see :mod:`mpp.storage.listing`), reads each file's schema and
statistics, checks that every file has the same schema, and registers the table as one row of
the external-table registry (one transaction: fully registered or not at all). Nothing is
copied, and DROP TABLE only forgets the table (``mpp.registered``): the files stay the user's.

Statistics, by format:

* Parquet: from the footers only (no data page is read, so registering a large lake is
  cheap): row counts, per-column min/max and null counts. Distinct estimates are unknown.
* CSV and ORC: each file is read once at registration (CSV has no metadata; pyarrow does not
  expose ORC's column statistics), which also yields distinct estimates (KMV sketches, as for
  written tables) and proves every row parses.

Hive-style ``key=value/`` folders become partition columns, typed as
:func:`mpp.storage.listing.partition_types` says; their values are the fragments' partition
values, so a filter on them prunes whole files before any task is made.

Types mpp does not compute with are stored as the nearest type it does: a decimal of more than
38 digits as DOUBLE (DECIMAL(p, s) up to 38 digits is kept), ``string_view``/``large_string``
as VARCHAR, timestamps of any unit as microseconds. The file's own type of a column stored as
DOUBLE is kept in ``mpp.declared-types`` and shown by ``mpp catalog``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mpp.catalog.external import PROP_DECLARED_TYPES, PROP_REGISTERED, ExternalTable
from mpp.catalog.model import ColumnStats, TableInfo, TableStats
from mpp.catalog.place import check_table_name
from mpp.catalog.stats import FragmentPartials, fragment_partials, merge_partials
from mpp.errors import CatalogError
from mpp.storage import PATH_PARTITION, ROW_COLUMN
from mpp.storage.base import Fragment, StorageFormat
from mpp.storage.files import resolve, storage_errors
from mpp.storage.listing import list_files, partition_types, path_partition, typed_value
from mpp.storage.schema_text import schema_to_text

if TYPE_CHECKING:
    from mpp.catalog import Catalog

REGISTERABLE = (StorageFormat.PARQUET, StorageFormat.CSV, StorageFormat.ORC)
_ALIAS = {pa.int64(): "int64", pa.date32(): "date32", pa.string(): "string"}


def storable_type(type_: pa.DataType) -> pa.DataType:
    """The type mpp computes with for a file column of ``type_`` (see the module doc)."""
    if pa.types.is_decimal(type_):
        return pa.decimal128(type_.precision, type_.scale) if type_.precision <= 38 else (
            pa.float64())
    if pa.types.is_string_view(type_) or pa.types.is_large_string(type_):
        return pa.string()
    if pa.types.is_binary_view(type_) or pa.types.is_large_binary(type_):
        return pa.binary()
    if pa.types.is_timestamp(type_) and type_.unit != "us":
        return pa.timestamp("us", type_.tz)
    if pa.types.is_date64(type_):
        return pa.date32()
    if pa.types.is_dictionary(type_):
        return storable_type(type_.value_type)
    return type_


def storable_schema(schema: pa.Schema) -> tuple[pa.Schema, dict[str, str]]:
    """``schema`` in storable types (nullable, no field metadata), and ``{column: file type}``
    of every column whose SQL type changed (a decimal of more than 38 digits stored as
    DOUBLE)."""
    fields, declared = [], {}
    for f in schema:
        t = storable_type(f.type)
        if pa.types.is_decimal(f.type) and not pa.types.is_decimal(t):  # the other changes
            # keep the SQL type
            declared[f.name] = str(f.type)
        fields.append(pa.field(f.name, t))
    return pa.schema(fields), declared


@dataclass
class _File:
    """What registration learned about one file."""

    uri: str
    schema: pa.Schema  # the file's own types
    rows: int
    size: int
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    nulls: dict[str, int | None] = field(default_factory=dict)
    partials: FragmentPartials | None = None  # CSV/ORC: from one full read


def _plain(value: Any, type_: pa.DataType) -> Any:
    """A bound as the value of its storable type (bounds of a decimal beyond 38 digits, stored
    as DOUBLE, become floats)."""
    if isinstance(value, decimal.Decimal) and pa.types.is_floating(storable_type(type_)):
        return float(value)
    return value


def _parquet_file(uri: str) -> _File:
    fs, path = resolve(uri)
    with storage_errors(uri), fs.open_input_file(path) as f:
        md = pq.read_metadata(f)
        schema = md.schema.to_arrow_schema()
        size = f.size()
    out = _File(uri, schema, md.num_rows, size)
    leaf = {md.schema.column(j).path: j for j in range(md.num_columns)}
    for name in schema.names:
        j = leaf.get(name)
        if j is None:
            continue  # nested column: no column-level statistics
        stats = [md.row_group(i).column(j).statistics for i in range(md.num_row_groups)]
        if stats and all(s is not None and s.has_min_max for s in stats):
            lo = min(_plain(s.min, schema.field(name).type) for s in stats)
            hi = max(_plain(s.max, schema.field(name).type) for s in stats)
            out.bounds[name] = (lo, hi)
        if stats and all(s is not None and s.has_null_count for s in stats):
            out.nulls[name] = sum(s.null_count for s in stats)
    return out


def _read_rows(fmt: StorageFormat, uri: str) -> pa.Table:
    """Every row of a CSV or ORC file (StorageError naming the file if it does not parse)."""
    fs, path = resolve(uri)
    with storage_errors(uri), fs.open_input_file(path) as f:
        if fmt is StorageFormat.ORC:
            import pyarrow.orc as porc

            return porc.ORCFile(f).read()
        import pyarrow.csv as pcsv

        from mpp.storage.csvfile import malformed_row_error

        try:
            return pcsv.read_csv(f, read_options=pcsv.ReadOptions(use_threads=False),
                                 convert_options=pcsv.ConvertOptions(strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            raise malformed_row_error(str(exc), uri, None) from None


def _row_file(fmt: StorageFormat, uri: str) -> _File:
    table = _read_rows(fmt, uri)
    storable, _ = storable_schema(table.schema)
    partials = fragment_partials(table.cast(storable))
    out = _File(uri, table.schema, table.num_rows, _size(uri), partials=partials)
    for name, p in partials.columns.items():
        if p.min is not None:
            out.bounds[name] = (p.min, p.max)
        out.nulls[name] = p.null_count
    return out


def _size(uri: str) -> int:
    from mpp.storage.files import file_size

    return file_size(uri)


def _has(column: str, type_: pa.DataType | None) -> str:
    return (f"has column {column!r} of type {type_}" if type_ is not None
            else f"has no column {column!r}")


def _check_same_schema(files: Sequence[_File]) -> None:
    """CatalogError naming two files and the column where their schemas differ."""
    first = files[0]
    want = {f.name: f.type for f in first.schema}
    for other in files[1:]:
        have = {f.name: f.type for f in other.schema}
        for name in [*want, *(n for n in have if n not in want)]:
            a, b = want.get(name), have.get(name)
            if a == b:
                continue
            raise CatalogError(f"the files have different schemas: {first.uri} "
                               f"{_has(name, a)}, {other.uri} {_has(name, b)}; "
                               "nothing was registered")


def _partitions(base: str, uris: Sequence[str], columns: Sequence[str]
                ) -> tuple[dict[str, pa.DataType], list[tuple[tuple[str, Any], ...]]]:
    """Partition column types and each file's typed partition values (Hive folders)."""
    raw = [path_partition(base, u) for u in uris]
    keys = [k for k, _ in raw[0]]
    for uri, parts in zip(uris, raw, strict=True):
        if [k for k, _ in parts] != keys:
            raise CatalogError(
                f"the files lie in different partition folders: {uris[0]} is below "
                f"{'/'.join(k + '=' for k in keys) or 'no key=value folder'}, {uri} below "
                f"{'/'.join(k + '=' for k, _ in parts) or 'no key=value folder'}; "
                "nothing was registered")
    clash = [k for k in keys if k in columns]
    if clash:
        raise CatalogError(f"partition folder {clash[0]}=... names a column the files also "
                           f"hold ({uris[0]}); nothing was registered")
    types = partition_types({k: [dict(p)[k] for p in raw] for k in keys})
    return types, [tuple((k, typed_value(v, types[k])) for k, v in p) for p in raw]


def _partition_stats(values: list[tuple[tuple[str, Any], ...]], files: Sequence[_File],
                     key: str) -> ColumnStats:
    per_file = [(dict(v)[key], f.rows) for v, f in zip(values, files, strict=True)]
    seen = [v for v, _ in per_file if v is not None]
    return ColumnStats(min=min(seen) if seen else None, max=max(seen) if seen else None,
                       null_count=sum(n for v, n in per_file if v is None),
                       distinct_count=len(set(seen)))


def _table_stats(fmt: StorageFormat, files: Sequence[_File]) -> TableStats:
    total = sum(f.size for f in files)
    if fmt is not StorageFormat.PARQUET:
        return merge_partials([f.partials for f in files if f.partials is not None], total)
    columns = {}
    for name in files[0].schema.names:
        bounds = [f.bounds.get(name) for f in files]
        nulls = [f.nulls.get(name) for f in files]
        known = all(b is not None for b in bounds)
        columns[name] = ColumnStats(
            min=min(b[0] for b in bounds) if known else None,  # type: ignore[index]
            max=max(b[1] for b in bounds) if known else None,  # type: ignore[index]
            null_count=sum(nulls) if all(n is not None for n in nulls) else None)  # type: ignore[arg-type]
    return TableStats(sum(f.rows for f in files), total, len(files), columns)


def register_files(catalog: Catalog, name: str, path: str, fmt: StorageFormat | str
                   ) -> TableInfo:
    """Register the ``fmt`` files at ``path`` (a file, a folder or a glob) as table ``name``.

    Raises CatalogError for a bad name or format, a taken name, files of different schemas or
    partition folders (naming two files and the column), and StorageError naming the path or
    the file when nothing matches or a file cannot be read. Either way nothing is registered.
    """
    check_table_name(name)
    try:
        fmt = StorageFormat(fmt)
    except ValueError:
        fmt = None  # type: ignore[assignment]
    if fmt not in REGISTERABLE:
        raise CatalogError(f"cannot register files of format {fmt!r}: use one of "
                           f"{', '.join(f.value for f in REGISTERABLE)} (sqlite: a database)")
    if name in catalog.tables():
        raise CatalogError(f"table {name!r} already exists in {catalog.warehouse}")
    base, uris = list_files(path)
    files = [_parquet_file(u) if fmt is StorageFormat.PARQUET else _row_file(fmt, u)
             for u in uris]
    _check_same_schema(files)
    schema, declared = storable_schema(files[0].schema)
    types, values = _partitions(base, uris, schema.names)
    stats = _table_stats(fmt, files)
    for key in types:
        stats.columns[key] = _partition_stats(values, files, key)
    options: tuple[tuple[str, Any], ...] = ()
    if fmt is not StorageFormat.PARQUET or declared:  # the types to parse / to cast to
        options += (("schema", schema_to_text(schema)),)
    if types:
        options += ((PATH_PARTITION, tuple((k, _ALIAS[t]) for k, t in types.items())),
                    (ROW_COLUMN, schema.names[0]))
    fragments = tuple(
        Fragment(uri=f.uri, format=fmt, index=i, row_count=f.rows, size_bytes=f.size,
                 partition=values[i],
                 bounds=tuple((c, lo, hi) for c, (lo, hi) in f.bounds.items()),
                 options=options)
        for i, f in enumerate(files))
    full = pa.schema([*schema, *(pa.field(k, t) for k, t in types.items())])
    properties = {PROP_REGISTERED: "true"}
    if declared:
        properties[PROP_DECLARED_TYPES] = json.dumps(declared)
    catalog.registry.register(ExternalTable(
        name=name, format=fmt, location=base, schema=full, partition_columns=tuple(types),
        fragments=fragments, stats=stats, properties=properties,
        created_at=dt.datetime.now(dt.UTC)))
    return catalog.table(name)


__all__ = ["REGISTERABLE", "register_files", "storable_schema", "storable_type"]
