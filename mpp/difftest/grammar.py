"""The generator's grammar: named, weighted productions, and the state of one generation.

Each feature of the SQL subset the generator produces is a :class:`Production`: a name, the
site of the query it fills (``expr``, ``from``, ``join_key``, ``shape``, ...), a weight, and a
function building a sqlglot AST for it. Optional clauses are productions too (site
``option``), whose weight is the probability of using them. A new SQL feature adds one
production in one place; the coverage the CI test checks (every production used at least once)
then includes it automatically.

A production behind a ``flag`` is only chosen when that flag is enabled: the flags gate the
constructs that hit known engine bugs, so the CI run stays green until the fix is merged and
the integrator switches the flag on.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlglot import exp

OUTPUT_NAME = re.compile(r"c\d+")  # the names generated blocks give their outputs
INT_TYPES = ("tinyint", "smallint", "integer", "bigint")
KINDS = ("int", "double", "string", "date", "timestamp", "bool")
_KIND_OF = {**dict.fromkeys(INT_TYPES, "int"), "double": "double", "varchar": "string",
            "date": "date", "timestamp": "timestamp", "boolean": "bool"}
# The SQL type a kind is given when a production makes a new value of it.
TYPE_OF_KIND = {"int": "bigint", "double": "double", "string": "varchar", "date": "date",
                "timestamp": "timestamp", "bool": "boolean"}


def kind_of(sql_type: str) -> str:
    """The kind (int, double, string, date, timestamp, bool) of a SQL type name."""
    return _KIND_OF[sql_type]


def known(sql_type: str) -> bool:
    """True for the SQL types the generator has a kind for."""
    return sql_type in _KIND_OF


def wider(a: str, b: str) -> str:
    """The type Trino computes ``a op b`` in, for two types of one kind (ints widen)."""
    if a in INT_TYPES and b in INT_TYPES:
        return a if INT_TYPES.index(a) >= INT_TYPES.index(b) else b
    if "double" in (a, b):
        return "double"
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    return a


@dataclass(frozen=True, slots=True)
class Typed:
    """A generated expression and its SQL type (as mpp and Trino type it)."""

    node: exp.Expr
    type: str
    sum_only: bool = False  # a column only ever summed (see mpp.difftest.data.SUM_ONLY)

    @property
    def kind(self) -> str:
        """The kind of the expression's type."""
        return kind_of(self.type)


@dataclass(frozen=True, slots=True)
class Env:
    """What an expression may refer to.

    ``leaves`` are the expressions usable as they are: the columns in scope, or above an
    aggregate the GROUP BY keys. When ``agg_input`` is set, aggregate calls over those columns
    are leaves too. ``depth`` bounds the nesting still allowed.
    """

    leaves: tuple[Typed, ...]
    agg_input: tuple[Typed, ...] | None = None
    depth: int = 2
    bare: frozenset[str] = frozenset()  # columns (as written) whose name alone is unambiguous

    @classmethod
    def of(cls, scope: Sequence[Typed], depth: int,
           keys: Sequence[Typed] | None = None) -> Env:
        """The environment over the columns ``scope``; with ``keys``, the one above an
        aggregate of ``scope`` grouped by ``keys``. Sum-only columns are no leaves."""
        names = Counter(t.node.name for t in scope if isinstance(t.node, exp.Column))
        # Outputs of nested blocks (c0, c1, ...) stay qualified: a bare c0 in GROUP BY or
        # ORDER BY could also name the block's own output c0, which engines resolve differently.
        bare = frozenset(t.node.sql() for t in scope
                         if isinstance(t.node, exp.Column) and names[t.node.name] == 1
                         and not OUTPUT_NAME.fullmatch(t.node.name))
        if keys is None:
            return cls(tuple(t for t in scope if not t.sum_only), None, depth, bare)
        return cls(tuple(keys), tuple(scope), depth, bare)

    def deeper(self) -> Env:
        """The environment of a sub-expression: one level less to nest."""
        return replace(self, depth=max(0, self.depth - 1))

    def of_kind(self, kind: str) -> list[Typed]:
        """The leaves of kind ``kind``."""
        return [t for t in self.leaves if t.kind == kind]

    def inputs(self) -> Env:
        """The environment of an aggregate's argument: the aggregate's input columns."""
        assert self.agg_input is not None
        return Env(tuple(t for t in self.agg_input if not t.sum_only), None, 1, self.bare)


