"""Lazy evaluation of CASE (and IF), coalesce, AND and OR: each branch (term) only over the
rows it decides.

Trino evaluates a CASE branch only for the rows whose condition selects it, so
``CASE WHEN k <> 0 THEN 10 / k ELSE 0 END`` never divides by zero, and
``coalesce(x, CAST(big AS integer))`` never casts where x is not NULL. Evaluating every branch
for every row (one kernel per branch over the whole column) would fail there. So, vectorised:
evaluate the first condition over all rows, the first value over the rows where it holds, the
next condition over the rows still undecided, and so on; then scatter the pieces back into row
order (a permutation, with numpy). A CASE whose branches cannot fail (columns, constants,
comparisons) is evaluated eagerly, in one ``case_when`` kernel, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mpp.functions import Value, flat
from mpp.logical.expr import Call, Column, Expr, Literal

Evaluator = Callable[[Expr, pa.Table], Value]
# Operators that cannot raise on any input (so evaluating them on rows a branch does not
# decide is harmless).
_SAFE_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "and", "or", "not", "is_null",
                       "is_not_null", "in", "between", "is_distinct_from",
                       "is_not_distinct_from", "coalesce", "case"})


def cannot_fail(expr: Expr) -> bool:
    """True if evaluating ``expr`` can raise on no input (columns, constants, comparisons)."""
    if isinstance(expr, Column | Literal):
        return True
    return (isinstance(expr, Call) and expr.op in _SAFE_OPS
            and all(cannot_fail(a) for a in expr.args))


def needs_laziness(call: Call) -> bool:
    """True if a CASE/coalesce has a later branch that could fail where it is not taken."""
    return not all(cannot_fail(a) for a in call.args[1:])


def _scatter(pieces: list[tuple[np.ndarray, pa.Array]], n: int, dtype: pa.DataType) -> pa.Array:
    """The values of ``pieces`` (row indices, values) put back in row order."""
    indices = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0, np.int64)
    values = pa.concat_arrays([p[1] for p in pieces]) if pieces else pa.array([], dtype)
    order = np.empty(n, np.int64)
    order[indices] = np.arange(len(indices))
    return values.take(pa.array(order))


def _values(value: Value, rows: int, dtype: pa.DataType) -> pa.Array:
    out = flat(value, rows)
    return out if out.type == dtype else out.cast(dtype)


def lazy_case(call: Call, table: pa.Table, evaluate: Evaluator) -> pa.Array:
    """``case(c1, v1, ..., [else])``, each value over the rows its condition selects."""
    has_else = call.option("else")
    pairs = call.args[:-1] if has_else else call.args
    n, dtype = table.num_rows, _plain(call.dtype)
    undecided, rest = np.arange(n), table
    pieces: list[tuple[np.ndarray, pa.Array]] = []
    for cond, value in zip(pairs[0::2], pairs[1::2], strict=True):
        if len(undecided) == 0:
            break
        hit = pc.fill_null(flat(evaluate(cond, rest), rest.num_rows), False)
        mask = hit.to_numpy(zero_copy_only=False)
        if mask.any():
            taken = rest.filter(hit)
            pieces.append((undecided[mask], _values(evaluate(value, taken), taken.num_rows,
                                                    dtype)))
            rest = rest.filter(pc.invert(hit))
            undecided = undecided[~mask]
    if len(undecided):
        default = (_values(evaluate(call.args[-1], rest), rest.num_rows, dtype) if has_else
                   else pa.nulls(len(undecided), dtype))
        pieces.append((undecided, default))
    return _scatter(pieces, n, dtype)


def lazy_coalesce(call: Call, table: pa.Table, evaluate: Evaluator) -> pa.Array:
    """``coalesce(a, b, ...)``: b only over the rows where a is NULL, and so on."""
    n, dtype = table.num_rows, _plain(call.dtype)
    undecided, rest = np.arange(n), table
    pieces: list[tuple[np.ndarray, pa.Array]] = []
    for i, arg in enumerate(call.args):
        if len(undecided) == 0:
            break
        value = _values(evaluate(arg, rest), rest.num_rows, dtype)
        if i == len(call.args) - 1:
            pieces.append((undecided, value))
            break
        found = pc.is_valid(value)
        mask = found.to_numpy(zero_copy_only=False)
        pieces.append((undecided[mask], value.filter(found)))
        rest = rest.filter(pc.invert(found))
        undecided = undecided[~mask]
    return _scatter(pieces, n, dtype)


def lazy_connective(call: Call, table: pa.Table, evaluate: Evaluator) -> pa.Array:
    """``a AND b AND ...`` (or OR): each term only over the rows the terms before it left
    undecided (not yet false for AND, not yet true for OR), as Trino's short-circuit does:
    ``k <> 0 AND 10 / k > 1`` never divides by zero. Three-valued (Kleene) logic."""
    combine = pc.and_kleene if call.op == "and" else pc.or_kleene
    decisive = pa.scalar(call.op == "or")
    n = table.num_rows
    undecided, rest = np.arange(n), table
    pieces: list[tuple[np.ndarray, pa.Array]] = []
    current: pa.Array | None = None
    for term in call.args:
        value = _values(evaluate(term, rest), rest.num_rows, pa.bool_())
        current = value if current is None else combine(current, value)
        done = pc.fill_null(pc.equal(current, decisive), False)
        mask = done.to_numpy(zero_copy_only=False)
        if mask.any():
            pieces.append((undecided[mask], current.filter(done)))
            keep = pc.invert(done)
            rest, current, undecided = rest.filter(keep), current.filter(keep), undecided[~mask]
        if len(undecided) == 0:
            break
    if len(undecided) and current is not None:
        pieces.append((undecided, current))
    return _scatter(pieces, n, pa.bool_())


def _plain(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


LAZY: dict[str, Callable[[Call, pa.Table, Evaluator], pa.Array]] = {
    "case": lazy_case, "coalesce": lazy_coalesce, "and": lazy_connective,
    "or": lazy_connective}
"""The calls evaluated branch by branch, by op."""
