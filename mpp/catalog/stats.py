"""Statistics Iceberg does not keep: distinct estimates and top values, built from partials.

Each write task summarises its own fragment (:func:`fragment_partials`); the one commit merges
the partials (:func:`merge_partials`), so nothing re-reads the data. Distinct counts use a KMV
sketch ("k minimum values"): keep the k smallest distinct 64-bit hashes; the union of sketches
is the k smallest of the union, and ``(k - 1) / kth_smallest_hash_fraction`` estimates the
distinct count (exact while fewer than k distinct values were seen). Top values merge per-task
value counts (each task keeps its top ``TOP_PER_TASK``), which is exact for columns whose values
cluster per fragment (``date``) and a close approximation for heavy hitters (Zipf ``user_id``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mpp.catalog.model import ColumnStats, TableStats

KMV_K = 1024  # relative error of the estimate ~ 1/sqrt(k) = 3%
TOP_PER_TASK = 32
TOP_KEPT = 10
_HASH_SPACE = float(2**64)


@dataclass(frozen=True, slots=True)
class ColumnPartial:
    """One fragment's summary of one column."""

    min: Any
    max: Any
    null_count: int
    sketch: np.ndarray  # sorted uint64, the KMV_K smallest distinct hashes
    top: tuple[tuple[Any, int], ...] = ()


@dataclass(frozen=True, slots=True)
class FragmentPartials:
    """One fragment's row count plus its per-column summaries."""

    rows: int
    columns: dict[str, ColumnPartial] = field(default_factory=dict)


