"""The scalar function library: every function mpp evaluates, registered by name.

A :class:`Function` is data: its SQL name (and aliases), how many arguments it takes, a typing
rule (argument types -> parameter types and result type), which arguments must be constants
(pyarrow kernels take patterns and digits as options), and a kernel over Arrow values. The
binder (:mod:`mpp.sql.expressions`) binds any sqlglot function call through :func:`lookup`;
the evaluator (:mod:`mpp.logical.evaluate`) dispatches a bound ``Call`` to
:data:`KERNELS` by its ``op``. Adding a function is one ``register(...)`` call in one of the
modules below; docs/functions.md lists them with Trino's semantics.

Kernels run over whole columns with pyarrow.compute (never a Python loop over rows), receive
``(call, args, n)``: the bound call (for its options and type), the evaluated arguments (Arrow
arrays, or scalars for constants) and the row count.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa

from mpp.logical.expr import Call

# pa.Array | pa.ChunkedArray | pa.Scalar; pyarrow ships no type information, so: Any.
Value: TypeAlias = Any
Kernel: TypeAlias = Callable[[Call, list[Value], int], Value]
# Argument types -> (the type each argument is coerced to, the result type), or None when the
# function does not apply to those types.
Signature: TypeAlias = tuple[tuple[pa.DataType, ...], pa.DataType]
TypingRule: TypeAlias = Callable[[Sequence[pa.DataType]], Signature | None]


@dataclass(frozen=True)
class Function:
    """A scalar SQL function: name, arity, typing rule and kernel.

    ``arity`` is (least, most) arguments (most None: any number); ``constants`` are the
    positions of arguments that must be constants; ``usage`` is how errors show its
    signature (``split_part(varchar, varchar, bigint)``).
    """

    name: str
    arity: tuple[int, int | None]
    typing: TypingRule
    kernel: Kernel
    usage: str
    aliases: tuple[str, ...] = ()
    constants: tuple[int, ...] = ()

    def arity_text(self) -> str:
        """``2 arguments``, ``2 or 3 arguments``, ``at least 2 arguments``."""
        low, high = self.arity
        if high is None:
            return f"at least {low} argument{'s' if low != 1 else ''}"
        if low == high:
            return f"{low} argument{'s' if low != 1 else ''}"
        if high == low + 1:
            return f"{low} or {high} arguments"
        return f"{low} to {high} arguments"


FUNCTIONS: dict[str, Function] = {}
"""Every function by its name and aliases (lower case)."""
KERNELS: dict[str, Kernel] = {}
"""Kernels by the ``op`` of a bound Call: functions, and operators bound by the binder's own
handlers (``is_distinct_from``, ``date_add``) that users cannot call by that name."""
_SPECIAL: set[str] = set()


def register(function: Function) -> Function:
    """Add ``function`` under its name and aliases; its kernel evaluates ``Call(name, ...)``."""
    for name in (function.name, *function.aliases):
        assert name not in FUNCTIONS, f"function {name} registered twice"
        FUNCTIONS[name] = function
    KERNELS[function.name] = function.kernel
    return function


def register_kernel(op: str, kernel: Kernel, *, names: Sequence[str] = ()) -> None:
    """Add the kernel of ``op``, a call the binder builds with its own handler (date_diff,
    extract, ...). ``names`` are the SQL names that reach that handler, for suggestions."""
    assert op not in KERNELS, f"kernel {op} registered twice"
    KERNELS[op] = kernel
    _SPECIAL.update(names)


def special(*names: str) -> None:
    """Names of functions the binder binds with its own handlers (for suggestions)."""
    _SPECIAL.update(names)


def lookup(name: str) -> Function | None:
    """The function called ``name`` (any case), or None."""
    return FUNCTIONS.get(name.lower())


def known_names() -> list[str]:
    """Every function name mpp accepts (registered, aliases, and those bound specially)."""
    return sorted(set(FUNCTIONS) | _SPECIAL)


def suggestions(name: str, extra: Sequence[str] = ()) -> list[str]:
    """The closest names to ``name`` that mpp has (difflib's ratio), best first."""
    return difflib.get_close_matches(name.lower(), known_names() + list(extra), n=3, cutoff=0.6)


def as_array(value: Value, n: int) -> pa.Array | pa.ChunkedArray:
    """``value`` as an array of ``n`` rows (a scalar is repeated)."""
    if isinstance(value, pa.Scalar):
        return pa.repeat(value, n)
    return value


def flat(value: Value, n: int) -> pa.Array:
    """``value`` as one contiguous array of ``n`` rows."""
    value = as_array(value, n)
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def constant(value: Value) -> Any:
    """The Python value of a constant argument (a scalar, as constants evaluate)."""
    assert isinstance(value, pa.Scalar), "constant argument expected"
    return value.as_py()


from mpp.functions import conditional, numeric, strings, temporal  # noqa: E402,F401

__all__ = ["FUNCTIONS", "KERNELS", "Function", "Kernel", "Signature", "Value", "as_array",
           "constant", "flat", "known_names", "lookup", "register", "register_kernel", "special",
           "suggestions"]
