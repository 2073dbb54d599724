"""Comparing and fingerprinting result rows: order-insensitive, dtype widths normalised.

The runner checks every variant's rows against DuckDB's and records a checksum of each result,
so two runs of one scenario can be shown to return the same rows. pandas and dask disagree on
string dtypes, so everything here works on Arrow tables.
"""

from __future__ import annotations

import hashlib
import math

import pyarrow as pa
import pyarrow.compute as pc

# Floats are rounded to this many decimals in a checksum: a sum's last bits depend on the
# order partial results were combined in, which is not part of a query's meaning.
CHECKSUM_DECIMALS = 6


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.large_string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us")
    if pa.types.is_date(t):
        return pa.date32()
    return t


def normalise(table: pa.Table) -> pa.Table:
    """Canonical column types, columns renamed c0..cN, rows sorted by every column."""
    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(pc.cast(col, _canonical_type(col.type)))
    names = [f"c{i}" for i in range(len(cols))]
    out = pa.table(cols, names=names) if cols else table
    if out.num_rows and names:
        out = out.sort_by([(n, "ascending") for n in names])
    return out


def values_close(a: object, b: object, rel: float) -> bool:
    """Equal, or for floats close within ``rel`` (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def difference(actual: pa.Table, expected: pa.Table, *, rel: float = 1e-9) -> str | None:
    """None when both hold the same multiset of rows; otherwise the first difference, in words."""
    if actual.num_columns != expected.num_columns:
        return f"{actual.num_columns} columns, DuckDB has {expected.num_columns}"
    if actual.num_rows != expected.num_rows:
        return (f"{actual.num_rows:,} rows, DuckDB has {expected.num_rows:,} "
                f"(off by {abs(actual.num_rows - expected.num_rows):,})")
    a, e = normalise(actual).to_pylist(), normalise(expected).to_pylist()
    bad = [i for i, (ra, re_) in enumerate(zip(a, e, strict=True))
           if not all(values_close(ra[k], re_[k], rel) for k in ra)]
    if not bad:
        return None
    i = bad[0]
    return (f"{len(bad):,} of {len(a):,} rows differ; first (sorted order): "
            f"mpp {tuple(a[i].values())} vs DuckDB {tuple(e[i].values())}")


def checksum(table: pa.Table) -> str:
    """A fingerprint of the rows, independent of their order and of dtype widths."""
    t = normalise(table)
    cols = [pc.round(c, CHECKSUM_DECIMALS) if pa.types.is_floating(c.type) else c
            for c in t.columns]
    h = hashlib.sha256(",".join(t.column_names).encode())
    for col in cols:
        text = pc.fill_null(col.cast(pa.large_string()), "\x00NULL")
        h.update("\x1f".join(text.to_pylist()).encode() + b"\x1e")
    return h.hexdigest()[:16]
