"""The build side of a hash join, built once and probed by many tasks.

Acero's ``Table.join`` builds its hash table inside every call, so a broadcast join whose
dimension reached 1,000 probe tasks built it 1,000 times. A :class:`JoinTable` is built once
from the build rows and then probed with any number of left inputs; :func:`shared_table`
keeps one per worker process for each broadcast input of a query (Trino builds once per node
and shares the table between its drivers the same way), and :func:`evict` drops a query's
tables when its task records are drained, at the end of the query.

The table maps each build row's key to a group of build rows. Keys become int64 values first
(integers, dates and timestamps as they are, floats by their bits after :func:`canonical_key`,
text and several keys as codes of the build side's distinct values); then a dense key range
is addressed directly (an array over min..max), a sparse one through a pandas hash index,
whose hash table pandas builds once and keeps. A NULL key (and a NaN) matches nothing.

Probing returns row indices only: the caller takes just the columns its output carries. A
probe row's position in the lookup arrays (its *slot*) is one subtraction for a dense range,
with one slot before and after the keys meaning "no build row", so a single ``np.take(...,
mode="clip")`` per lookup also sends out-of-range keys there; an integer probe key is read as
stored (an int32 column is not copied to int64 first). When the build keys are unique,
:meth:`JoinTable.probe_groups` goes one step further for a partial aggregate grouped by
build-side columns: one lookup gives each probe row its group, and no pair is materialised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mpp.physical.keys import key_numbers

DENSE_SLACK = 4  # a key range up to 4x the build rows is addressed directly
DENSE_MIN = 1 << 16  # ... and any range this small
_MAX_KEPT = 8  # tables a process keeps at most (a failed query never drains its own)


def key_family(t: pa.DataType) -> str | None:
    """Which kind of int64 a key of type ``t`` becomes; None for types the table cannot key
    on (the join then runs through Acero). Two sides join here only with one family."""
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.tz}]"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return None


def _as_int64(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """An integer-like or float key as int64 values and its validity (None: no NULLs): the
    numbers the exchange hashes (:func:`key_numbers`, a NaN matching nothing), a float by
    its bits."""
    values, valid = key_numbers(column, nan_matches=False)
    if values.dtype.kind == "f":
        values = values.view(np.int64)
    return values, valid


def _text_values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A text key as an object array (NULLs as None) and its validity."""
    valid = None
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False))
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object), valid


