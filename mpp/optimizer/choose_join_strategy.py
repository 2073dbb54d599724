"""Resolve each join's strategy AUTO to BROADCAST or PARTITIONED from table statistics.

The seed's two distributed joins: a *broadcast* join copies a small side to every task of the
big side (no exchange of the big side at all); a *partitioned* (distributed) join hash-exchanges
both sides on the join keys so equal keys meet in one task. Like DataFusion's JoinSelection
(``PartitionMode::Auto`` -> ``CollectLeft`` / ``Partitioned``), the rule estimates each side's
in-memory bytes (:mod:`mpp.optimizer.estimate`: row count x selectivity of pushed predicates x
width of the columns read) and broadcasts the right (build) side when it fits under the
threshold. For an INNER join whose left side is the small one, the sides are swapped (and a
Project restores the column order). A LEFT join can only broadcast its right side: every task
must see all right rows that could match its left rows, and each left row lives in one task.
The estimate and the threshold go into ``Join.reason``, which EXPLAIN prints.

Example::

    Before:  Join: inner on a.user_id = b.user_id, strategy=auto
    After:   Join: inner on a.user_id = b.user_id, strategy=broadcast
             (right ~22.9 MiB (1,000,000 rows) <= optimizer.broadcast_threshold_bytes 32.0 MiB,
             left ~1.5 GiB (100,000,000 rows))

Used configurations:
    optimizer.choose_join_strategy (bool): when off, AUTO joins become PARTITIONED.
    optimizer.broadcast_threshold_bytes (int): the largest side (estimated bytes) to broadcast.
    join.strategy (auto | broadcast | partitioned): force one strategy for every join.
"""

from __future__ import annotations

import dataclasses

from mpp.config import PlannerContext
from mpp.logical.expr import Column
from mpp.logical.nodes import Join, JoinKind, JoinStrategy, LogicalNode, Project
from mpp.optimizer.estimate import Estimate, estimate
from mpp.optimizer.rule import transform_up
from mpp.text import plural

_THRESHOLD = "optimizer.broadcast_threshold_bytes"


def choose_join_strategy(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Give every AUTO join a strategy and a reason, from estimated side sizes."""
    forced = str(ctx.settings["join.strategy"])
    threshold = int(ctx.settings[_THRESHOLD])

    def choose(node: LogicalNode) -> LogicalNode:
        if not isinstance(node, Join) or node.strategy is not JoinStrategy.AUTO:
            return node
        if forced != "auto":
            return dataclasses.replace(node, strategy=JoinStrategy(forced),
                                       reason=f"join.strategy={forced}")
        return _by_size(node, estimate(node.left), estimate(node.right), threshold)

    return transform_up(plan, choose)


def default_join_strategy(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """The rule switched off: AUTO joins become PARTITIONED (or what join.strategy forces)."""
    forced = str(ctx.settings["join.strategy"])
    strategy = JoinStrategy.PARTITIONED if forced == "auto" else JoinStrategy(forced)
    reason = ("optimizer.choose_join_strategy=off" if forced == "auto"
              else f"join.strategy={forced}")

    def resolve(node: LogicalNode) -> LogicalNode:
        if isinstance(node, Join) and node.strategy is JoinStrategy.AUTO:
            return dataclasses.replace(node, strategy=strategy, reason=reason)
        return node

    return transform_up(plan, resolve)


def _size(e: Estimate) -> str:
    value, unit = e.bytes, "B"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    rows = round(e.rows)
    return f"~{value:.1f} {unit} ({plural(rows, 'row')})"


def _limit(threshold: int) -> str:
    return f"{_THRESHOLD} {_size(Estimate(threshold, 1)).split(' (')[0].lstrip('~')}"


def _by_size(node: Join, left: Estimate, right: Estimate, threshold: int) -> LogicalNode:
    if right.bytes <= threshold:
        return dataclasses.replace(
            node, strategy=JoinStrategy.BROADCAST,
            reason=f"right {_size(right)} <= {_limit(threshold)}, left {_size(left)}")
    if node.kind is JoinKind.INNER and left.bytes <= threshold:
        swapped = dataclasses.replace(
            node, left=node.right, right=node.left, left_keys=node.right_keys,
            right_keys=node.left_keys, strategy=JoinStrategy.BROADCAST,
            reason=f"sides swapped: left {_size(left)} <= {_limit(threshold)}, "
                   f"right {_size(right)}")
        # Parents (and the plan's output) expect the original column order.
        cols = tuple(Column(f.name, f.dtype) for f in node.schema)
        return Project(swapped, cols, tuple(c.name for c in cols))
    return dataclasses.replace(
        node, strategy=JoinStrategy.PARTITIONED,
        reason=f"left {_size(left)}, right {_size(right)} > {_limit(threshold)}")
