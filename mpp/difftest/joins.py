"""Join-key productions and ON conditions: equalities between the two sides, plus more.

Keys pair columns of one type, integers of different widths (compared as the wider), computed
keys (``a.k + 1 = b.k``), dates against timestamps; NULL keys never match. An ON condition may
add a residual over both sides or a condition on one side only (which, in a LEFT JOIN, must not
drop left rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlglot import exp

from mpp.difftest.expressions import predicate, sql
from mpp.difftest.grammar import GRAMMAR, INT_TYPES, Env, Generator, Typed

GRAMMAR.option("join_key_multi", 0.3)
GRAMMAR.option("join_key_swapped", 0.3)
GRAMMAR.option("join_key_repeat", 0.15, flag="dup_key_column")
GRAMMAR.option("on_residual", 0.25)
GRAMMAR.option("on_one_side", 0.2)


def on_condition(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]) -> exp.Expr:
    """Equality keys between the two sides, maybe more conjuncts on one or both sides.

    Unless ``dup_key_column`` is on, no column is used in two keys on the same side (issue 12:
    ``ON a.k = b.k AND a.k = b.j`` crashes), counting the equalities between the sides that
    the extra conjuncts bring (the binder takes those for keys too).
    """
    keys = _keys(gen, left, right)
    terms = []
    for lhs, rhs in keys:
        a, b = (rhs, lhs) if gen.chance("join_key_swapped") else (lhs, rhs)
        terms.append(sql(":a = :b", a=a.node.copy(), b=b.node.copy()))
    scope = Env.of(tuple(left) + tuple(right), 1)
    extra = []
    if gen.chance("on_residual"):
        extra.append(predicate(gen, scope))
    if gen.chance("on_one_side"):
        side = tuple(right) if gen.rng.random() < 0.6 else tuple(left)
        extra.append(predicate(gen, replace(scope, leaves=side)))
    if "dup_key_column" not in gen.flags:
        ids = _Ids(left, right)
        used = (set().union(*(ids.of(k[0].node) for k in keys)),
                set().union(*(ids.of(k[1].node) for k in keys)))
        extra = [t for t in extra if not ids.repeats_a_key(t, used)]
    return exp.and_(*terms, *extra, copy=False)


def _keys(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]
          ) -> list[tuple[Typed, Typed]]:
    """One to three key pairs; a column repeated only with ``join_key_repeat``."""
    ids = _Ids(left, right)
    keys: list[tuple[Typed, Typed]] = [gen.run("join_key", left, right)]
    for _ in range(gen.pick((1, 2)) if gen.chance("join_key_multi") else 0):
        for _attempt in range(5):
            pair = gen.run("join_key", left, right)
            # Compared as columns: CAST(b.k AS bigint) is b.k itself once bound.
            if all(not (ids.of(pair[0].node) & ids.of(k[0].node)
                        or ids.of(pair[1].node) & ids.of(k[1].node)) for k in keys):
                keys.append(pair)
                break
    if gen.chance("join_key_repeat"):
        first = keys[0][0]
        # A right key of the same type: a wider one would make the left key a cast of it,
        # a column of its own (issue 12's crash needs the same column twice).
        others = [r for r in right if r.type == first.type and r.node != keys[0][1].node]
        if others:
            keys.append((Typed(first.node.copy(), first.type), gen.pick(others)))
    return keys


class _Ids:
    """Which column of which side a column reference means (bare names resolved)."""

    def __init__(self, left: Sequence[Typed], right: Sequence[Typed]):
        self.left = {self._id(t.node) for t in left}
        self.right = {self._id(t.node) for t in right}
        self.bare = {n.split(".", 1)[1]: n for n in self.left | self.right}

    @staticmethod
    def _id(column: exp.Expr) -> str:
        return f"{column.text('table').lower()}.{column.name.lower()}"

    def of(self, node: exp.Expr) -> set[str]:
        """The columns ``node`` refers to, as ``alias.column``."""
        out = set()
        for c in node.find_all(exp.Column):
            out.add(self._id(c) if c.table else self.bare.get(c.name.lower(), c.name.lower()))
        return out

    def repeats_a_key(self, term: exp.Expr, used: tuple[set[str], set[str]]) -> bool:
        """True if a conjunct of ``term`` is an equality between the sides (a key once bound)
        using a column already in a key on its side (each such conjunct is added to ``used``)."""
        for conjunct in _conjuncts(term):
            if not isinstance(conjunct, exp.EQ):
                continue
            a, b = self.of(conjunct.left), self.of(conjunct.right)
            for x, y in ((a, b), (b, a)):
                if x and y and x <= self.left and y <= self.right:
                    if x & used[0] or y & used[1]:
                        return True
                    used[0].update(x)
                    used[1].update(y)
        return False


def _conjuncts(node: exp.Expr) -> list[exp.Expr]:
    node = node.unnest()
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _pairs(left: Sequence[Typed], right: Sequence[Typed],
           same_type: bool) -> list[tuple[Typed, Typed]]:
    return [(a, b) for a in left for b in right
            if a.kind == b.kind and (a.type == b.type) == same_type]


@GRAMMAR.production("join_key", 3)
def key_same_type(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]
                  ) -> tuple[Typed, Typed] | None:
    """a.k = b.k of one type (integers, strings, dates, doubles)."""
    pairs = [p for p in _pairs(left, right, True) if p[0].kind != "bool"]
    return gen.pick(pairs) if pairs else None


@GRAMMAR.production("join_key", 2)
def key_mixed_width(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]
                    ) -> tuple[Typed, Typed] | None:
    """a.k8 = b.k64: integer keys of different widths (compared as the wider)."""
    pairs = [p for p in _pairs(left, right, False) if p[0].kind == "int"]
    return gen.pick(pairs) if pairs else None


@GRAMMAR.production("join_key", 1.5)
def key_computed(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]
                 ) -> tuple[Typed, Typed] | None:
    """A computed key on one side: a.k + 1 = b.k, coalesce(a.k, 0) = b.k, ..."""
    pairs = [(a, b) for a in left for b in right if a.kind == b.kind == "int"]
    if not pairs:
        return None
    a, b = gen.pick(pairs)
    template = gen.pick((":a + 1", "CAST(:a AS bigint)", "coalesce(:a, 0)", ":a % 5", "-:a",
                         ":a * 2 - :a"))
    computed = Typed(sql(template, a=a.node.copy()), "bigint" if "bigint" in template
                     else max(a.type, "integer", key=INT_TYPES.index))
    return (computed, b) if gen.rng.random() < 0.5 else (a, Typed(sql(template, a=b.node.copy()),
                                                                 computed.type))


@GRAMMAR.production("join_key", 0.5)
def key_temporal(gen: Generator, left: Sequence[Typed], right: Sequence[Typed]
                 ) -> tuple[Typed, Typed] | None:
    """A date key against a timestamp key (compared as timestamps), or a truncated one."""
    pairs = [(a, b) for a in left for b in right
             if {a.kind, b.kind} <= {"date", "timestamp"} and a.kind != b.kind]
    if not pairs:
        return None
    a, b = gen.pick(pairs)
    if gen.rng.random() < 0.5:  # CAST(ts AS date) = day: matches whole days
        if a.kind == "timestamp":
            a = Typed(exp.cast(a.node.copy(), "date"), "date")
        else:
            b = Typed(exp.cast(b.node.copy(), "date"), "date")
    return a, b
