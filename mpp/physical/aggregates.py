"""The two-phase hash aggregation kernels built from the aggregate functions' specs.

Each function is an :class:`~mpp.physical.aggspecs.AggSpec` (:mod:`mpp.physical.aggspecs`):
how its state columns are made from input rows (``chunk``), merged across tasks (``combine``)
and turned into the result (``finalize``).

``count(DISTINCT x)`` (and ``f(DISTINCT x)`` for every one-argument ``f``) is planned as the
seed's efficient query: the partial phase keeps the distinct ``(group, x)`` pairs (other
aggregates are computed at that finer grain), the exchange hashes on the group keys only, and
the final phase merges pairs and then rolls up to the group, applying ``f``'s chunk and
finalize to the now distinct ``x``.

Partial columns are named ``__p<i>_<j>`` (aggregate i, partial j).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import AggFunc, AggregateCall
from mpp.logical.nodes import Field
from mpp.physical.aggspecs import AGGREGATES, GroupFn, Step, group_ids, step_types
from mpp.physical.keys import canonical_key, canonical_keys
from mpp.physical.overflow import SumOverflow, overflow_checks, raise_on_overflow
from mpp.storage.base import constant_column

# Tables received through an exchange may have buffers at unaligned offsets; Acero (pyarrow's
# group_by/join engine) warns once per table but handles them correctly on x86 and arm64.
os.environ.setdefault("ACERO_ALIGNMENT_HANDLING", "ignore")


# Roll-up functions that ignore duplicate values: with only these, the final phase need not
# first merge the (group, x) pairs of different tasks (AggSpec.idempotent).


_BUILD_ROW = "__mpp_build_row"


def _pname(i: int, j: int) -> str:
    return f"__p{i}_{j}"


def constant_keys(table: pa.Table, keys: Sequence[str]) -> dict[str, pa.Scalar]:
    """The ``keys`` whose column holds one non-null value in every row of ``table``.

    A fragment of a table partitioned by ``date`` has one date: grouping by it hashes a
    column that cannot split any group. Checked with one min/max pass per key (integer,
    temporal, string and boolean keys; floats are left alone, as -0.0 and 0.0 compare equal).
    """
    if table.num_rows < 2:
        return {}
    out: dict[str, pa.Scalar] = {}
    for k in keys:
        col = table[k]
        t = col.type
        if col.null_count or not (pa.types.is_integer(t) or pa.types.is_temporal(t)
                                  or pa.types.is_string(t) or pa.types.is_large_string(t)
                                  or pa.types.is_boolean(t)):
            continue
        if not col[0].equals(col[-1]):  # most varying keys fail here, without a pass
            continue
        mm = pc.min_max(col)
        if mm["min"].equals(mm["max"]):
            out[k] = mm["min"]
    return out


# Direct addressing (DuckDB's "perfect hash" aggregation): integer key values spanning at most
# this many slots per row are de-duplicated by marking a bitmap indexed by value - min, with no
# hash table. On 100K values the bitmap costs 0.2 ms at 1 slot a row and 0.65 ms at 8, where
# pc.unique costs 1-4 ms; a fragment's user ids (1..100K): 0.3 ms instead of 1.1 ms.
DIRECT_SLOTS_PER_ROW = 8
DIRECT_MIN_ROWS = 256  # below this, the hash kernel's fixed cost is smaller


def _direct_storage(t: pa.DataType) -> pa.DataType | None:
    """The signed integer type holding ``t``'s values, if direct addressing can take it."""
    if pa.types.is_signed_integer(t):
        return t
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t) \
            or pa.types.is_duration(t):
        return pa.int32() if t.bit_width == 32 else pa.int64()
    return None


