"""The Iceberg side of the metastore: pyiceberg catalogs, one-commit writes, scan plans.

Columnar warehouse tables are Iceberg tables of Parquet files. A write registers all its data
files in one transaction (create table + fast append + mpp's own properties), so a table is
either fully there or not there. Reading, the data files of a scan plan (Iceberg's partition
and min/max pruning) become :class:`~mpp.storage.base.Fragment` s with bounds decoded from
the manifest, so the planner never opens a data file to plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any

import pyarrow as pa
from pyiceberg import expressions as ie
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.conversions import from_bytes
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table import Table
from pyiceberg.table.update.schema import UpdateSchema
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    YearTransform,
)
from pyiceberg.types import DateType, TimestampType, TimestamptzType

from mpp.catalog.digest import PROP_INTEGRITY, integrity_record
from mpp.catalog.write import WrittenFragment, partition_field
from mpp.storage.base import COLUMN_BYTES, ColumnPredicate, Fragment, StorageFormat
from mpp.storage.parquet import FOOTER_DIGEST, READ_SCHEMA, with_field_ids
from mpp.storage.predicates import balanced

NAMESPACE = "mpp"
_EPOCH = dt.datetime(1970, 1, 1)


def iceberg_schema(schema: pa.Schema) -> Schema:
    """The Iceberg schema (fresh field ids 1..n) of an Arrow schema."""
    return assign_fresh_schema_ids(IcebergCatalog._convert_schema_if_needed(schema))


def field_ids(schema: pa.Schema) -> tuple[tuple[str, int], ...]:
    """``(name, field id)`` for the top-level columns of ``schema`` as Iceberg numbers them."""
    return tuple((f.name, f.field_id) for f in iceberg_schema(schema).fields)


_TRANSFORMS = {"identity": IdentityTransform, "year": YearTransform, "month": MonthTransform,
               "day": DayTransform, "hour": HourTransform}


def partition_spec(schema: Schema, columns: Sequence[str]) -> PartitionSpec:
    """The partition spec of Trino-style fields: ``'date'`` (identity) or ``'day(time)'``
    (also year, month, hour), named as Trino names them (``time_day``)."""
    fields = []
    for i, text in enumerate(columns):
        transform, column = partition_field(text)
        fields.append(PartitionField(
            source_id=schema.find_field(column).field_id, field_id=1000 + i,
            transform=_TRANSFORMS[transform](),
            name=column if transform == "identity" else f"{column}_{transform}"))
    return PartitionSpec(*fields)


def spec_fields(table: Table) -> tuple[str, ...]:
    """The table's partition fields as :func:`partition_spec` takes them (``'day(time)'``);
    ValueError naming a transform mpp does not write (bucket, truncate, ...)."""
    names = {cls: name for name, cls in _TRANSFORMS.items()}
    out = []
    for f in table.spec().fields:
        column = table.schema().find_field(f.source_id).name
        name = names.get(type(f.transform))
        if name is None:
            raise ValueError(f"partition field {f.name} ({f.transform}) is not written by mpp")
        out.append(column if name == "identity" else f"{name}({column})")
    return tuple(out)


def _data_file(w: WrittenFragment, schema: Schema, spec: PartitionSpec,
               props: dict[str, str]) -> DataFile:
    """An Iceberg DataFile from a write task's footer (no file is re-read)."""
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=w.parquet_metadata,
        stats_columns=compute_statistics_plan(schema, props),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA, file_path=w.fragment.uri, file_format=FileFormat.PARQUET,
        partition=stats.partition(spec, schema), file_size_in_bytes=w.fragment.size_bytes,
        sort_order_id=None, spec_id=spec.spec_id, equality_ids=None, key_metadata=None,
        **stats.to_serialized_dict(),
    )


