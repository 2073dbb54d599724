"""The text ``mpp catalog -w DIR`` prints: every table with its format, partitions, snapshots
and statistics (the figures the planner will use)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mpp.catalog.external import PROP_DECLARED_TYPES
from mpp.errors import DamagedMetadataError
from mpp.text import human_bytes

if TYPE_CHECKING:
    from mpp.catalog import Catalog


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 26 else text[:23] + "..."


def describe(catalog: Catalog) -> str:
    """Multi-line description of every table in ``catalog``.

    A table whose metadata is damaged is listed as DAMAGED with the reason; the others are
    described as usual (see :func:`damaged_tables`).
    """
    names = catalog.tables()
    lines = [f"warehouse {catalog.warehouse}: {len(names)} table(s)"]
    for name in names:
        try:
            info = catalog.table(name)
        except DamagedMetadataError as exc:
            lines += ["", f"{name}  [DAMAGED]  {exc}"]
            continue
        s = info.stats
        kind = "external" if info.external else "iceberg"
        parts = ", ".join(info.partition_columns) or "none"
        if info.partition_columns:
            values = {f.partition for f in catalog.fragments(name)}
            parts += f" ({len(values):,} partitions)"
        lines.append("")
        lines.append(f"{name}  [{info.format.value}, {kind}]  {info.location}")
        lines.append(f"  rows {s.row_count:,}  fragments {s.fragment_count:,}  "
                     f"size {human_bytes(s.total_bytes)}  partitioned by: {parts}")
        checksum = catalog.properties(name).get("mpp.content-checksum")
        if checksum:
            lines.append(f"  content checksum {checksum}")
        for snap in catalog.snapshots(name):
            when = snap["timestamp"].isoformat(timespec="seconds") if snap["timestamp"] else "?"
            sid = snap["snapshot_id"] if snap["snapshot_id"] is not None else "-"
            lines.append(f"  snapshot {sid}  {when}  {snap['operation']}")
        lines.append(f"  {'column':<12} {'type':<14} {'min':<27} {'max':<27} {'distinct':>10}"
                     f"  top values")
        declared = json.loads(catalog.properties(name).get(PROP_DECLARED_TYPES, "{}"))
        for field in info.schema:
            c = s.column(field.name)
            top = ", ".join(f"{_short(v)} ({n:,})" for v, n in c.top_values[:3])
            ndv = f"~{c.distinct_count:,}" if c.distinct_count is not None else "?"
            shown = (f"decimal({field.type.precision},{field.type.scale})"  # fits the column
                     if pa.types.is_decimal(field.type) else str(field.type))
            type_ = shown + ("*" if field.name in declared else "")
            lines.append(f"  {field.name:<12} {type_:<14} {_short(c.min):<27} "
                         f"{_short(c.max):<27} {ndv:>10}  {top}")
        lines += _declared_notes(declared, info.schema)
    return "\n".join(lines)


def _declared_notes(declared: dict[str, str], schema: Any) -> list[str]:
    """One line per source type stored as another type: ``* decimal256(40, 2) stored as
    double (more than 38 digits): amount``."""
    by_type: dict[tuple[str, str], list[str]] = {}
    for column, source in declared.items():
        if schema.get_field_index(column) >= 0:
            by_type.setdefault((source, str(schema.field(column).type)), []).append(column)
    out = []
    for (source, stored), columns in by_type.items():
        why = " (more than 38 digits)" if source.startswith("decimal") else ""
        out.append(f"  * {source} stored as {stored}{why}: {', '.join(columns)}")
    return out


def damaged_tables(catalog: Catalog) -> list[DamagedMetadataError]:
    """The error of every table whose metadata is damaged (empty: all tables are readable)."""
    out = []
    for name in catalog.tables():
        try:
            catalog.table(name)
        except DamagedMetadataError as exc:
            out.append(exc)
    return out