@dataclass(frozen=True, slots=True)
class Production:
    """One named, weighted alternative of the grammar.

    ``kinds`` (expression productions) are the kinds of value it can produce; ``leaf`` ones
    need no nesting depth; ``aggregate`` ones are aggregate calls, allowed only where the
    environment has an aggregate input. ``flag`` gates a production behind a known bug.
    """

    name: str
    site: str
    weight: float
    build: Callable[..., Any] | None
    kinds: frozenset[str] = frozenset()
    flag: str | None = None
    leaf: bool = False
    aggregate: bool = False


class Grammar:
    """The registry of productions, by name and by site."""

    def __init__(self) -> None:
        self.productions: dict[str, Production] = {}

    def add(self, production: Production) -> Production:
        """Register ``production`` (names are unique across sites)."""
        if production.name in self.productions:
            raise ValueError(f"production {production.name!r} is registered twice")
        self.productions[production.name] = production
        return production

    def production(self, site: str, weight: float, *, name: str | None = None,
                   kinds: Iterable[str] = (), flag: str | None = None, leaf: bool = False,
                   aggregate: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a builder function as a production of ``site``."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Production(name or fn.__name__.strip("_"), site, weight, fn,
                                frozenset(kinds), flag, leaf, aggregate))
            return fn

        return register

    def option(self, name: str, probability: float, flag: str | None = None) -> None:
        """Register an optional feature used with ``probability`` where the generator asks."""
        self.add(Production(name, "option", probability, None, flag=flag))

    def at(self, site: str) -> list[Production]:
        """The productions of ``site``, in registration order."""
        return [p for p in self.productions.values() if p.site == site]

    def flags(self) -> set[str]:
        """Every flag some production is gated behind."""
        return {p.flag for p in self.productions.values() if p.flag is not None}


GRAMMAR = Grammar()
"""The grammar every production module registers into."""


@dataclass
class Generator:
    """The state of generating queries: the tables, the random source, the flags, and the
    count of each production used (the coverage)."""

    tables: Mapping[str, Sequence[tuple[str, str]]]  # table -> usable (column, SQL type)
    rng: random.Random
    flags: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()  # tables with columns the generator may not use
    grammar: Grammar = GRAMMAR
    used: Counter[str] = field(default_factory=Counter)
    _names: Counter[str] = field(default_factory=Counter)

    def enabled(self, production: Production) -> bool:
        """True unless the production is gated behind a flag that is off."""
        return production.flag is None or production.flag in self.flags

    def fresh(self, prefix: str) -> str:
        """A new name (``t0``, ``t1``, ...), unique within the query."""
        n = self._names[prefix]
        self._names[prefix] += 1
        return f"{prefix}{n}"

    def chance(self, name: str) -> bool:
        """Whether to use optional feature ``name`` this time (never if its flag is off)."""
        p = self.grammar.productions[name]
        if not self.enabled(p) or self.rng.random() >= p.weight:
            return False
        self.used[name] += 1
        return True

    def run(self, site: str, *args: Any, accept: Callable[[Production], bool] = lambda p: True
            ) -> Any:
        """Build with a weighted choice among the enabled, accepted productions of ``site``.

        A builder returns None when it cannot apply here (no column of the kind it needs);
        the next choice is then drawn from the remaining productions.
        """
        candidates = [p for p in self.grammar.at(site) if self.enabled(p) and accept(p)]
        while candidates:
            p = self.rng.choices(candidates, weights=[c.weight for c in candidates])[0]
            assert p.build is not None
            out = p.build(self, *args)
            if out is not None:
                self.used[p.name] += 1
                return out
            candidates.remove(p)
        raise LookupError(f"no production of {site!r} applies")

    def pick(self, items: Sequence[Any]) -> Any:
        """One of ``items``, uniformly."""
        return items[self.rng.randrange(len(items))]
