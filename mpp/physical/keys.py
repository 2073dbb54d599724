"""Key normalisation: the one place where float key values get SQL's equality before hashing.

Arrow's hash kernels (``group_by``, ``unique``, ``count_distinct``, the hash join) compare
floating point keys bit for bit: ``-0.0`` and ``0.0`` become two groups and do not join, and
NaNs with different payloads become several groups. SQL compares them as numbers: Trino (and
DuckDB) group ``-0.0`` with ``0.0``, and Trino groups and de-duplicates all NaNs together
while a NaN join key matches nothing (``NaN = NaN`` is false; DuckDB's join matches it).

Every kernel that hashes, groups, de-duplicates or joins on keys passes them through
:func:`canonical_key` first. Non-float keys are returned as they are, at no cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _is_float(t: pa.DataType) -> bool:
    return bool(pa.types.is_floating(t))


def canonical_key(column: Any, *, nan_matches: bool = True) -> Any:
    """``column`` (an Array or ChunkedArray) with float values made hash-equal where SQL calls
    them equal: ``-0.0`` becomes ``0.0``, every NaN the one canonical NaN.

    ``nan_matches=False`` (join keys) turns NaN into NULL instead, so it matches nothing, as
    Trino's ``=`` does; the caller keeps the original column for the output.

    >>> canonical_key(pa.array([-0.0, 1.5])).to_pylist()
    [0.0, 1.5]
    """
    t = column.type
    if not _is_float(t):
        return column
    # IEEE addition: -0.0 + 0.0 is 0.0, every other value (NaN included) is unchanged.
    out = pc.add(column, pa.scalar(0.0, t))
    nans = pc.is_nan(out)
    if not pc.any(nans).as_py():
        return out
    replacement = pa.scalar(float("nan") if nan_matches else None, t)
    return pc.if_else(nans, replacement, out)


def canonical_keys(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """``table`` with its float ``keys`` columns passed through :func:`canonical_key`
    (grouping semantics: NaNs are one group). The same table when no key is a float."""
    for name in dict.fromkeys(keys):
        i = table.schema.get_field_index(name)
        if i >= 0 and _is_float(table.schema.field(i).type):
            table = table.set_column(i, name, canonical_key(table.column(i)))
    return table



def is_numeric_key(t: pa.DataType) -> bool:
    """Whether :func:`key_numbers` takes a key of type ``t`` (a dictionary by its values)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t)
                or pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_timestamp(t))


def key_numbers(column: pa.ChunkedArray | pa.Array, *,
                nan_matches: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric key column as numpy numbers that are equal where SQL calls the keys equal:
    int64 for integers, booleans, dates (days) and timestamps (microseconds, whatever the
    unit), float64 for floats and decimals after :func:`canonical_key` (``nan_matches`` as
    there); NULLs filled with 0, and which rows are not NULL (None: no NULL).

    The exchange hashes these into buckets and a join table keys on them, so both read a key
    the same way. Only for :func:`is_numeric_key` types (text keys have their own paths).
    """
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        values = pc.cast(column, pa.int64())
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = canonical_key(pc.cast(column, pa.float64()), nan_matches=nan_matches)
    elif pa.types.is_date(t):
        values = pc.cast(pc.cast(pc.cast(column, pa.date32()), pa.int32()), pa.int64())
    elif pa.types.is_timestamp(t):
        values = pc.cast(pc.cast(column, pa.timestamp("us", tz=t.tz)), pa.int64())
    else:
        raise TypeError(f"not a numeric key type: {t}")  # pragma: no cover - a caller's bug
    valid = None
    if values.null_count:
        valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False))
        values = values.fill_null(pa.scalar(0, values.type))
    return np.asarray(values.to_numpy()), valid