class _Codes:
    """Maps one key column's values to dense codes 0..n-1 of the build side's distinct values
    (-1: not on the build side, or NULL)."""

    def __init__(self, column: pa.ChunkedArray, family: str) -> None:
        self.family = family
        values, valid = self._values(column)
        kept = values if valid is None else values[valid]
        self.index = pd.Index(pd.unique(kept))

    def _values(self, column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
        return _text_values(column) if self.family == "text" else _as_int64(column)

    def __len__(self) -> int:
        return len(self.index)

    def codes(self, column: pa.ChunkedArray) -> np.ndarray:
        values, valid = self._values(column)
        out = np.asarray(self.index.get_indexer(values), dtype=np.int64)
        if valid is not None:
            out[~valid] = -1
        return out


@dataclass(frozen=True, slots=True)
class Matches:
    """The result of a probe: for each probe row its group of build rows.

    With unique build keys (a dimension's primary key), ``row[i]`` is probe row i's one
    build row (-1: none). Otherwise ``start[i]`` and ``count[i]`` locate its matches in
    ``order`` (count 0: none).
    """

    row: np.ndarray | None
    start: np.ndarray | None = None
    count: np.ndarray | None = None
    order: np.ndarray | None = None

    @property
    def each_once(self) -> bool:
        """Whether every probe row has exactly one match (pairs are the probe rows in order)."""
        return self.row is not None and bool((self.row >= 0).all())

    @property
    def matched(self) -> np.ndarray:
        """Whether each probe row has at least one match."""
        if self.row is not None:
            return self.row >= 0
        assert self.count is not None
        return self.count > 0

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(probe row, build row) of every matching pair, in probe order."""
        if self.row is not None:
            found = self.row >= 0
            if found.all():  # every probe row has its one match (a fact row's dimension)
                return np.arange(self.row.size), self.row
            hit = np.flatnonzero(found)
            return hit, self.row[hit]
        assert self.count is not None and self.start is not None and self.order is not None
        hit = np.flatnonzero(self.count)
        counts = self.count[hit]
        if counts.size == 0 or counts.max() == 1:
            return hit, self.order[self.start[hit]]
        left = np.repeat(hit, counts)
        ends = np.cumsum(counts)
        within = np.arange(int(ends[-1])) - np.repeat(ends - counts, counts)
        return left, self.order[np.repeat(self.start[hit], counts) + within]


class JoinTable:
    """The build rows of a join and a lookup from key values to them (see the module doc)."""

    def __init__(self, build: pa.Table, keys: Sequence[str]) -> None:
        if any(c.num_chunks > 1 for c in build.columns):
            build = build.combine_chunks()
        self.table = build
        self.keys = tuple(keys)
        self._lock = threading.Lock()
        self._groupings: dict[tuple[str, ...], tuple[np.ndarray, pa.Table]] = {}
        self.families = tuple(key_family(build.schema.field(k).type) for k in keys)
        self._codes: list[_Codes] = []
        values, valid = self._int_keys(build, keys, building=True)
        rows = np.arange(build.num_rows, dtype=np.int64)
        if valid is not None:
            values, rows = values[valid], rows[valid]
        # Every lookup below is indexed by a *slot*: 1 + the key's position (dense: key - lo;
        # sparse: its place in the hash index), with slots 0 and n + 1 meaning "no build row",
        # so a probe takes from them with mode="clip" and needs no bounds check of its own.
        self._dense = True
        self._lo = 0
        self._index: pd.Index | None = None
        span = 0
        if values.size:
            lo, hi = int(values.min()), int(values.max())
            span = hi - lo + 1
            self._dense = 0 < span <= max(DENSE_SLACK * values.size, DENSE_MIN)
            self._lo = lo
        if self._dense:
            groups = values - self._lo
            n_groups = span
        else:
            self._index = pd.Index(pd.unique(values))
            groups = np.asarray(self._index.get_indexer(values), dtype=np.int64)
            n_groups = len(self._index)
        counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
        self._row: np.ndarray | None = None  # by slot: the one build row (-1: none)
        self._order = np.empty(0, dtype=np.int64)
        if not counts.size or counts.max() <= 1:  # unique keys: one build row per key
            # int32 while it can hold the rows: half the memory, and a probe's random reads
            # of a 5M-row dimension's lookup miss the cache half as often
            self._row = np.full(n_groups + 2, -1, dtype=np.int32 if build.num_rows < 1 << 31
                                else np.int64)
            self._row[groups + 1] = rows
            self._count = self._start = np.empty(0, dtype=np.int64)
        else:  # by slot: where its build rows start in ``_order``, and how many
            self._order = rows[np.argsort(groups, kind="stable")]
            self._count = np.concatenate([[0], counts, [0]])
            self._start = np.concatenate([[0], np.cumsum(counts) - counts, [0]])
        self._group_slots: dict[tuple[str, ...], np.ndarray] = {}

    def group_codes(self, keys: Sequence[str]) -> tuple[np.ndarray, pa.Table]:
        """Each build row's group of ``keys`` as a code, and the groups' key values (row c
        is group c): computed once per table and key list, so probes that aggregate by
        build-side keys count per group code instead of taking the keys of each pair."""
        keys = tuple(keys)
        with self._lock:
            if keys not in self._groupings:
                self._groupings[keys] = _grouping(self.table.select(list(keys)))
            return self._groupings[keys]

    @staticmethod
    def supports(build: pa.Schema, probe: pa.Schema, build_keys: Sequence[str],
                 probe_keys: Sequence[str]) -> bool:
        """Whether these key columns can be keyed on here (one family on both sides)."""
        for bk, pk in zip(build_keys, probe_keys, strict=True):
            family = key_family(build.field(bk).type)
            if family is None or family != key_family(probe.field(pk).type):
                return False
        return True

    @property
    def nbytes(self) -> int:
        """Bytes held: the build rows and the lookup arrays."""
        lookup = self._row.nbytes if self._row is not None else 0
        lookup += sum(a.nbytes for a in self._group_slots.values())
        return int(self.table.nbytes + lookup + self._order.nbytes + 2 * self._count.nbytes)

    def _int_keys(self, table: pa.Table, keys: Sequence[str], *,
                  building: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """One int64 per row for ``keys`` (the build side's columns, or the probe side's in
        the same order) and which rows have no NULL key (None: all)."""
        if len(keys) == 1 and self.families[0] != "text":
            return _as_int64(table[keys[0]])
        if building:
            self._codes = [_Codes(table[k], f)
                           for k, f in zip(keys, self.families, strict=True)]
        combined = np.zeros(table.num_rows, dtype=np.int64)
        valid = np.ones(table.num_rows, dtype=bool)
        radix = 1
        for enc, key in zip(self._codes, keys, strict=True):
            codes = enc.codes(table[key])
            valid &= codes >= 0
            combined += np.where(codes >= 0, codes, 0) * radix
            radix *= max(1, len(enc))
            if radix >= 1 << 62:  # cannot overflow: re-code the combination so far
                raise _TooManyKeys
        return combined, None if valid.all() else valid

    def _slots(self, table: pa.Table, keys: Sequence[str]) -> np.ndarray:
        """Each probe row's slot in the lookups (0 or beyond the last key: no build row;
        out-of-range positions are left for ``np.take(..., mode="clip")`` to send there)."""
        column = table[keys[0]] if len(keys) == 1 else None
        if self._dense and column is not None and _plain_integer(column.type):
            values, valid = _integers(column)  # as stored: no int64 copy of an int32 key
        else:
            values, valid = self._int_keys(table, keys)
        if self._dense:
            # Wrapping int64 arithmetic maps only lo..hi into 1..n (it is a bijection).
            shift = self._lo - 1
            if shift < _INT64_MIN:
                slots = np.subtract(values, self._lo, dtype=np.int64) + 1
            else:
                slots = np.subtract(values, shift, dtype=np.int64)
        else:
            assert self._index is not None
            slots = np.asarray(self._index.get_indexer(values), dtype=np.int64) + 1
        if valid is not None:
            slots[~valid] = 0
        return slots

    def probe(self, table: pa.Table, keys: Sequence[str]) -> Matches:
        """Each row of ``table`` (keys ``keys``, in the build keys' order) and its matches."""
        slots = self._slots(table, keys)
        if self._row is not None:
            return Matches(np.take(self._row, slots, mode="clip"))
        return Matches(None, np.take(self._start, slots, mode="clip"),
                       np.take(self._count, slots, mode="clip"), self._order)

    def probe_groups(self, table: pa.Table, keys: Sequence[str],
                     group_keys: Sequence[str]) -> np.ndarray | None:
        """Each probe row's group of the build side's ``group_keys`` (the codes of
        :meth:`group_codes`; -1: no build row), in one lookup per row: a partial aggregate
        grouped by build-side columns needs nothing else of the join. None when a key has
        several build rows (a probe row then has several pairs: :meth:`probe`)."""
        if self._row is None:
            return None
        group_keys = tuple(group_keys)
        with self._lock:
            by_slot = self._group_slots.get(group_keys)
        if by_slot is None:
            codes, _ = self.group_codes(group_keys)
            # (row -1, no build row, takes the -1 put last.) intp, which np.bincount counts
            # without a converted copy, unless the dimension is large (then half the memory
            # matters more than ~0.1 ms a task).
            kind = np.intp if self._row.size <= _SMALL_LOOKUP else np.int32
            code_of_row = np.empty(codes.size + 1, dtype=kind)
            code_of_row[:-1], code_of_row[-1] = codes, -1
            by_slot = np.take(code_of_row, self._row)
            with self._lock:
                self._group_slots[group_keys] = by_slot
        return np.take(by_slot, self._slots(table, keys), mode="clip")


_INT64_MIN = -(1 << 63)
_SMALL_LOOKUP = 1 << 20  # slots up to which probe_groups' lookup is intp (8 MiB at most)


def _plain_integer(t: pa.DataType) -> bool:
    """Whether numpy holds a key of type ``t`` as a number that int64 takes exactly (a signed
    integer or a narrow unsigned one): such a probe key is used as stored."""
    return bool(pa.types.is_signed_integer(t) or t in (pa.uint8(), pa.uint16(), pa.uint32()))


def _integers(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """An integer column as a numpy array of its own width (NULLs as 0) and its validity
    (None: no NULL): zero-copy for one chunk without NULLs."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    valid = None
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False))
        column = column.fill_null(0)
    return np.asarray(column.to_numpy(zero_copy_only=False)), valid


def _grouping(table: pa.Table) -> tuple[np.ndarray, pa.Table]:
    """A code per row of ``table`` (equal rows, NULLs included, share one) and the distinct
    rows, in code order."""
    combined = np.zeros(table.num_rows, dtype=np.int64)
    radix = 1
    for column in table.columns:
        encoded = column.combine_chunks().dictionary_encode() if column.num_chunks != 1 \
            else column.chunk(0).dictionary_encode()
        size = len(encoded.dictionary) + 1  # + NULL
        codes = encoded.indices.fill_null(size - 1).to_numpy(zero_copy_only=False)
        if radix * size >= 1 << 62:  # re-code the combination so far, then go on
            combined, uniques = pd.factorize(combined)
            radix = max(1, len(uniques))
        combined += codes.astype(np.int64) * radix
        radix *= size
    codes, uniques = pd.factorize(combined)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(table.num_rows - 1, -1, -1)
    return np.asarray(codes, dtype=np.int64), table.take(pa.array(first))


class _TooManyKeys(Exception):
    """Several text keys whose distinct values multiply past int64 (Acero joins them)."""


def build_table(build: pa.Table, keys: Sequence[str]) -> JoinTable | None:
    """A :class:`JoinTable` of ``build`` on ``keys``, or None when they cannot be keyed on."""
    try:
        return JoinTable(build, keys)
    except _TooManyKeys:
        return None


_TABLES: OrderedDict[tuple[str, int, int], JoinTable | None] = OrderedDict()
_BUILDING: dict[tuple[str, int, int], threading.Lock] = {}
_LOCK = threading.Lock()


def shared_table(query_id: str, exchange: int, build: pa.Table,
                 make: Callable[[], JoinTable | None]) -> tuple[JoinTable | None, bool]:
    """The table this process built for ``query_id``'s broadcast input ``exchange``, made by
    ``make`` the first time; and whether this call built it.

    Keyed by the input object too: every task of a worker receives the same object, while a
    worker that lost and fetched it again (a new object) builds again.
    """
    key = (query_id, exchange, id(build))
    with _LOCK:
        if key in _TABLES:
            return _TABLES[key], False
        lock = _BUILDING.setdefault(key, threading.Lock())
    with lock:  # one thread builds; the others of this worker wait for it
        with _LOCK:
            if key in _TABLES:
                return _TABLES[key], False
        table = make()
        with _LOCK:
            _TABLES[key] = table
            _BUILDING.pop(key, None)
            while len(_TABLES) > _MAX_KEPT:
                _TABLES.popitem(last=False)
    return table, True


def evict(query_id: str) -> None:
    """Drop every table built for ``query_id`` (its tasks have all finished)."""
    with _LOCK:
        for key in [k for k in _TABLES if k[0] == query_id]:
            del _TABLES[key]
