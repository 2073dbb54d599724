"""Choose each DISTINCT aggregation's strategy; apply the seed's rewrite where it is chosen.

The seed's lesson (3-2, "avoid data skew"): ``SELECT date, count(DISTINCT user_id) ... GROUP BY
date`` sends every row of a day to one task, so the day with 40% of the traffic is a
straggler; ``SELECT date, count(*) FROM (SELECT DISTINCT date, user_id ...) GROUP BY date``
spreads the distinct step over (date, user_id). Like Trino's ``distinct_aggregations_strategy``
the setting ``aggregate.distinct_strategy`` picks one of:

* ``single_step``: raw rows are exchanged by the group key; each final task de-duplicates.
* ``pre_aggregate``: each fragment keeps its distinct (group, x) pairs first, then the pairs are
  exchanged by the group key (less data moves, but the hot group still lands in one task).
* ``rewrite``: ``Aggregate[g; count(DISTINCT x)]`` becomes
  ``Aggregate[g; count(x)] <- Aggregate[g, x]``: the inner DISTINCT is exchanged by the hash of
  (g, x), so a hot g is spread over every task; the outer aggregation gets one row per
  (g, x) and pre-aggregates it per task before its own, tiny, exchange by g. ``count(x)`` and not
  ``count(*)``: the inner groups include (g, NULL), which count(DISTINCT x) ignores. Any
  ``f(DISTINCT x)`` becomes ``f(x)`` the same way. Other aggregates in the same SELECT are split
  (count/count(*)/count_if -> sum0 of counts, sum -> sum of sums, min/max, bool_and/bool_or,
  arbitrary -> themselves); a plain ``avg`` is not (it would need a division above the outer
  aggregate), nor are the variances, min_by/max_by or approx_distinct (their inner result is no
  state the outer step could merge), so such a query is left unrewritten, with the reason.
* ``automatic`` decides per Aggregate from catalog statistics (:func:`choose_strategy`).

Example (``aggregate.distinct_strategy=rewrite``)::

    Before:  Aggregate: group by [date]; count(DISTINCT user_id) AS n
    After:   Aggregate: group by [date]; count(user_id) AS n, strategy=rewrite (...)
             └─ Aggregate: group by [date, user_id]

Used configurations:
    aggregate.distinct_strategy (automatic | single_step | pre_aggregate | rewrite).
    optimizer.rewrite_count_distinct (bool): when off, nothing is rewritten (rewrite and
        automatic become pre_aggregate).
    execution.hash_buckets: the final tasks a hot group is compared against.
"""

from __future__ import annotations

import dataclasses
import math

from mpp.config import PlannerContext
from mpp.logical.expr import AggFunc, AggregateCall, Column
from mpp.logical.nodes import Aggregate, DistinctStrategy, LogicalNode
from mpp.optimizer.estimate import column_origin, column_stats, estimate
from mpp.optimizer.rule import transform_up

_SETTING = "aggregate.distinct_strategy"
HOT_FACTOR = 1.5  # a group over 1.5 x a bucket's fair share of rows makes its task a straggler
USEFUL_REDUCTION = 0.8  # pre-aggregating pays when a fragment keeps <= 80% of its rows
# How plain aggregates split into an inner (per (g, x)) and an outer (per g) function.
# A count's outer step is sum0, not sum: over no rows at all (a global aggregate of an empty
# input) the count is 0, where a sum is NULL.
_SPLIT = {AggFunc.COUNT_STAR: AggFunc.SUM0, AggFunc.COUNT: AggFunc.SUM0,
          AggFunc.SUM: AggFunc.SUM, AggFunc.MIN: AggFunc.MIN, AggFunc.MAX: AggFunc.MAX,
          AggFunc.SUM0: AggFunc.SUM0, AggFunc.COUNT_IF: AggFunc.SUM0,
          AggFunc.BOOL_AND: AggFunc.BOOL_AND, AggFunc.BOOL_OR: AggFunc.BOOL_OR,
          AggFunc.ARBITRARY: AggFunc.ARBITRARY}


