"""HashJoinExec: equi-join (inner, left, right, full, semi, anti), broadcast or partitioned."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.logical.expr import Expr
from mpp.logical.nodes import Field, JoinKind, JoinStrategy
from mpp.physical.distribution import (
    Arbitrary,
    BroadcastDistribution,
    Distribution,
    Hash,
    HashDistribution,
    Partitioning,
    UnspecifiedDistribution,
)
from mpp.physical.join_table import JoinTable, build_table, key_family, shared_table
from mpp.physical.keys import canonical_key
from mpp.physical.operators.base import JoinOp, PhysicalOp, TaskContext, concat
from mpp.physical.operators.exchange import ExchangeExec
from mpp.physical.operators.nested_loop import (
    LEFT_ID,
    RIGHT_ID,
    with_row_ids,
    with_unmatched,
)
from mpp.physical.operators.rowwise import evaluate_column

_LEFT_KEY, _RIGHT_KEY = "__mpp_left_key", "__mpp_right_key"
_HOW = {JoinKind.INNER: "inner", JoinKind.LEFT: "left outer", JoinKind.RIGHT: "right outer",
        JoinKind.FULL: "full outer", JoinKind.SEMI: "left semi", JoinKind.ANTI: "left anti"}
_TABLED = (JoinKind.INNER, JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI)  # probe = left side
_FLIPPED = {"inner": "inner", "left outer": "right outer", "right outer": "left outer",
            "full outer": "full outer", "left semi": "right semi", "left anti": "right anti"}


def _key(prefix: str, i: int) -> str:
    return f"{prefix}{i}"


@dataclass(frozen=True, slots=True)
class HashJoinExec(JoinOp):
    """Joins ``left`` (probe) with ``right`` (build) on ``left_keys[i] = right_keys[i]``.

    BROADCAST: the right side's complete result is copied to every task of the left side, which
    never moves. PARTITIONED: both sides are hash-exchanged on the keys into the same buckets and
    task j joins bucket j of each (the only choice for RIGHT and FULL joins, whose unmatched
    right rows must appear once). ``residual`` is the rest of the ON condition: a pair failing
    it is no match.
    """

    word: ClassVar[str] = "hashjoin"
    left: PhysicalOp
    right: PhysicalOp
    kind: JoinKind
    left_keys: tuple[str, ...]
    right_keys: tuple[str, ...]
    strategy: JoinStrategy
    residual: Expr | None = None
    reason: str = ""
    null_aware: bool = False  # NOT IN's anti join (see ``Join.null_aware``); broadcast only
    columns: tuple[str, ...] | None = None  # the output columns its consumer reads (None: all)

    @property
    def schema(self) -> tuple[Field, ...]:  # type: ignore[override]
        both = self._all_fields
        if self.columns is None:
            return both
        return tuple(f for f in both if f.name in self.columns)

    @property
    def _all_fields(self) -> tuple[Field, ...]:
        """The join's fields before :meth:`narrowed` (a residual may read any of them)."""
        return JoinOp.schema.fget(self)  # type: ignore[attr-defined,no-any-return]

    def narrowed(self, names: set[str] | frozenset[str]) -> HashJoinExec:
        """A copy whose output carries only ``names`` (at least one column, so that a
        ``count(*)`` above still sees the rows): the probe then takes no other column."""
        both = self._all_fields
        keep = tuple(f.name for f in both if f.name in names) or (both[0].name,)
        return self if len(keep) == len(both) else dataclasses.replace(self, columns=keep)

    def required_input_distribution(self) -> tuple[Distribution, ...]:
        if self.strategy is JoinStrategy.BROADCAST:
            return (UnspecifiedDistribution(), BroadcastDistribution())
        return (HashDistribution(self.left_keys, exact=True),
                HashDistribution(self.right_keys, exact=True))

    def output_partitioning(self) -> Partitioning:
        part = self.left.output_partitioning()
        if self.strategy is JoinStrategy.BROADCAST or not isinstance(part, Hash):
            return part
        if self.kind is JoinKind.FULL:  # unmatched right rows carry NULL left keys
            return Arbitrary(part.n)
        return Hash(self.right_keys if self.kind is JoinKind.RIGHT else self.left_keys, part.n)

    def execute(self, tctx: TaskContext) -> pa.Table:
        return self._narrow(self._execute(tctx))

    def execute_by_build_row(self, tctx: TaskContext, columns: set[str], keys: tuple[str, ...]
                             ) -> Iterator[pa.Table | tuple[pa.Table, np.ndarray, pa.Table]]:
        """Per batch of probe rows (a packed scan task's fragments, one by one: probing one
        fragment's rows at a time keeps the pair arrays small), the matched pairs as
        (``columns`` of each pair, the group of its build row's ``keys``, those groups' key
        values) when the build side is a shared table (see :meth:`tabled`); else one table,
        the join's rows.

        With one build row per key, no residual and only probe-side ``columns`` (a count, or
        sums of fact columns, by dimension attributes), each probe row's group is one lookup
        (:meth:`JoinTable.probe_groups`) and the pairs are the probe rows that found one: no
        build row index is materialised."""
        if self.kind is not JoinKind.INNER or self.null_aware:
            yield self.execute(tctx)
            return
        for item in self._streamed(tctx):
            yield item if isinstance(item, pa.Table) else \
                self._pairs_by_build_row(*item, columns, keys)

    def execute_batches(self, tctx: TaskContext) -> Iterator[pa.Table]:
        """The join's rows per batch of probe rows when the build side is a shared table (a
        packed scan task's fragments probe one at a time); else all at once."""
        if self.null_aware:
            yield self.execute(tctx)
            return
        for item in self._streamed(tctx):
            yield item if isinstance(item, pa.Table) else self._narrow(self._probe(*item))

    def _streamed(self, tctx: TaskContext) -> Iterator[tuple[JoinTable, pa.Table] | pa.Table]:
        """The shared build table with each batch of probe rows, or, where the join runs
        through Acero per task (no shared table), one table: the join of all the task's rows.
        Counts the probe rows of every batch."""
        right = self.right.execute(tctx)
        batches = self.left.execute_batches(tctx)
        first = next(batches)
        tctx.note_keys(first, self.left_keys)
        table = self._shared_table(tctx, first, right)
        if table is None:
            left = concat([first, *batches], self.left.schema)
            yield self._narrow(self._join_rows(tctx, left, right))
            return
        yield table, first
        for left in batches:
            tctx.join_rows = (tctx.join_rows[0] + left.num_rows, tctx.join_rows[1])
            yield table, left

    def _pairs_by_build_row(self, table: JoinTable, left: pa.Table, columns: set[str],
                            keys: tuple[str, ...]) -> tuple[pa.Table, np.ndarray, pa.Table]:
        """One batch's pairs for :meth:`execute_by_build_row`."""
        names = [f.name for f in self.left.schema if f.name in columns]
        taken = [f.name for f in self.right.schema if f.name in columns]
        codes, groups = table.group_codes(keys)
        probe = left.select(names)
        if not taken and self.residual is None:
            found = table.probe_groups(left, self.left_keys, keys)
            if found is not None:
                if not found.size or found.min() >= 0:  # (a fact table over its dimension)
                    return probe, found, groups
                hit = found >= 0
                return probe.filter(pa.array(hit)), found[hit], groups
        matches = table.probe(left, self.left_keys)
        li, ri = matches.pairs()
        if self.residual is not None:  # a pair failing the rest of the ON condition is none
            li, ri = self._passing(table, left, li, ri)
        elif matches.each_once:  # (the pairs are the probe rows, in order)
            li = None
        cols = list((probe if li is None else probe.take(pa.array(li))).columns)
        if taken:
            cols += table.table.select(taken).take(pa.array(ri)).columns
        return pa.table(cols, names=names + taken), codes[ri], groups

    def _passing(self, table: JoinTable, left: pa.Table, li: np.ndarray, ri: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The pairs (probe row, build row) whose columns pass ``residual`` (NULL fails)."""
        assert self.residual is not None
        read = self.residual.columns()
        lnames = [f.name for f in self.left.schema if f.name in read] or [self.left_keys[0]]
        rnames = [f.name for f in self.right.schema if f.name in read]
        lrows, rrows = pa.array(li), pa.array(ri)
        pairs = pa.table([left[n].take(lrows) for n in lnames]
                         + [table.table[n].take(rrows) for n in rnames], names=lnames + rnames)
        keep = evaluate_column(self.residual, pairs)
        keep = np.asarray(pc.fill_null(keep, False).to_numpy(zero_copy_only=False), dtype=bool)
        return li[keep], ri[keep]

    @property
    def tabled(self) -> bool:
        """Whether the build side is a table built once per worker and probed by its tasks:
        a broadcast inner, left, semi or anti join (a residual only in an inner one) on keys
        of types :class:`JoinTable` keys on. The others run through Acero in each task."""
        if (self.strategy is not JoinStrategy.BROADCAST or self.kind not in _TABLED
                or (self.residual is not None and self.kind is not JoinKind.INNER)):
            return False
        return all(key_family(lf.dtype) is not None and key_family(lf.dtype) == key_family(rf.dtype)
                   for lf, rf in zip(self._fields(self.left, self.left_keys),
                                     self._fields(self.right, self.right_keys), strict=True))

    @staticmethod
    def _fields(op: PhysicalOp, names: tuple[str, ...]) -> list[Field]:
        by_name = {f.name: f for f in op.schema}
        return [by_name[n] for n in names]

    def _narrow(self, out: pa.Table) -> pa.Table:
        if self.columns is not None and len(out.column_names) != len(self.columns):
            out = out.select(list(self.columns))
        return out

    def _execute(self, tctx: TaskContext) -> pa.Table:
        left = self.left.execute(tctx)
        right = self.right.execute(tctx)
        tctx.note_keys(left, self.left_keys)
        if self.null_aware:
            left, right, decided = self._null_aware(left, right)
            if decided is not None:
                tctx.join_rows = (tctx.join_rows[0] + left.num_rows, tctx.join_rows[1])
                return decided
        table = self._shared_table(tctx, left, right)
        if table is not None:
            return self._probe(table, left)
        return self._join_rows(tctx, left, right)

    def _join_rows(self, tctx: TaskContext, left: pa.Table, right: pa.Table) -> pa.Table:
        """The join through Acero, its hash table built in this task."""
        tctx.join_rows = (tctx.join_rows[0] + left.num_rows, tctx.join_rows[1] + right.num_rows)
        tctx.join_builds += 1
        left, right = self._with_join_keys(left, right)
        if self.residual is not None and self.kind.filters_left:
            return self._filter_left_with_residual(left, right)
        if self.residual is not None and self.kind is not JoinKind.INNER:
            return self._outer_with_residual(left, right)
        out = self._join(left, right, _HOW[self.kind])
        if self.residual is not None:
            out = out.filter(evaluate_column(self.residual, out))
        return out

    def _shared_table(self, tctx: TaskContext, left: pa.Table, right: pa.Table
                      ) -> JoinTable | None:
        """The broadcast build side as a :class:`JoinTable` this worker builds once and its
        tasks share; None where the join runs through Acero per task: a partitioned join
        (each task's bucket differs), a residual outside an inner join, keys it cannot
        table. Counts the build rows in the task that built it."""
        if (not self.tabled or not isinstance(self.right, ExchangeExec)
                or not JoinTable.supports(right.schema, left.schema, self.right_keys,
                                          self.left_keys)):
            return None
        table, built = shared_table(tctx.query_id, self.right.id, right,
                                    lambda: build_table(right, self.right_keys))
        if table is None:
            return None
        tctx.join_rows = (tctx.join_rows[0] + left.num_rows,
                          tctx.join_rows[1] + (right.num_rows if built else 0))
        tctx.join_builds += built
        return table

    def _probe(self, table: JoinTable, left: pa.Table) -> pa.Table:
        """Join ``left`` with a built table: only the output's columns are taken."""
        matches = table.probe(left, self.left_keys)
        wanted = {f.name for f in self.schema} | (
            self.residual.columns() if self.residual is not None else set())
        left_names = [f.name for f in self.left.schema if f.name in wanted] or \
            [self.left.schema[0].name]
        if self.kind.filters_left:
            keep = matches.matched if self.kind is JoinKind.SEMI else ~matches.matched
            return left.select(left_names).filter(pa.array(keep))
        li, ri = matches.pairs()
        if self.kind is JoinKind.LEFT:
            unmatched = np.flatnonzero(~matches.matched)
            li = np.concatenate([li, unmatched])
            ri = np.concatenate([ri, np.full(unmatched.size, -1, dtype=np.int64)])
        rows = pa.array(ri, mask=ri < 0) if self.kind is JoinKind.LEFT else pa.array(ri)
        out = left.select(left_names)
        if not matches.each_once:  # (else the pairs are the probe rows, in order)
            out = out.take(pa.array(li))
        built = table.table.select([f.name for f in self.right.schema
                                    if f.name in wanted]).take(rows)
        for name, column in zip(built.column_names, built.columns, strict=True):
            out = out.append_column(name, column)
        if self.residual is not None:
            out = out.filter(evaluate_column(self.residual, out))
        return out

    def _null_aware(self, left: pa.Table, right: pa.Table,
                    ) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        """NOT IN's NULL rules before the plain anti join: an empty subquery keeps every left
        row (even a NULL one); a NULL in it keeps none; otherwise a NULL left key is NULL (not
        kept). The right side is complete here: the join is always broadcast."""
        names = [f.name for f in self.schema]
        if right.num_rows == 0:
            return left, right, left.select(names)
        if any(right[k].null_count for k in self.right_keys):
            return left, right, left.select(names).slice(0, 0)
        valid = pc.and_kleene(*(pc.is_valid(left[k]) for k in self.left_keys)) \
            if len(self.left_keys) > 1 else pc.is_valid(left[self.left_keys[0]])
        return left.filter(valid), right, None

    def _filter_left_with_residual(self, left: pa.Table, right: pa.Table) -> pa.Table:
        """A semi (anti) join with a residual: the left rows with (without) a key match that
        also passes the residual, each once."""
        left, right = with_row_ids(left, right)
        both = self.left.schema + self.right.schema
        fields = both + (Field(LEFT_ID, pa.int64()),)
        matched = self._hash_join(left, right, "inner").select([f.name for f in fields])
        matched = matched.filter(evaluate_column(self.residual, matched))  # type: ignore[arg-type]
        hit = pc.is_in(left[LEFT_ID], matched[LEFT_ID])
        keep = hit if self.kind is JoinKind.SEMI else pc.invert(hit)
        return left.filter(keep).select([f.name for f in self.schema])

    def _with_join_keys(self, left: pa.Table, right: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Both inputs with one hidden column per key pair, which the hash join matches on.

        Own columns, because one input column may appear in several key pairs (``a.k = b.k
        AND a.k = b.j``), which Acero cannot take by name twice; equal types on both sides
        (int32 vs int64 from two formats), as pyarrow joins need; and float keys
        canonical, so that -0.0 matches 0.0 and a NaN matches nothing, as in Trino. The
        output keeps the original columns.
        """
        for i, (lk, rk) in enumerate(zip(self.left_keys, self.right_keys, strict=True)):
            lcol, rcol = left[lk], right[rk]
            if lcol.type != rcol.type:
                rcol = pc.cast(rcol, lcol.type)
            left = left.append_column(_key(_LEFT_KEY, i), canonical_key(lcol, nan_matches=False))
            right = right.append_column(_key(_RIGHT_KEY, i),
                                        canonical_key(rcol, nan_matches=False))
        return left, right

    def _join(self, left: pa.Table, right: pa.Table, how: str) -> pa.Table:
        return self._hash_join(left, right, how).select([f.name for f in self._all_fields])

    def _hash_join(self, left: pa.Table, right: pa.Table, how: str) -> pa.Table:
        """Join with the hash table built on the smaller input.

        Acero builds its hash table on the right input of ``Table.join``. A broadcast join's
        right side is the whole dimension, the same in every task, while each task's left side
        is one fragment; building on the fragment instead costs 8x less at 1M dimension rows.
        Output column names are unique across sides, so callers select by name. The inputs
        carry the hidden key columns of :meth:`_with_join_keys`. Acero cannot carry a column
        of type null (a bare NULL selected in a subquery) through a join: such columns are
        left out of it and added back, all NULL.
        """
        nulls = [f.name for f in (*left.schema, *right.schema) if pa.types.is_null(f.type)
                 and not f.name.startswith((_LEFT_KEY, _RIGHT_KEY))]
        if nulls:
            out = self._hash_join(left.drop_columns([n for n in nulls if n in left.column_names]),
                                  right.drop_columns([n for n in nulls
                                                      if n in right.column_names]), how)
            for name in nulls:
                out = out.append_column(name, pa.nulls(out.num_rows))
            return out
        n = len(self.left_keys)
        lkeys = [_key(_LEFT_KEY, i) for i in range(n)]
        rkeys = [_key(_RIGHT_KEY, i) for i in range(n)]
        if left.num_rows >= right.num_rows:
            return left.join(right, lkeys, rkeys, join_type=how,
                             coalesce_keys=False, use_threads=False)
        swapped = _FLIPPED[how]
        return right.join(left, rkeys, lkeys,
                          join_type=swapped, coalesce_keys=False, use_threads=False)

    def _outer_with_residual(self, left: pa.Table, right: pa.Table) -> pa.Table:
        # ON-clause semantics: a row whose matches all fail the residual is kept once,
        # null-extended, like a row with no match at all.
        left, right = with_row_ids(left, right)
        fields = self._all_fields + (Field(LEFT_ID, pa.int64()), Field(RIGHT_ID, pa.int64()))
        matched = self._hash_join(left, right, "inner").select([f.name for f in fields])
        matched = matched.filter(evaluate_column(self.residual, matched))  # type: ignore[arg-type]
        return with_unmatched(self.kind, left, right, matched, self.left.schema,
                              self.right.schema)

    def explain_line(self) -> str:
        on = " AND ".join(f"{a} = {b}" for a, b in zip(self.left_keys, self.right_keys,
                                                       strict=True))
        if self.residual is not None:
            on += f" AND {self.residual}"
        kind = self.kind.value + (" (null-aware, NOT IN)" if self.null_aware else "")
        line = f"HashJoinExec({self.strategy.name}): {kind} on {on}"
        return line + (f" [{self.reason}]" if self.reason else "")