def _hashes(values: pa.Array) -> np.ndarray:
    """Stable 64-bit hashes of ``values`` (one per value; nulls must be dropped first)."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = values.cast(pa.int64() if pa.types.is_timestamp(values.type) else pa.int32())
    return pd.util.hash_array(np.asarray(values.to_numpy(zero_copy_only=False)))


def _sorted_distinct(a: np.ndarray) -> np.ndarray:
    """``a`` sorted without repeats (np.unique's hash path costs ~7 ms even on small arrays)."""
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def _sketch(values: pa.Array, distinct: pa.Array | None = None) -> np.ndarray:
    """The KMV_K smallest distinct hashes of ``values``, sorted.

    Fast path: the distinct values among the KMV_K + 1 smallest hashes are a correct prefix of
    the distinct hashes in order; when they are at least KMV_K (columns with few repeats) that
    is the sketch. Otherwise (many repeats, so few distinct values) hash the distinct values
    (``distinct`` if the caller has them already).
    """
    hashes = _hashes(values)
    if len(hashes) > KMV_K + 1:
        head = _sorted_distinct(np.partition(hashes, KMV_K)[: KMV_K + 1])
        if len(head) >= KMV_K:
            return head[:KMV_K]
        hashes = _hashes(distinct if distinct is not None else pc.unique(values))
    return _sorted_distinct(hashes)[:KMV_K]


def column_partial(column: pa.ChunkedArray | pa.Array, with_top: bool) -> ColumnPartial:
    """Summarise one column of one fragment."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    minmax = pc.min_max(column)
    values = column.drop_null() if column.null_count else column
    top: tuple[tuple[Any, int], ...] = ()
    counts = None
    if with_top and len(values):
        counts = pa.Table.from_struct_array(pc.value_counts(values))
        picked = counts.take(pc.select_k_unstable(counts, TOP_PER_TASK, [("counts", "descending")]))
        top = tuple(zip(picked["values"].to_pylist(), picked["counts"].to_pylist(), strict=True))
    distinct = counts["values"].combine_chunks() if counts is not None else None
    return ColumnPartial(min=minmax["min"].as_py(), max=minmax["max"].as_py(),
                         null_count=column.null_count, sketch=_sketch(values, distinct), top=top)


def fragment_partials(table: pa.Table, top_columns: Sequence[str] = ()) -> FragmentPartials:
    """Summaries of every column of a fragment; top values for ``top_columns``."""
    return FragmentPartials(
        rows=table.num_rows,
        columns={name: column_partial(table.column(name), name in top_columns)
                 for name in table.column_names},
    )


def _kmv_estimate(hashes: np.ndarray) -> int:
    if len(hashes) < KMV_K:
        return len(hashes)  # saw every distinct value
    kth = (float(hashes[KMV_K - 1]) + 1.0) / _HASH_SPACE
    return round((KMV_K - 1) / kth)


def _merge_column(parts: list[ColumnPartial]) -> ColumnStats:
    mins = [p.min for p in parts if p.min is not None]
    maxs = [p.max for p in parts if p.max is not None]
    sketch = (_sorted_distinct(np.concatenate([p.sketch for p in parts]))[:KMV_K] if parts
              else np.empty(0, np.uint64))
    top: Counter[Any] = Counter()
    for p in parts:
        for value, n in p.top:
            top[value] += n
    return ColumnStats(
        min=min(mins) if mins else None, max=max(maxs) if maxs else None,
        null_count=sum(p.null_count for p in parts), distinct_count=_kmv_estimate(sketch),
        top_values=tuple(top.most_common(TOP_KEPT)),
        fragment_distinct=(sum(_kmv_estimate(p.sketch) for p in parts) / len(parts)
                           if parts else None),
    )


def merge_partials(partials: Iterable[FragmentPartials], total_bytes: int) -> TableStats:
    """Table statistics from every fragment's partials (in any order)."""
    parts = list(partials)
    names: list[str] = list(dict.fromkeys(n for p in parts for n in p.columns))
    return TableStats(
        row_count=sum(p.rows for p in parts),
        total_bytes=total_bytes,
        fragment_count=len(parts),
        columns={n: _merge_column([p.columns[n] for p in parts if n in p.columns]) for n in names},
    )


def _disjoint(a: ColumnStats, b: ColumnStats) -> bool:
    """True when the value ranges of ``a`` and ``b`` are known and do not overlap."""
    try:
        return bool(a.max < b.min or b.max < a.min)
    except TypeError:  # a bound unknown (None) or of another type
        return False


def _append_column(a: ColumnStats, b: ColumnStats, fa: int, fb: int) -> ColumnStats:
    """One column's statistics after rows summarised by ``b`` are appended to ``a``'s."""
    def pick(f: Any, x: Any, y: Any) -> Any:
        return x if y is None else y if x is None else f(x, y)

    if a.distinct_count is None or b.distinct_count is None:
        distinct = None
    elif _disjoint(a, b):  # no value in common (a new day, new ids): the counts add up
        distinct = a.distinct_count + b.distinct_count
    else:  # overlapping ranges: assume the same domain (the larger count), the usual case
        distinct = max(a.distinct_count, b.distinct_count)
    top: Counter[Any] = Counter(dict(a.top_values))
    top.update(dict(b.top_values))
    frag = (None if a.fragment_distinct is None or b.fragment_distinct is None or fa + fb == 0
            else (a.fragment_distinct * fa + b.fragment_distinct * fb) / (fa + fb))
    return ColumnStats(
        min=pick(min, a.min, b.min), max=pick(max, a.max, b.max),
        null_count=None if a.null_count is None or b.null_count is None
        else a.null_count + b.null_count,
        distinct_count=distinct, top_values=tuple(top.most_common(TOP_KEPT)),
        fragment_distinct=frag)


def append_stats(old: TableStats, new: TableStats) -> TableStats:
    """Statistics of a table after an append of files summarised by ``new``.

    Counts and bounds are exact; top values add up. Distinct counts cannot be unioned without
    the old sketches: disjoint value ranges add up, overlapping ones keep the larger count (an
    estimate, as the KMV count already is)."""
    if old.row_count == 0:  # nothing to combine (an empty table has no column figures)
        return TableStats(new.row_count, old.total_bytes + new.total_bytes,
                          old.fragment_count + new.fragment_count, dict(new.columns))
    if new.row_count == 0:
        return TableStats(old.row_count, old.total_bytes + new.total_bytes,
                          old.fragment_count + new.fragment_count, dict(old.columns))
    names = list(dict.fromkeys([*old.columns, *new.columns]))
    return TableStats(
        row_count=old.row_count + new.row_count,
        total_bytes=old.total_bytes + new.total_bytes,
        fragment_count=old.fragment_count + new.fragment_count,
        columns={n: _append_column(old.column(n), new.column(n), old.fragment_count,
                                   new.fragment_count) for n in names},
    )