def _direct_distinct(columns: Sequence[pa.ChunkedArray], names: Sequence[str]) -> pa.Table | None:
    """The distinct rows of ``columns`` by direct addressing, in ascending order of the keys;
    None when a column is not integer-like or the keys' combined span is too wide.

    The code of a row is its keys' offsets from their minimums in mixed radix (the spans), so
    several keys share one bitmap. NULL is one value of a single key; with several keys, any
    NULL declines (the hash kernel handles it).
    """
    n = len(columns[0]) - (columns[0].null_count if len(columns) == 1 else 0)
    found_storages = [_direct_storage(c.type) for c in columns]
    storages = [st for st in found_storages if st is not None]
    if n < DIRECT_MIN_ROWS or len(storages) < len(columns) or (
            len(columns) > 1 and any(c.null_count for c in columns)):
        return None
    ints = [pa.chunked_array([c.view(st) for c in col.chunks], st)
            for col, st in zip(columns, storages, strict=True)]
    los, spans = [], []
    total = 1
    for col in ints:
        bounds = pc.min_max(col)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        los.append(lo)
        spans.append(hi - lo + 1)
        total *= hi - lo + 1
        if total > DIRECT_SLOTS_PER_ROW * n:
            return None
    seen = np.zeros(total, dtype=np.bool_)
    if len(ints) == 1:  # chunk by chunk, no concatenation
        for chunk in ints[0].chunks:
            chunk = chunk.drop_null() if chunk.null_count else chunk
            seen[chunk.to_numpy().astype(np.int64, copy=False) - los[0]] = True
    else:
        code: np.ndarray[Any, np.dtype[np.int64]] | None = None
        stride = 1
        for col, lo, span in zip(reversed(ints), reversed(los), reversed(spans), strict=True):
            part = col.to_numpy().astype(np.int64)  # a copy, so the arithmetic is in place
            part -= lo
            if stride > 1:
                part *= stride
            code = part if code is None else np.add(code, part, out=code)
            stride *= span
        seen[code] = True
    found = np.flatnonzero(seen)
    out = []
    stride = total
    for col, st, lo, span in zip(columns, storages, los, spans, strict=True):
        stride //= span
        vals = ((found // stride) % span + lo).astype(st.to_pandas_dtype(), copy=False)
        arr = pa.array(vals, type=st).view(col.type)
        if col.null_count:  # a single key's NULL group, last
            arr = pa.concat_arrays([arr, pa.nulls(1, col.type)])
        out.append(arr)
    return pa.table(out, names=list(names))


def distinct_values(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The distinct values of ``values`` (NULL counts as one value, as in GROUP BY).

    Integer and temporal values within a short range (at most ``DIRECT_SLOTS_PER_ROW`` x
    their count between min and max) are found by direct addressing, in ascending order;
    anything else by ``pc.unique`` (a hash table), in first-seen order.
    """
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    chunked = canonical_key(chunked)  # -0.0 is 0.0, NaNs are one value
    direct = _direct_distinct([chunked], ["v"])
    return direct.column(0).combine_chunks() if direct is not None else pc.unique(chunked)


def distinct_rows(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The distinct combinations of ``keys`` in ``table`` (the columns ``keys``, in order).

    Direct addressing when every key is integer-like and their combined span is short (see
    :func:`distinct_values`), else pyarrow's hash kernels (``pc.unique``, Acero's group_by).
    """
    keys = list(keys)
    table = canonical_keys(table, keys)  # -0.0 is 0.0, NaNs are one value
    direct = _direct_distinct([table[k] for k in keys], keys)
    if direct is not None:
        return direct
    if len(keys) == 1:
        return pa.table({keys[0]: pc.unique(table[keys[0]])})
    return table.group_by(keys, use_threads=False).aggregate([]).select(keys)


Grouped = tuple[list[str], GroupFn, list[str]]  # (input columns, step, output names)


def _aggregate(table: pa.Table, keys: list[str], specs: Sequence[tuple[Any, Any, str]],
               fixed: Mapping[str, pa.Scalar] | None = None,
               grouped: Sequence[Grouped] = ()) -> pa.Table:
    """Group ``table`` by ``keys`` computing ``(column, function, output name)`` each
    (``function``: a pyarrow hash function's name, or (name, options)), and each ``grouped``
    step (a :class:`GroupFn` over dense group ids).

    Keys constant over ``table`` are left out of the hash (see :func:`constant_keys`) and put
    back as constant columns; a DISTINCT (no aggregates) is :func:`distinct_rows`.
    """
    if fixed is None:
        fixed = constant_keys(table, keys)
    varying = [k for k in keys if k not in fixed]
    table = canonical_keys(table, varying)  # -0.0 groups with 0.0, NaNs in one group
    specs = list(specs)
    gid_name = "__mpp_gid"
    if grouped:
        gid, groups = group_ids(table, varying)
        table = table.append_column(gid_name, pa.array(gid))
        specs.append((gid_name, "min", gid_name))
    if not specs and varying:
        out = distinct_rows(table, varying)
        checks: list[tuple[int, str]] = []
    else:
        aggs = [(col, fn) if isinstance(fn, str) else (col, *fn) for col, fn, _ in specs]
        table, checks = overflow_checks(table, specs)
        aggs += [(shadow, "sum") for _, shadow in checks]
        out = table.group_by(varying, use_threads=False).aggregate(aggs)
    # Results are picked by position: two calls may share an output name (sum(x) and the sum
    # inside avg(x)). pyarrow puts the key columns first (older releases: last).
    k, m = len(varying), len(specs) + len(checks)
    first = out.column_names[:k] == varying
    key_cols = dict(zip(varying, (out.column(i) for i in (range(k) if first else range(m, m + k))),
                        strict=True))
    agg_cols = [out.column(i) for i in (range(k, k + m) if first else range(m))]
    for (i, _), shadow in zip(checks, agg_cols[len(specs):], strict=True):
        raise_on_overflow(agg_cols[i], shadow, specs[i][2])
    cols = [key_cols[key] if key in key_cols else constant_column(fixed[key], out.num_rows)
            for key in keys]
    names = keys + [name for _, _, name in specs]
    cols += agg_cols[:len(specs)]
    if grouped:
        # Each group's row of ``out`` carries its group id: the GroupFn results are taken by it.
        at = cols.pop()
        names.pop()
        for inputs, step, outputs in grouped:
            values = step.fn(gid, groups, [table[c] for c in inputs])
            cols += [pc.take(v, at) for v in values]
            names += outputs
    return pa.table(cols, names=names)


def _split(step: Step, inputs: Sequence[str], outputs: Sequence[str], *, per_column: bool
           ) -> tuple[list[tuple[Any, Any, str]], list[Grouped]]:
    """``step`` as :func:`_aggregate`'s specs and grouped steps. ``per_column``: a pyarrow
    step applies function j to input j (combine), else each to the first input (chunk;
    none for count(*))."""
    if isinstance(step, GroupFn):
        return [], [(list(inputs), step, list(outputs))]
    specs = [((inputs[j] if per_column else inputs[0]) if inputs else [], fn, outputs[j])
             for j, fn in enumerate(step)]
    return specs, []


@dataclass(frozen=True, slots=True)
class AggregateKernel:
    """The partial, merge and final steps of one Aggregate node."""

    keys: tuple[str, ...]
    calls: tuple[AggregateCall, ...]
    names: tuple[str, ...]

    @property
    def distinct_args(self) -> tuple[str, ...]:
        """The arguments of the DISTINCT aggregates, in order of first use."""
        return tuple(dict.fromkeys(c.arg.name for c in self.calls if c.distinct and c.arg))

    @property
    def grain(self) -> list[str]:
        """Columns the partial phase groups by: the keys, plus the DISTINCT arguments."""
        return list(self.keys) + [d for d in self.distinct_args if d not in self.keys]

    @property
    def passes_rows(self) -> bool:
        """Whether an input row, its grain columns taken, is already a partial row (no
        aggregate states, no expanded DISTINCT arguments): a partial step may pass rows
        through instead of aggregating them."""
        return not self._plain() and not self._expanded()

    def _expanded(self) -> list[str]:
        """The DISTINCT arguments that get partial rows of their own: none with one argument
        (its pairs (g, x) carry the other aggregates too), every one with several."""
        args = self.grain[len(self.keys):]
        return args if len(args) > 1 else []

    def _plain(self) -> list[tuple[int, AggregateCall]]:
        return [(i, c) for i, c in enumerate(self.calls) if not c.distinct]

    def _states(self, i: int) -> list[str]:
        """The state column names of plain call ``i``."""
        return [_pname(i, j) for j in range(self._state_count(i))]

    def _state_count(self, i: int) -> int:
        spec = AGGREGATES[self.calls[i].func]
        return len(step_types(spec.chunk, [pa.int64()] * (2 if spec.two_args else 1)))

    def _partial_fields(self, types: Mapping[str, pa.DataType]) -> list[tuple[str, pa.DataType]]:
        """(name, type) of the partial columns, given the input's column types."""
        fields = [(k, types[k]) for k in self.grain]
        for i, c in self._plain():
            inputs = [types[a.name] for a in c.inputs()]
            state = AGGREGATES[c.func].state_types(inputs)
            fields += list(zip(self._states(i), state, strict=True))
        return fields

    def partial_schema(self, input_schema: tuple[Field, ...]) -> tuple[Field, ...]:
        """The fields of partial rows, given the input's fields."""
        types = {f.name: f.dtype for f in input_schema}
        return tuple(Field(n, t) for n, t in self._partial_fields(types))

    def _agg(self, table: pa.Table, keys: list[str], specs: Sequence[tuple[Any, Any, str]],
             fixed: Mapping[str, pa.Scalar] | None = None,
             grouped: Sequence[Grouped] = ()) -> pa.Table:
        """:func:`_aggregate`; a sum's overflow names the call the user wrote."""
        try:
            return _aggregate(table, keys, specs, fixed, grouped)
        except SumOverflow as err:
            raise err.at(self.calls) from None

    def _chunk_jobs(self, table: pa.Table, calls: Sequence[tuple[int, AggregateCall]],
                    name: Callable[[int, int], str], *, rollup: bool = False
                    ) -> tuple[pa.Table, list[tuple[Any, Any, str]], list[Grouped]]:
        """The chunk steps of ``calls`` over ``table`` (their outputs named ``name(i, j)``),
        and ``table`` with the double copies of integer arguments that ``as_double``
        functions (avg) add up. ``rollup``: the DISTINCT roll-up's chunk where it differs."""
        specs: list[tuple[Any, Any, str]] = []
        grouped: list[Grouped] = []
        for i, c in calls:
            spec = AGGREGATES[c.func]
            inputs = [a.name for a in c.inputs()]
            if inputs and spec.casts_to_double(table[inputs[0]].type):
                doubles = pc.cast(table[inputs[0]], pa.float64(), safe=False)
                inputs[0] = f"__mpp_double{i}"
                table = table.append_column(inputs[0], doubles)
            step = spec.rollup if rollup and spec.rollup is not None else spec.chunk
            outputs = [name(i, j) for j in range(len(step_types(
                step, [pa.int64()] * (2 if spec.two_args else 1))))]
            s, g = _split(step, inputs, outputs, per_column=False)
            specs += s
            grouped += g
        return table, specs, grouped

    def _combine_jobs(self) -> tuple[list[tuple[Any, Any, str]], list[Grouped]]:
        """The combine steps of the plain calls, each over its own state columns."""
        specs: list[tuple[Any, Any, str]] = []
        grouped: list[Grouped] = []
        for i, c in self._plain():
            states = self._states(i)
            s, g = _split(AGGREGATES[c.func].combine, states, states, per_column=True)
            specs += s
            grouped += g
        return specs, grouped

    def partial(self, table: pa.Table,
                fixed: Mapping[str, pa.Scalar] | None = None) -> pa.Table:
        """Input rows -> partial rows at the grain (one per group, or per (group, x) pair).

        With DISTINCT aggregates over several arguments x, y (Spark's Expand): the distinct
        (g, x) pairs with y NULL, the distinct (g, y) pairs with x NULL, and the other
        aggregates' partial values at (g) with x and y NULL. Every roll-up and merge function
        ignores NULLs, so the sets add up in :meth:`final` without a tag column.

        ``fixed``: the grain's columns already known constant over ``table``.
        """
        fields = self._partial_fields({f.name: f.type for f in table.schema})
        table, specs, grouped = self._chunk_jobs(table, self._plain(), _pname)
        expanded = self._expanded()
        if not expanded:
            return self._agg(table, self.grain, specs, fixed, grouped).select(
                [n for n, _ in fields])
        keys = list(self.keys)
        parts = [self._agg(table, keys, specs, fixed, grouped)] if specs or grouped else []
        parts += [self._agg(table, keys + [d], [], fixed) for d in expanded]
        return pa.concat_tables(
            [pa.table([p[n] if n in p.column_names else pa.nulls(p.num_rows, t)
                       for n, t in fields], names=[n for n, _ in fields]) for p in parts],
            promote_options="permissive")

    def partial_by_row(self, values: pa.Table, rows: np.ndarray, build: pa.Table) -> pa.Table:
        """:meth:`partial` of rows whose group keys are those of row ``rows[i]`` of ``build``
        (a join's pairs, ``values`` holding the aggregates' arguments; ``build`` the build
        side's distinct key values, ``rows`` each pair's): the aggregates run per row of
        ``build``, an integer grouping (a count of each for ``count(*)``), and only then are
        the keys of each row met taken, once. The keys of a pair are never materialised, and
        as the rows of ``build`` are distinct, no merge follows."""
        if all(c.func is AggFunc.COUNT_STAR for c in self.calls):
            if build.num_rows <= 4 * rows.size:  # a count per build row, then those met
                counts = np.bincount(rows, minlength=build.num_rows)
                met = np.flatnonzero(counts)
                counts = counts[met]
            else:  # few pairs, many build rows: hash the rows met instead
                codes, met = pd.factorize(rows)
                counts = np.bincount(codes)
            states = [pa.array(counts.astype(np.int64))] * len(self.calls)
            names = [_pname(i, 0) for i in range(len(self.calls))]
            ids = pa.array(met)
        else:
            by_row = AggregateKernel((_BUILD_ROW,), self.calls, self.names).partial(
                values.append_column(_BUILD_ROW, pa.array(rows)))
            names = [n for n in by_row.column_names if n != _BUILD_ROW]
            states = [by_row[n] for n in names]
            ids = by_row[_BUILD_ROW]
        keys = build.select(list(self.keys)).take(ids)
        # The rows of ``build`` are distinct groups: one partial row each, nothing to merge.
        return pa.table(list(keys.columns) + states, names=list(self.keys) + names)

    def merge(self, partials: pa.Table,
              fixed: Mapping[str, pa.Scalar] | None = None) -> pa.Table:
        """Partial rows -> fewer partial rows (same grain): what exchange combiners apply.

        ``fixed``: the grain's columns already known constant over ``partials``.
        """
        specs, grouped = self._combine_jobs()
        merged = self._agg(partials, self.grain, specs, fixed, grouped)
        return merged.select(partials.column_names)

    def final(self, partials: pa.Table, *, merged: bool = False,
              fixed: Mapping[str, pa.Scalar] | None = None) -> pa.Table:
        """Partial rows of whole groups -> result rows: keys, then one column per aggregate.

        ``merged``: the partial rows are already one per grain (they come straight from
        :meth:`partial` of all the group's rows, as in SINGLE mode), so no merge is needed.
        ``fixed``: the grain's columns already known constant over ``partials``.
        """
        idempotent = all(AGGREGATES[c.func].idempotent for c in self.calls if c.distinct)
        # Only with a DISTINCT argument: without one (SELECT DISTINCT, the inner aggregation of
        # the count(DISTINCT) rewrite) the merge is what removes duplicates across tasks.
        skip_merge = merged or (bool(self.distinct_args) and not self._plain() and idempotent)
        table = partials if skip_merge else self.merge(partials, fixed)
        if self.distinct_args:
            specs, grouped = self._combine_jobs()
            distinct = [(i, c) for i, c in enumerate(self.calls) if c.distinct]
            table, dspecs, dgrouped = self._chunk_jobs(table, distinct, _dname, rollup=True)
            table = self._agg(table, list(self.keys), specs + dspecs, None, grouped + dgrouped)
        cols = [table[k] for k in self.keys]
        for i, c in enumerate(self.calls):
            spec = AGGREGATES[c.func]
            if c.distinct:
                step = spec.rollup if spec.rollup is not None else spec.chunk
                states = [table[_dname(i, j)] for j in range(len(step_types(step, [pa.int64()])))]
            else:
                states = [table[n] for n in self._states(i)]
            cols.append(pc.cast(spec.finalize(states), c.dtype))
        return pa.table(cols, names=list(self.keys) + list(self.names))


def _dname(i: int, j: int) -> str:
    return f"__d{i}_{j}"
