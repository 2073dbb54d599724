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