def create_with_files(catalog: IcebergCatalog, name: str, arrow_schema: pa.Schema,
                      location: str, partition_by: Sequence[str],
                      written: Sequence[WrittenFragment], properties: dict[str, str]) -> Table:
    """Create table ``name`` holding ``written`` in one atomic commit (one snapshot).

    The commit also records digests of its metadata (``mpp.integrity``), which every load
    checks (:mod:`mpp.catalog.integrity`).
    """
    schema = iceberg_schema(arrow_schema)
    spec = partition_spec(schema, partition_by)
    if NAMESPACE not in {ns[0] for ns in catalog.list_namespaces()}:
        catalog.create_namespace_if_not_exists(NAMESPACE)
    txn = catalog.create_table_transaction(
        (NAMESPACE, name), schema, location=location, partition_spec=spec, properties=properties
    )
    files = [_data_file(w, schema, spec, properties)
             for w in sorted(written, key=lambda w: w.fragment.index)]
    footers = {w.fragment.uri: w.fragment.option(FOOTER_DIGEST) for w in written}
    if files:  # an empty table (CREATE TABLE with columns) has no snapshot, as in Trino
        with txn.update_snapshot().fast_append() as append:
            for f in files:
                append.append_data_file(f)
    txn.set_properties({PROP_INTEGRITY: integrity_record(txn.table_metadata, files, footers)})
    return txn.commit_transaction()


def without_retries(table: Table) -> Table:
    """``table`` whose transactions fail on a concurrent commit instead of retrying.

    pyiceberg (0.12) retries a snapshot commit that lost a race by re-basing it on the new
    current snapshot, keeping the rest of the transaction. mpp's statistics and integrity
    record in that transaction describe the snapshot it was computed on, so a re-based commit
    would store figures that are wrong: the statement must fail (and may be run again). The
    retry count is read from the table object the transaction starts from; only that copy
    carries ``commit.retry.num-retries = 0``, the stored table's properties are unchanged.
    """
    metadata = table.metadata.model_copy(
        update={"properties": {**table.metadata.properties, "commit.retry.num-retries": "0"}})
    return Table(table.name(), metadata, table.metadata_location, table.io, table.catalog)


def commit_files(table: Table, written: Sequence[WrittenFragment], properties: dict[str, str],
                 footers: Mapping[str, str | None], deleted: Set[str] = frozenset(), *,
                 snapshot_properties: Mapping[str, str] | None = None) -> Table:
    """Add ``written`` to ``table`` (as loaded when the write began) and remove the data files
    whose paths are in ``deleted``, in ONE snapshot.

    One transaction: a fast append (nothing deleted) or an overwrite (``update_snapshot().
    overwrite()`` with the deleted and added data files), the new ``mpp.*`` properties, and
    the integrity record over every file of the new snapshot. ``footers``: the footer digests
    of the table's current files. ``snapshot_properties`` go into the new snapshot's summary
    (pyiceberg's ``snapshot_properties``). A commit by anyone else since ``table`` was loaded fails it
    (pyiceberg's CommitFailedException): nothing is half-applied. Removed files stay on disk:
    older snapshots still list them.
    """
    schema, spec = table.schema(), table.spec()
    current = [task.file for task in table.scan().plan_files()]
    files = [_data_file(w, schema, spec, dict(table.properties))
             for w in sorted(written, key=lambda w: w.fragment.index)]
    removed = [f for f in current if f.file_path in deleted]
    digests = {**footers, **{w.fragment.uri: w.fragment.option(FOOTER_DIGEST) for w in written}}
    txn = without_retries(table).transaction()
    update = txn.update_snapshot(snapshot_properties=dict(snapshot_properties or {}))
    if removed:
        with update.overwrite() as overwrite:
            for f in removed:
                overwrite.delete_data_file(f)
            for f in files:
                overwrite.append_data_file(f)
    else:
        with update.fast_append() as append:
            for f in files:
                append.append_data_file(f)
    txn.set_properties(properties)  # before the record: it digests the mpp.* properties
    kept = [f for f in current if f.file_path not in deleted]
    txn.set_properties({PROP_INTEGRITY: integrity_record(txn.table_metadata, kept + files,
                                                         digests)})
    return txn.commit_transaction()


