"""Conditional functions and NULL-aware comparisons, with Trino's semantics.

* ``greatest``/``least`` are NULL when any argument is (Trino; DuckDB skips NULLs);
* ``nullif(a, b)`` is NULL where a = b, else a (a's type);
* ``CASE``, ``IF`` and ``coalesce`` are evaluated lazily by :mod:`mpp.logical.evaluate`
  (each branch only over the rows still undecided); the kernels here combine values already
  evaluated for every row;
* ``a IS [NOT] DISTINCT FROM b`` compares NULL as a value: never NULL itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mpp.functions import (
    Function,
    Signature,
    Value,
    as_array,
    flat,
    register,
    register_kernel,
    special,
)
from mpp.functions.signatures import common
from mpp.logical.expr import Call


def case(call: Call, args: list[Value], n: int) -> Value:
    """``case(c1, v1, c2, v2, ..., [else])``: the first true condition's value."""
    pairs = args[:-1] if call.option("else") else args
    conds = [flat(c, n) for c in pairs[0::2]]
    values = [flat(v, n) for v in pairs[1::2]]
    if call.option("else"):
        values.append(flat(args[-1], n))
    # case_when treats a NULL condition as false, as SQL's CASE does.
    cond = pc.make_struct(*conds, field_names=[f"c{i}" for i in range(len(conds))])
    return pc.case_when(cond, *values)


def coalesce(call: Call, args: list[Value], n: int) -> Value:
    """The first non-NULL argument, row by row."""
    return pc.coalesce(*(flat(a, n) for a in args))


def _extreme(kernel: object) -> object:
    def run(call: Call, args: list[Value], n: int) -> Value:
        return kernel(*args, skip_nulls=False)  # type: ignore[operator]

    return run


def _nullif(call: Call, args: list[Value], n: int) -> Value:
    same = pc.fill_null(pc.equal(args[0], args[1]), False)
    return pc.if_else(same, pa.scalar(None, call.dtype), as_array(args[0], n))


def _distinct(call: Call, args: list[Value], n: int) -> Value:
    """``a IS DISTINCT FROM b``: a NULL equals a NULL and differs from any value."""
    a, b = (as_array(x, n) for x in args)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    differ = pc.fill_null(pc.not_equal(a, b), True)
    return pc.and_not(differ, both_null)


def _not_distinct(call: Call, args: list[Value], n: int) -> Value:
    return pc.invert(_distinct(call, args, n))


register_kernel("case", case)
register_kernel("coalesce", coalesce)
register_kernel("is_distinct_from", _distinct)
register_kernel("is_not_distinct_from", _not_distinct)
special("coalesce", "if", "mod", "cast")

register(Function("greatest", (1, None), common(kinds=("numeric", "string", "temporal")),
                  _extreme(pc.max_element_wise), "greatest(value, ...)"))
register(Function("least", (1, None), common(kinds=("numeric", "string", "temporal")),
                  _extreme(pc.min_element_wise), "least(value, ...)"))


def _nullif_types(types: Sequence[pa.DataType]) -> Signature | None:
    """Compared in their common type; the result is the first argument's type (Trino)."""
    signature = common()(types)
    if signature is None:
        return None
    first = types[0] if not pa.types.is_null(types[0]) else signature[1]
    return (first, signature[1]), first


register(Function("nullif", (2, 2), _nullif_types, _nullif, "nullif(value, value)"))
