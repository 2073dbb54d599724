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
A RIGHT join whose left side is small is flipped into a LEFT join that broadcasts it; other
RIGHT and FULL joins are partitioned (a broadcast would emit an unmatched right row once per
task). A join without keys (CROSS JOIN, ON without an equality) has nothing to hash on: INNER
and LEFT broadcast the right side (an INNER one the smaller side), RIGHT and FULL run in one
task (:meth:`Join.required_strategy`). The estimate and the threshold go into ``Join.reason``,
which EXPLAIN prints; a forced ``join.strategy`` a join's shape cannot take is overridden, and
the reason says so.

Example::

    Before:  Join: inner on a.user_id = b.user_id, strategy=auto
    After:   Join: inner on a.user_id = b.user_id, strategy=broadcast
             (right ~22.9 MiB (1,000,000 rows) <= optimizer.broadcast_threshold_bytes 32.0 MiB,
             left ~1.5 GiB (100,000,000 rows))

Used configurations:
    optimizer.choose_join_strategy (bool): when off, AUTO joins become PARTITIONED.
    optimizer.broadcast_threshold_bytes (int): the largest side (estimated bytes) always broadcast.
    optimizer.broadcast_max_bytes (int): a larger right side, up to this, is broadcast when
        copying it to every worker (``ctx.workers``) moves fewer bytes than exchanging both
        sides: right x workers <= left + right. Not when the threshold is 0, which turns
        automatic broadcasting off. A broadcast side's hash table is built once
        per worker (:mod:`mpp.physical.join_table`), so its cost is the copies, not the tasks.
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
_MAX = "optimizer.broadcast_max_bytes"


def choose_join_strategy(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """Give every AUTO join a strategy and a reason, from estimated side sizes."""
    forced = str(ctx.settings["join.strategy"])
    threshold = int(ctx.settings[_THRESHOLD])
    limits = (threshold, int(ctx.settings[_MAX]), max(1, ctx.workers))

    def choose(node: LogicalNode) -> LogicalNode:
        if not isinstance(node, Join) or node.strategy is not JoinStrategy.AUTO:
            return node
        if forced != "auto":
            return _forced(node, JoinStrategy(forced), f"join.strategy={forced}")
        return _by_size(node, estimate(node.left), estimate(node.right), limits)

    return transform_up(plan, choose)


def default_join_strategy(plan: LogicalNode, ctx: PlannerContext) -> LogicalNode:
    """The rule switched off: AUTO joins become PARTITIONED (or what join.strategy forces);
    a join whose shape forces a strategy (no keys, RIGHT, FULL) gets that one."""
    forced = str(ctx.settings["join.strategy"])
    strategy = JoinStrategy.PARTITIONED if forced == "auto" else JoinStrategy(forced)
    reason = ("optimizer.choose_join_strategy=off" if forced == "auto"
              else f"join.strategy={forced}")

    def resolve(node: LogicalNode) -> LogicalNode:
        if isinstance(node, Join) and node.strategy is JoinStrategy.AUTO:
            return _forced(node, strategy, reason)
        return node

    return transform_up(plan, resolve)


def _forced(node: Join, strategy: JoinStrategy, reason: str) -> LogicalNode:
    """``node`` with ``strategy`` where its shape allows it, else the one its shape needs."""
    if node.kind is JoinKind.RIGHT and node.left_keys and strategy is JoinStrategy.BROADCAST:
        return _flip(node, strategy, f"{reason}: RIGHT join flipped to LEFT, so the former "
                                     "left side is broadcast")
    required = node.required_strategy()
    if required is not None and required[0] is not strategy:
        return dataclasses.replace(node, strategy=required[0],
                                   reason=f"{required[1]} ({reason} cannot apply)")
    return dataclasses.replace(node, strategy=strategy, reason=reason)


def _flip(node: Join, strategy: JoinStrategy, reason: str) -> LogicalNode:
    """``node`` with its sides swapped (RIGHT <-> LEFT), under a Project restoring the column
    order its parents (and the plan's output) expect."""
    kind = {JoinKind.RIGHT: JoinKind.LEFT, JoinKind.LEFT: JoinKind.RIGHT}.get(node.kind,
                                                                             node.kind)
    swapped = dataclasses.replace(node, left=node.right, right=node.left, kind=kind,
                                  left_keys=node.right_keys, right_keys=node.left_keys,
                                  strategy=strategy, reason=reason)
    cols = tuple(Column(f.name, f.dtype) for f in node.schema)
    return Project(swapped, cols, tuple(c.name for c in cols))


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


def _by_size(node: Join, left: Estimate, right: Estimate,
             limits: tuple[int, int, int]) -> LogicalNode:
    threshold, most, workers = limits
    sizes = f"left {_size(left)}, right {_size(right)}"
    required = node.required_strategy()
    if not node.left_keys and node.kind is JoinKind.INNER and left.bytes < right.bytes:
        why = "cross join" if node.is_cross else "INNER join without equality keys"
        return _flip(node, JoinStrategy.BROADCAST,
                     f"{why}: nothing to partition on; sides swapped to broadcast the smaller: "
                     f"{sizes}")
    if node.kind is JoinKind.RIGHT and node.left_keys and left.bytes <= threshold:
        return _flip(node, JoinStrategy.BROADCAST,
                     f"RIGHT join flipped to LEFT: left {_size(left)} <= {_limit(threshold)}, "
                     f"right {_size(right)}")
    if required is not None:
        return dataclasses.replace(node, strategy=required[0], reason=f"{required[1]}; {sizes}")
    if right.bytes <= threshold:
        return dataclasses.replace(
            node, strategy=JoinStrategy.BROADCAST,
            reason=f"right {_size(right)} <= {_limit(threshold)}, left {_size(left)}")
    if node.kind is JoinKind.INNER and left.bytes <= threshold:
        return _flip(node, JoinStrategy.BROADCAST,
                     f"sides swapped: left {_size(left)} <= {_limit(threshold)}, "
                     f"right {_size(right)}")
    if 0 < threshold and right.bytes <= most and right.bytes * workers <= left.bytes + right.bytes:
        # Copied to each worker and built there once, the right side moves fewer bytes
        # than a partitioned join moves of both sides; the left side never moves.
        return dataclasses.replace(
            node, strategy=JoinStrategy.BROADCAST,
            reason=f"right {_size(right)} x {plural(workers, 'worker')} <= left {_size(left)} "
                   f"+ right, right <= {_MAX} {_limit(most).split(' ', 1)[1]}")
    return dataclasses.replace(
        node, strategy=JoinStrategy.PARTITIONED,
        reason=f"left {_size(left)}, right {_size(right)} > {_limit(threshold)}")