def commit_schema(table: Table, update: Callable[[UpdateSchema], None],
                  properties: dict[str, str], footers: Mapping[str, str | None]) -> Table:
    """Evolve the schema of ``table`` (as loaded) in ONE metadata commit: ``update`` stages the
    change on pyiceberg's UpdateSchema, ``properties`` (mpp's Arrow schema and statistics of
    the new columns) and the integrity record (its schema id and digest) go in the same
    transaction. No snapshot: the data files are the same. A commit by anyone else since
    ``table`` was loaded fails it (CommitFailedException) and nothing is applied."""
    files = [task.file for task in table.scan().plan_files()]
    txn = without_retries(table).transaction()
    with txn.update_schema() as change:
        update(change)
    txn.set_properties(properties)  # before the record: it digests the mpp.* properties
    txn.set_properties({PROP_INTEGRITY: integrity_record(txn.table_metadata, files, footers)})
    return txn.commit_transaction()


def iceberg_type(type_: pa.DataType) -> Any:
    """The Iceberg type mpp stores an Arrow column of ``type_`` as (as CREATE TABLE does)."""
    return iceberg_schema(pa.schema([("c", type_)])).fields[0].field_type


def decode_bound(type_: Any, raw: bytes | None) -> Any:
    """A manifest bound as a Python value of the column's Arrow-side type."""
    if raw is None:
        return None
    value: Any = from_bytes(type_, raw)
    if isinstance(type_, DateType):
        return dt.date(1970, 1, 1) + dt.timedelta(days=value)
    if isinstance(type_, (TimestampType, TimestamptzType)):
        return _EPOCH + dt.timedelta(microseconds=value)
    return value


def arrow_types(schema: Schema, arrow: pa.Schema | None) -> dict[int, pa.DataType]:
    """mpp's exact Arrow type of each column of ``schema`` (the current Iceberg schema), by
    field id, from ``arrow`` (the ``mpp.arrow-schema`` property: Iceberg has no 8- or 16-bit
    integers, for one); empty without it."""
    if arrow is None:
        return {}
    return {f.field_id: arrow.field(f.name).type for f in schema.fields
            if arrow.get_field_index(f.name) >= 0}


def read_schema(schema: Schema, types: Mapping[int, pa.DataType]) -> pa.Schema:
    """The Arrow schema a data file is read with when the table's schema has evolved: the
    columns of ``schema`` (the snapshot's Iceberg schema) with their field ids, so the reader
    finds each column in a file by id, not by name (Iceberg's rule: a renamed column keeps its
    id, a column added later is in no older file and reads as NULL). ``types``: mpp's exact
    Arrow types by field id (:func:`arrow_types`); other columns take Iceberg's mapping."""
    plain = schema_to_pyarrow(schema, include_field_ids=False)
    fields = [pa.field(f.name, types.get(f.field_id, plain.field(f.name).type))
              for f in schema.fields]
    return with_field_ids(pa.schema(fields), {f.name: f.field_id for f in schema.fields})


def _field_ids(field: Any) -> list[int]:
    """The field id of ``field`` and of every field nested in it (a list's element, a map's
    key and value, a struct's fields): Parquet stores a nested column as its leaves."""
    out = [field.field_id]
    kind = field.field_type
    for sub in (getattr(kind, "fields", None) or
                [getattr(kind, a) for a in ("element_field", "key_field", "value_field")
                 if hasattr(kind, a)]):
        out += _field_ids(sub)
    return out


def _to_fragment(index: int, data_file: DataFile, schema: Schema, spec: PartitionSpec,
                 options: tuple[tuple[str, Any], ...] = ()) -> Fragment:
    lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
    bounds = []
    for field in schema.fields:
        if field.field_id in lower and field.field_id in upper:
            bounds.append((field.name, decode_bound(field.field_type, lower[field.field_id]),
                           decode_bound(field.field_type, upper[field.field_id])))
    partition = []
    for pos, pf in enumerate(spec.fields):
        if not isinstance(pf.transform, IdentityTransform):
            continue  # a bucket/day/... value is not the column's value: no constant to use
        source = schema.find_field(pf.source_id)
        value = data_file.partition[pos]
        if isinstance(source.field_type, DateType) and isinstance(value, int):
            value = dt.date(1970, 1, 1) + dt.timedelta(days=value)
        partition.append((source.name, value))
    sizes = data_file.column_sizes or {}
    columns = tuple((f.name, sum(int(sizes.get(i, 0)) for i in _field_ids(f)))
                    for f in schema.fields if any(i in sizes for i in _field_ids(f)))
    if columns:  # what a scan of some columns reads: the planner packs scan tasks by it
        options += ((COLUMN_BYTES, columns),)
    return Fragment(uri=data_file.file_path, format=StorageFormat.PARQUET, index=index,
                    row_count=data_file.record_count, size_bytes=data_file.file_size_in_bytes,
                    partition=tuple(partition), bounds=tuple(bounds), options=options)


