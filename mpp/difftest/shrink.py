"""Shrinking a failing query to a minimal one that still fails the same way.

The shrinker knows nothing of mpp: it takes a sqlglot tree and a predicate ``fails(tree)`` and
greedily applies the first simplification that keeps the predicate true, until none does (or
the budget of predicate calls is spent). Simplifications, tried from the top of the tree down so
that large parts go first:

* drop an optional clause (WHERE, HAVING, GROUP BY, ORDER BY, LIMIT, OFFSET, WITH, DISTINCT),
* drop one element of a list (a select item, a join, a CTE, a key, an IN item, a CASE branch),
* replace a node by one of its children (``a AND b`` -> ``a``, ``CAST(x AS ..)`` -> ``x``),
* replace the whole query by one of its subqueries.

Most candidates are invalid SQL or fail differently; the predicate (which runs the query) is
what rejects them, so the shrinker itself never needs to know the grammar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlglot import exp

_CLAUSES = (exp.Where, exp.Having, exp.Group, exp.Order, exp.Limit, exp.Offset, exp.With,
            exp.Distinct)
_KEEP = (exp.Identifier, exp.TableAlias, exp.Table, exp.From, exp.Star, exp.DataType)
# Parts of the query's structure: never put in place of, or replaced by, an expression.
_STRUCTURE = (exp.Query, exp.Subquery, exp.Join, exp.From, exp.Table, exp.CTE, exp.With,
              exp.TableAlias, exp.Alias, exp.Ordered, *_CLAUSES)


def size(tree: exp.Expr) -> tuple[int, int]:
    """How big a query is: its node count, then the length of its text."""
    return sum(1 for _ in tree.walk()), len(tree.sql())


def candidates(tree: exp.Expr) -> Iterator[exp.Expr]:
    """Every one-step simplification of ``tree`` (each a new tree), top of the tree first."""
    count = sum(1 for _ in tree.walk())
    for i in range(count):
        node = next(_nth(tree, i))
        if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
            yield node.this.copy()
        if node.parent is None or isinstance(node, _KEEP):
            continue
        if _removable(node):
            copy, target = _copy_at(tree, i)
            target.pop()
            yield copy
        if isinstance(node, _STRUCTURE):
            continue
        for j, child in enumerate(node.iter_expressions()):
            if isinstance(child, (*_KEEP, *_STRUCTURE)):
                continue
            copy, target = _copy_at(tree, i)
            target.replace(list(target.iter_expressions())[j].copy())
            yield copy


def _nth(tree: exp.Expr, i: int) -> Iterator[exp.Expr]:
    for k, node in enumerate(tree.walk()):
        if k == i:
            yield node
            return


def _copy_at(tree: exp.Expr, i: int) -> tuple[exp.Expr, exp.Expr]:
    copy = tree.copy()
    return copy, next(_nth(copy, i))


def _removable(node: exp.Expr) -> bool:
    """True for an optional clause or one element of a list with others left."""
    if isinstance(node, _CLAUSES):
        return True
    siblings = node.parent.args.get(node.arg_key) if node.parent is not None else None
    return isinstance(siblings, list) and len(siblings) > 1


def shrink(tree: exp.Expr, fails: Callable[[exp.Expr], bool], *, budget: int = 400,
           on_step: Callable[[exp.Expr], Any] | None = None) -> exp.Expr:
    """The smallest variant of ``tree`` found that still ``fails`` (``tree`` itself must).

    Greedy: take the first smaller candidate that fails, start again from it; stop when no
    candidate fails or after ``budget`` calls of ``fails``.
    """
    best, calls = tree, 0
    improved = True
    while improved and calls < budget:
        improved = False
        seen: set[str] = set()
        for candidate in candidates(best):
            text = candidate.sql()
            if text in seen or size(candidate) >= size(best):
                continue
            seen.add(text)
            calls += 1
            if fails(candidate):
                best, improved = candidate, True
                if on_step is not None:
                    on_step(best)
                break
            if calls >= budget:
                break
    return best


def shrink_settings(settings: dict[str, Any], fails: Callable[[dict[str, Any]], bool]
                    ) -> dict[str, Any]:
    """``settings`` without every entry whose removal (back to the default) keeps it failing."""
    out = dict(settings)
    for name in sorted(settings):
        trial = {k: v for k, v in out.items() if k != name}
        if fails(trial):
            out = trial
    return out