def rewrite_count_distinct(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Resolve every DISTINCT Aggregate's strategy; rewrite those resolved to ``rewrite``."""
    return _resolve(plan, ctx, rewrite=True)


def keep_count_distinct(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """The rule switched off: no rewrite; rewrite and automatic become pre_aggregate."""
    return _resolve(plan, ctx, rewrite=False)


def _resolve(plan: LogicalNode, ctx: PlannerContext, *, rewrite: bool) -> LogicalNode:
    chosen = DistinctStrategy(str(ctx.settings[_SETTING]))

    def visit(node: LogicalNode) -> LogicalNode:
        if not isinstance(node, Aggregate) or not any(c.distinct for c in node.aggregates):
            return node
        if node.distinct_strategy is not DistinctStrategy.AUTOMATIC:
            return node  # decided already (a plan optimized twice)
        if not rewrite and chosen in (DistinctStrategy.REWRITE, DistinctStrategy.AUTOMATIC):
            return _with(node, DistinctStrategy.PRE_AGGREGATE,
                         "optimizer.rewrite_count_distinct=off")
        if chosen is DistinctStrategy.AUTOMATIC:
            strategy, reason = choose_strategy(node, ctx)
        else:
            strategy, reason = chosen, f"{_SETTING}={chosen.value}"
        if strategy is not DistinctStrategy.REWRITE:
            return _with(node, strategy, reason)
        blocker = why_not_rewritable(node)
        if blocker:
            return _with(node, DistinctStrategy.PRE_AGGREGATE,
                         f"{reason}; not rewritten: {blocker}")
        return split_distinct(node, reason, ctx.hash_buckets)

    return transform_up(plan, visit)


def _with(node: Aggregate, strategy: DistinctStrategy, reason: str) -> Aggregate:
    return dataclasses.replace(node, distinct_strategy=strategy, reason=reason)


def why_not_rewritable(node: Aggregate) -> str:
    """Why ``node`` cannot be split into two aggregations ("" when it can)."""
    args = {c.arg.name for c in node.aggregates if c.distinct and c.arg is not None}
    if len(args) > 1:
        return f"DISTINCT over several arguments ({', '.join(sorted(args))})"
    plain = [c for c in node.aggregates if not c.distinct and c.func not in _SPLIT]
    if plain and plain[0].func is AggFunc.AVG:
        return f"{plain[0]} has no two-step form without a division above the aggregate"
    if plain:
        return f"{plain[0]} has no two-step form over the distinct (group, x) rows"
    return ""


def split_distinct(node: Aggregate, reason: str, buckets: int) -> Aggregate:
    """``Aggregate[g; f(DISTINCT x), h(y)]`` -> ``Aggregate[g; f(x), h'(r)] <- Aggregate[g, x;
    h(y) AS r]`` (same output fields as ``node``).

    The inner Aggregate is marked single_step (no per-fragment DISTINCT before its exchange)
    when a fragment's (g, x) pairs are estimated to be nearly all distinct, as for the seed's
    (date, user_id): the partial step would cost a hash table and a merge for nothing.
    """
    x = next(c.arg for c in node.aggregates if c.distinct and c.arg is not None)
    keys = node.group_by + (() if x.name in {g.name for g in node.group_by} else (x,))
    inner_calls: list[AggregateCall] = []
    inner_names: list[str] = []
    outer: list[AggregateCall] = []
    for i, call in enumerate(node.aggregates):
        if call.distinct:
            outer.append(dataclasses.replace(call, arg=x, distinct=False))
            continue
        name = f"__r{i}"
        inner_calls.append(call)
        inner_names.append(name)
        outer.append(dataclasses.replace(call, func=_SPLIT[call.func],
                                         arg=Column(name, call.dtype)))
    # The inner DISTINCT pre-aggregates per task only where that shrinks what it exchanges.
    step, figures, merge = _by_reduction(node, buckets)
    inner = Aggregate(node.input, keys, tuple(inner_calls), tuple(inner_names), step,
                      f"inner DISTINCT of the rewrite; {figures}", merge)
    return Aggregate(inner, node.group_by, tuple(outer), node.agg_names,
                     DistinctStrategy.REWRITE, reason)


def choose_strategy(node: Aggregate, ctx: PlannerContext) -> tuple[DistinctStrategy, str]:
    """``automatic``: the strategy for ``node`` and the estimates behind it.

    In order: no group key (one final task would take everything) -> rewrite; the hottest
    group (``ColumnStats.top_values``) over ``HOT_FACTOR`` x a bucket's fair share of rows ->
    rewrite; fewer groups than buckets -> rewrite; otherwise pre_aggregate when a fragment's
    distinct (g, x) pairs are estimated to shrink its rows to <= ``USEFUL_REDUCTION``, else
    single_step (pre-aggregating would cost a hash table and move as many rows).
    """
    buckets = ctx.hash_buckets
    if not node.group_by:
        return DistinctStrategy.REWRITE, "no group key: one final task would do all the work"
    hot = hottest_group(node)
    if hot is not None and hot[1] * buckets > HOT_FACTOR:
        return DistinctStrategy.REWRITE, (
            f"group key skewed: {hot[0]} holds ~{hot[1]:.0%} of rows > {HOT_FACTOR:g}/"
            f"{buckets} buckets")
    groups = estimate(node).rows
    if groups < buckets:
        return DistinctStrategy.REWRITE, f"~{groups:,.0f} groups < {buckets} buckets"
    strategy, figures, _ = _by_reduction(node, buckets)
    return strategy, f"no hot group; {figures}"


def hottest_group(node: Aggregate) -> tuple[str, float] | None:
    """``("key=value", share of input rows)`` of the most frequent group key value, if known.

    With several group keys, the most frequent value of each key bounds the hottest group from
    above; the smallest of those bounds is used.
    """
    best: tuple[str, float] | None = None
    for key in node.group_by:
        top = top_value(node.input, key.name)
        if top is None:
            return None
        if best is None or top[1] < best[1]:
            best = top
    return best


def top_value(node: LogicalNode, name: str) -> tuple[str, float] | None:
    """``("name=value", share of the table's rows)`` of field ``name``'s most frequent value."""
    origin = column_origin(node, name)
    if origin is None:
        return None
    stats = origin[0].table.stats
    top = stats.column(origin[1]).top_values
    if not top or stats.row_count <= 0:
        return None
    return f"{name}={top[0][0]}", top[0][1] / stats.row_count


def _partition_key(node: LogicalNode, name: str) -> bool:
    """True if field ``name`` comes from a partition column of its table (one value a file)."""
    origin = column_origin(node, name)
    return origin is not None and origin[1] in origin[0].table.partition_columns


def _by_reduction(node: Aggregate, buckets: int) -> tuple[DistinctStrategy, str, bool]:
    """pre_aggregate or single_step for the (g, x) step, why, and whether exchange combiners
    should re-merge the partial pairs of several fragments.

    Few distinct pairs per fragment: pre_aggregate (and merging pays). Nearly all distinct:
    single_step, unless x has a hot value (``top_values``): then pre_aggregate anyway, since the
    hot value's duplicates would otherwise all travel to its (g, x) bucket, the skew the rewrite
    is meant to remove (the seed's users are Zipf-distributed: the top user has ~10% of the
    rows); the combiners skip the merge, which would shrink nothing else.
    """
    rows = estimate(node.input).rows
    x = next(c.arg for c in node.aggregates if c.distinct and c.arg is not None)
    if any(column_stats(node.input, c.name).distinct_count is None
           for c in node.group_by + (x,)):
        return DistinctStrategy.PRE_AGGREGATE, "no distinct estimates: the default", True
    pairs = estimate(dataclasses.replace(node, group_by=node.group_by + (x,))).rows
    origin = column_origin(node.input, x.name)
    fragments = max(1, origin[0].table.stats.fragment_count) if origin else 1
    per_fragment = rows / fragments
    measured = None
    if origin is not None and all(_partition_key(node.input, g.name) for g in node.group_by):
        # Every fragment holds one value of each group key (they are partition columns, as
        # date is for access_log), so its pairs are its distinct x values: counted per
        # fragment when the table was written (Zipf users repeat far more than uniform draws
        # from NDV(x) would), else drawn from the x values alone.
        measured = column_stats(node.input, x.name).fragment_distinct
        pairs = min(pairs, float(column_stats(node.input, x.name).distinct_count or pairs))
    if measured is not None:
        kept = min(per_fragment, measured)
    else:
        # Distinct values among n draws from P equally likely pairs: P (1 - e^(-n/P)).
        kept = pairs * -math.expm1(-per_fragment / pairs) if pairs > 0 else per_fragment
    ratio = kept / per_fragment if per_fragment > 0 else 1.0
    figures = (f"~{kept:,.0f} distinct (g, x) of ~{per_fragment:,.0f} rows per fragment "
               f"({ratio:.0%}{', counted per fragment at write' if measured is not None else ''})")
    if ratio <= USEFUL_REDUCTION:
        return DistinctStrategy.PRE_AGGREGATE, figures, True
    hot_x = top_value(node.input, x.name)
    if hot_x is not None and hot_x[1] * buckets > HOT_FACTOR:
        return DistinctStrategy.PRE_AGGREGATE, (
            f"{figures}, but {hot_x[0]} holds ~{hot_x[1]:.0%} of rows > {HOT_FACTOR:g}/"
            f"{buckets} buckets: its duplicates go per fragment, no merge in the exchange"), False
    return DistinctStrategy.SINGLE_STEP, f"{figures}: pre-aggregating saves little", True