def _sort_key(path: str) -> tuple[str, str]:
    # Files are named part-<index>-<write id>: ordering by name is write order (time order).
    base = path.rsplit("/", 1)[-1]
    return base, path


def all_fragments(table: Table, files: Sequence[DataFile] | None = None,
                  footers: Mapping[str, str] | None = None, *,
                  schema: Schema | None = None, arrow: pa.Schema | None = None) -> list[Fragment]:
    """Every data file of the current snapshot, in stable (name = write) order.

    ``files``: the snapshot's data files when the caller has read them already (the checked
    load of :mod:`mpp.catalog.integrity`); None plans a scan. ``footers``: the Parquet footer
    digests recorded at commit, by path, which the scan verifies. ``schema``: the schema the
    files are read with (an older snapshot's, for time travel; default the current one).
    ``arrow``: mpp's Arrow schema of the current columns. Once the table's schema has evolved
    (ALTER TABLE ... ADD / RENAME / DROP COLUMN), every fragment carries the schema it is read
    with (:func:`read_schema`): files are then read by field id.
    """
    if files is None:
        files = [task.file for task in table.scan().plan_files()]
    files = sorted(files, key=lambda f: _sort_key(f.file_path))
    schema = schema or table.schema()
    specs, spec = table.specs(), table.spec()
    footers = footers or {}
    evolved: tuple[tuple[str, Any], ...] = ()
    if len(table.metadata.schemas) > 1:
        evolved = ((READ_SCHEMA, read_schema(schema, arrow_types(table.schema(), arrow))),)
    return [_to_fragment(i, f, schema, specs.get(f.spec_id, spec),
                         ((FOOTER_DIGEST, footers[f.file_path]),) + evolved
                         if f.file_path in footers else evolved)
            for i, f in enumerate(files)]


def _iceberg_term(p: ColumnPredicate) -> ie.BooleanExpression:
    value = p.value
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    elif isinstance(value, dt.date):
        value = value.isoformat()
    ops = {"=": ie.EqualTo, "!=": ie.NotEqualTo, "<": ie.LessThan, "<=": ie.LessThanOrEqual,
           ">": ie.GreaterThan, ">=": ie.GreaterThanOrEqual}
    if p.op in ops:
        return ops[p.op](p.column, value)
    # pyiceberg's expression classes take (term, ...) positionally at run time; their
    # pydantic-style signatures confuse type checkers.
    if p.op == "in":
        values = tuple(v.isoformat() if isinstance(v, dt.date) else v for v in p.value)
        return ie.In(p.column, values)  # type: ignore[call-arg, arg-type]
    if p.op == "is_null":
        return ie.IsNull(p.column)  # type: ignore[call-arg, arg-type]
    return ie.NotNull(p.column)  # type: ignore[call-arg, arg-type]


_PLAN_TERMS = 64


def planned_paths(table: Table, predicates: Sequence[ColumnPredicate],
                  snapshot_id: int | None = None) -> set[str] | None:
    """Paths of the data files Iceberg's scan plan keeps for ``predicates`` (None: no plan),
    in snapshot ``snapshot_id`` (default the current one)."""
    if not predicates:
        return None
    try:
        # Balanced: pyiceberg's visitors recurse once per level of a chain of Ands. At most
        # _PLAN_TERMS of them: pruning with fewer conjuncts keeps a superset of the files
        # (scans still apply all), and pyiceberg evaluates each one per manifest entry.
        terms = [_iceberg_term(p) for p in predicates[:_PLAN_TERMS]]
        expr = balanced(terms, ie.And)
        scan = table.scan(row_filter=expr, snapshot_id=snapshot_id)
        return {task.file.file_path for task in scan.plan_files()}
    except (ValueError, TypeError):
        return None  # a literal Iceberg cannot bind (e.g. float against int): prune with bounds
