"""HashAggregateExec: grouping and aggregation, in PARTIAL, FINAL or SINGLE mode."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mpp.logical.nodes import Field
from mpp.physical.aggregates import AggregateKernel, constant_keys
from mpp.physical.distribution import (
    Distribution,
    HashDistribution,
    SinglePartition,
    UnspecifiedDistribution,
)
from mpp.physical.keys import canonical_keys
from mpp.physical.operators.base import (
    HOT_KEYS,
    PhysicalOp,
    TaskContext,
    UnaryOp,
    all_unreduced,
    concat,
    is_unreduced,
    mark_unreduced,
    reduce_adaptively,
)

PARTIALS_MERGED = 8  # batches' partial groups held before they are merged into one
# Partial rows of one constant-key group a task holds before merging them (a window's batches
# of a huge partition); below it a PARTIAL step hands them on unmerged, as separate tasks
# would have: merging the fragments of a packed scan task in the task, then again in the
# exchange's combine, cost Q1 (a day's ~30 fragments of 60K distinct users each) 3x.
PARTIAL_ROWS_HELD = 1 << 22
# Input bytes of one constant-key group a task holds before aggregating them at once: the
# fragments of a day in a packed scan task are aggregated together (one hash or bitmap pass
# over a day's rows, not one per fragment), within this bound.
INPUT_BYTES_HELD = 64 * 1024 * 1024


class AggregateMode(enum.Enum):
    """Phase of a two-phase aggregation (DataFusion's AggregateMode)."""

    PARTIAL = "partial"  # per task, before the exchange: rows -> partial groups
    FINAL = "final"  # after the hash exchange: partial groups -> result rows
    SINGLE = "single"  # input already distributed by the group keys: rows -> result rows


@dataclass(frozen=True, slots=True)
class HashAggregateExec(UnaryOp):
    """Groups by ``kernel.keys`` and aggregates, in one of three modes (see AggregateMode).

    ``schema`` is the output: partial columns in PARTIAL mode, result columns otherwise.
    """

    input: PhysicalOp
    mode: AggregateMode
    kernel: AggregateKernel
    schema: tuple[Field, ...]
    note: str = ""  # a DISTINCT aggregation's strategy and why (EXPLAIN prints it)
    merge_partials: bool = True  # PARTIAL: may exchange combiners merge its output?
    # PARTIAL over a broadcast join whose build side is a shared table, grouped by build-side
    # columns only: the pairs are aggregated per build row first (AggregateKernel.
    # partial_by_row) and the keys taken once per build row met, never once per pair.
    by_build_row: bool = False
    # PARTIAL: the output/input row ratio above which a task stops aggregating (Trino's
    # adaptive partial aggregation; ``aggregate.partial_skip_ratio``, 1 = never).
    skip_ratio: float = 1.0

    @property
    def word(self) -> str:  # type: ignore[override]
        return {AggregateMode.PARTIAL: "partial-agg", AggregateMode.FINAL: "final-agg",
                AggregateMode.SINGLE: "aggregate"}[self.mode]

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        if self.mode is AggregateMode.PARTIAL:
            return (UnspecifiedDistribution(),)
        if not self.kernel.keys:
            return (SinglePartition(),)
        return (HashDistribution(self.kernel.keys),)

    def execute(self, tctx: TaskContext) -> pa.Table:
        if self.by_build_row:
            args = {c.name for call in self.kernel.calls for c in call.inputs()}
            partials: list[pa.Table] = []
            for paired in self.input.execute_by_build_row(tctx, args, self.kernel.keys):
                if not isinstance(paired, tuple):  # the join's rows (it yields only them)
                    table = paired
                    break
                partials.append(self.kernel.partial_by_row(*paired))
                if len(partials) >= PARTIALS_MERGED:
                    partials = [self.kernel.merge(concat(partials, self.schema))]
            else:
                if len(partials) == 1:
                    return partials[0]
                return self.kernel.merge(concat(partials, self.schema))
        elif self.mode is not AggregateMode.FINAL:
            # Rows may arrive in batches (the fragments of a packed scan task, a window over
            # a huge partition): each batch's partial groups are merged as they come, so the
            # rows are never all held.
            batches = self.input.execute_batches(tctx)
            table = next(batches)
            second = next(batches, None)
            if second is not None:
                return self._batched(tctx, itertools.chain((table, second), batches))
        else:
            table = self.input.execute(tctx)
        # Constant grain columns are found once, for the hot keys and the grouping.
        fixed = constant_keys(table, self.kernel.grain)
        # Hot keys explain a task's size only where the keys chose its rows (after a hash
        # exchange). A partial aggregate got whatever its task read or received: its hot keys
        # are noted only when free (all keys constant, a fragment of a partitioned table);
        # sampling them cost ~0.2 ms in each of a 1,000-task scan stage's tasks.
        if self.mode is not AggregateMode.PARTIAL or all(k in fixed for k in self.kernel.keys):
            tctx.note_keys(table, self.kernel.keys, fixed)
        if self.mode is AggregateMode.PARTIAL:
            return self._partial(tctx, table, fixed)
        if self.mode is AggregateMode.FINAL:
            return self.kernel.final(table, fixed=fixed)
        # SINGLE: the partial rows of all the group's rows are already one per grain.
        return self.kernel.final(self.kernel.partial(table, fixed), merged=True)

    def _partial(self, tctx: TaskContext, table: pa.Table,
                 fixed: dict[str, pa.Scalar]) -> pa.Table:
        """One task's partial groups, or, when the first rows it aggregates (a quarter, at most
        PROBE_ROWS) keep more than ``skip_ratio`` of their rows, those groups followed by the
        other rows passed through unaggregated (only where a partial row is just the grain's
        columns: a DISTINCT or GROUP BY without aggregates; with aggregate states every row is
        aggregated and only the exchange's merge is skipped). The output is then tagged
        unreduced, so the exchange's combine concatenates it instead of merging."""
        if self.skip_ratio >= 1 or table.num_rows == 0:
            return self.kernel.partial(table, fixed)

        def reduce(rows: pa.Table) -> pa.Table:
            return self.kernel.partial(rows, fixed)

        return reduce_adaptively(tctx, table, self.schema, self.skip_ratio, reduce,
                                 lambda rows: self.kernel.merge(rows, fixed),
                                 lambda rows, names: self._pass_on(rows, names, fixed))

    def _pass_on(self, rows: pa.Table, names: list[str],
                 fixed: dict[str, pa.Scalar]) -> pa.Table:
        """Rows of a task whose partial step stopped reducing, as they go on: the grain's
        columns (canonical keys, as partial rows are), or still aggregated when a partial row
        holds aggregate states."""
        if self.kernel.passes_rows:  # as partial rows are: -0.0 is 0.0, NaNs one value
            return canonical_keys(rows.select(names), names)
        return self.kernel.partial(rows, fixed)

    def _batched(self, tctx: TaskContext, batches: Iterator[pa.Table]) -> pa.Table:
        """The partial groups (PARTIAL) or result rows (SINGLE) of rows that arrive in several
        batches: a packed scan task's fragments, a window's batches.

        Batches are grouped by the values of their constant grain keys (a fragment of a table
        partitioned by date holds one date). A group's rows are aggregated together, with those
        keys left out of the hashing, at the end or whenever they reach ``INPUT_BYTES_HELD``
        (one pass over a day's fragments, not one per fragment); its partial groups merge once
        they hold ``PARTIAL_ROWS_HELD`` rows (a PARTIAL step otherwise hands them on unmerged:
        the exchange's combine merges them, as it would separate tasks' outputs) or, for a
        SINGLE step, at the end. Groups with different values never merge (they cannot share
        a group). A PARTIAL step judges on its first batch whether reducing pays
        (``skip_ratio``); if not, the other batches pass through as one fragment's rest does.
        All keys constant in every batch: the task's hot keys are the values with the most
        rows, for free."""
        schema = self._partial_schema
        groups: dict[tuple[Any, ...], tuple[dict[str, pa.Scalar], list[pa.Table]]] = {}
        rows: dict[tuple[Any, ...], list[pa.Table]] = {}  # input held per group

        def aggregate(key: tuple[Any, ...]) -> None:
            fixed, held = groups[key]
            held.append(self.kernel.partial(concat(rows.pop(key), self.input.schema), fixed))
            if sum(t.num_rows for t in held) >= PARTIAL_ROWS_HELD:
                held[:] = [self.kernel.merge(concat(held, schema), fixed)]

        hot: dict[Any, int] | None = {} if self.kernel.keys else None
        passed: list[pa.Table] = []  # the task stopped reducing: what goes on unreduced
        first = True
        for batch in batches:
            fixed = constant_keys(batch, self.kernel.grain)
            if hot is not None and all(k in fixed for k in self.kernel.keys):
                value = tuple(fixed[k].as_py() for k in self.kernel.keys)
                hot[value] = hot.get(value, 0) + batch.num_rows
            elif batch.num_rows:
                hot = None
            if passed:
                passed.append(self._pass_on(batch, passed[0].column_names, fixed))
                continue
            key = tuple((k, v.as_py()) for k, v in fixed.items())
            held = groups.setdefault(key, (fixed, []))[1]
            if first and self.mode is AggregateMode.PARTIAL and self.skip_ratio < 1:
                first = False
                out = self._partial(tctx, batch, fixed)
                if is_unreduced(out):
                    passed.append(out)
                    continue
                held.append(out)
                continue
            first = False
            rows.setdefault(key, []).append(batch)
            if sum(t.nbytes for t in rows[key]) >= INPUT_BYTES_HELD:
                aggregate(key)
        for key in list(rows):
            aggregate(key)
        if hot:
            best = sorted(hot.items(), key=lambda kv: -kv[1])[:HOT_KEYS]
            tctx.hot_keys = tuple((v[0] if len(v) == 1 else v, n) for v, n in best)
        if passed:
            return mark_unreduced(concat(passed, schema))
        if self.mode is AggregateMode.PARTIAL:
            return concat([t for _, held in groups.values() for t in held], schema)
        parts = [held[0] if len(held) == 1 else self.kernel.merge(concat(held, schema), fixed)
                 for fixed, held in groups.values()]
        merged = concat(parts, schema)
        if len(parts) > 1:  # batches whose keys were not all constant may share groups
            merged = self.kernel.merge(merged)
        return self.kernel.final(merged, merged=True)

    @property
    def _partial_schema(self) -> tuple[Field, ...]:
        return self.kernel.partial_schema(self.input.schema)

    def merge(self, table: pa.Table) -> pa.Table:
        # Partial groups from several tasks merge into fewer partial groups (same columns).
        return self.kernel.merge(table) if self.merges else table

    @property
    def merges(self) -> bool:
        return self.mode is AggregateMode.PARTIAL and self.merge_partials

    def merge_outputs(self, tables: list[pa.Table]) -> pa.Table:
        """Merge several tasks' partial groups. Outputs whose group keys are constant (tasks
        that read one partition of a table partitioned by those keys) merge per key value, so
        each merge hashes only the other columns (a DISTINCT over one column: ``pc.unique``)."""
        if not self.merges or all_unreduced(tables):
            return concat(tables, self.schema)
        tables = [t for t in tables if t.num_rows]
        fixed = [constant_keys(t, self.kernel.grain) for t in tables]
        if len(tables) < 2 or not fixed[0] or any(f.keys() != fixed[0].keys() for f in fixed):
            return self.merge(concat(tables, self.schema))
        # Per constant values: those values, and the tables holding them. A group's
        # concatenation has exactly its tables' constant columns, so they are not re-checked.
        groups: dict[tuple[Any, ...], tuple[dict[str, pa.Scalar], list[pa.Table]]] = {}
        for t, f in zip(tables, fixed, strict=True):
            groups.setdefault(tuple(v.as_py() for v in f.values()), (f, []))[1].append(t)
        return concat([self.kernel.merge(concat(g, self.schema), f)
                       for f, g in groups.values()], self.schema)

    def explain_line(self) -> str:
        keys = ", ".join(self.kernel.keys) or "()"
        calls = ", ".join(f"{c} AS {n}" if self.mode is not AggregateMode.PARTIAL else str(c)
                          for c, n in zip(self.kernel.calls, self.kernel.names, strict=True))
        line = f"HashAggregateExec({self.mode.name}): group by {keys}"
        if self.mode is AggregateMode.PARTIAL and self.kernel.distinct_args:
            line += f" + distinct {', '.join(self.kernel.distinct_args)}"
        if self.mode is AggregateMode.PARTIAL and not self.merge_partials:
            line += " (not merged in the exchange)"
        if self.by_build_row:
            line += " (fused with the join: counted per build-side group, its keys taken once)"
        line += f"; {calls}" if calls else ""
        return line + (f" [distinct: {self.note}]" if self.note else "")

