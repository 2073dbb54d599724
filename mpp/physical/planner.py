"""The physical planner: logical plan -> operators -> exchanges -> stages.

Three steps, each one function:

1. :func:`lower` maps every logical node to its operator(s): an Aggregate becomes
   ``HashAggregateExec(FINAL) <- HashAggregateExec(PARTIAL)`` unless its input is already
   distributed by the group keys (then one SINGLE aggregate); a Sort with a ``fetch`` (the
   optimizer's top-N, push_down_limit) sorts and cuts each task's rows before the final
   top-N; a Limit keeps ``count + offset`` rows per task before its gather (unless its input
   already stops there); a Scan with a ``fetch`` reads only the first fragments that hold
   enough rows; a Join follows the strategy the optimizer chose (a HashJoinExec, or a
   NestedLoopJoinExec for a join without equality keys).
2. :func:`enforce_distribution` (one pass, bottom-up) compares each operator's required input
   distribution with its child's output partitioning and inserts an ``ExchangeExec`` where they
   disagree: HASH for hash requirements, BROADCAST for a broadcast build side, GATHER for a
   single partition. Operators never build shuffles themselves.
3. :func:`cut_stages` cuts the tree at the exchanges into stages (producer stages first) and
   fixes each stage's task count: a scan stage's packed tasks (one per fragment, or several
   small fragments per task: :mod:`mpp.physical.packing`), the bucket count after a hash
   exchange, one after a gather.

Used configurations: ``execution.hash_buckets`` and ``execution.hash_bucket_bytes`` (through
``PlannerContext.buckets_for``), ``scan.max_task_bytes``, ``scan.fragment_open_bytes`` and
``scan.min_tasks_per_thread`` (packing a scan's fragments into tasks),
``execution.exchange_fan_in`` (how many combine tasks each hash exchange gets, so EXPLAIN can
count every task the graph will have) and ``join.strategy`` (for joins the optimizer left at
``auto``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpp.config import PlannerContext
from mpp.logical import nodes as ln
from mpp.logical.window import Window
from mpp.optimizer.estimate import estimate
from mpp.physical.aggregates import AggregateKernel
from mpp.physical.distribution import (
    BroadcastDistribution,
    Distribution,
    HashDistribution,
    SinglePartition,
)
from mpp.physical.operators.aggregate import AggregateMode, HashAggregateExec
from mpp.physical.operators.base import PhysicalOp
from mpp.physical.operators.exchange import ExchangeExec, ExchangeKind, producer_partitions
from mpp.physical.operators.join import HashJoinExec
from mpp.physical.operators.nested_loop import NestedLoopJoinExec
from mpp.physical.operators.replicate import ReplicateExec
from mpp.physical.operators.rowwise import FilterExec, ProjectExec
from mpp.physical.operators.scan import ScanExec, sql_value
from mpp.physical.operators.sort import LimitExec, SortExec
from mpp.physical.operators.union import UnionExec
from mpp.physical.operators.values import ValuesExec
from mpp.physical.operators.window import WindowExec, WindowTopNExec
from mpp.physical.packing import pack, read_bytes
from mpp.physical.window_stream import streaming_reason
from mpp.storage.base import Fragment, StorageFormat

FragmentLister = Callable[[ln.Scan], Sequence[Fragment]]


@dataclass(frozen=True, slots=True)
class StageInput:
    """One source a stage's tasks read: a scan's fragments, written values, or an exchange.

    Tasks ``first`` to ``first + tasks - 1`` read it, task i its partition ``i - first`` (a
    fragment, a hash bucket; a broadcast or a gather hands the same whole input to each). A
    plain stage's inputs all span every task; a union gives each of its inputs its own range.
    """

    source: PhysicalOp
    first: int
    tasks: int

    def partition(self, task: int) -> int | None:
        """The partition of this input that ``task`` reads, or None if it reads none."""
        local = task - self.first
        return local if 0 <= local < self.tasks else None


@dataclass(frozen=True, slots=True)
class Stage:
    """A pipeline of operators run as ``tasks`` Dask tasks, ended by an exchange (``sink``).

    ``root`` is the stage's top operator; ``inputs`` are the sources its tasks read (scans,
    values, exchanges whose ids are the producing stages), each with the range of tasks that
    reads it (see :class:`StageInput`).
    """

    id: int
    root: PhysicalOp
    sink: ExchangeExec | None
    tasks: int
    inputs: tuple[StageInput, ...]

    @property
    def name(self) -> str:
        """The Dask key prefix: ``stage<id>-<operator words>``, e.g. ``stage1-scan-partial-agg``.

        Inputs whose pipelines read the same words appear once (a union of 100 ``SELECT``s of
        one table is ``stage1-scan-project-union``, not 200 words).
        """

        def words(op: PhysicalOp) -> list[str]:
            if isinstance(op, ExchangeExec) and op is not self.root:
                return []
            distinct: list[list[str]] = []
            for child in op.children:
                w = words(child)
                if w not in distinct:
                    distinct.append(w)
            return [word for w in distinct for word in w] + [op.word]

        return f"stage{self.id}-" + "-".join(words(self.root))

    @property
    def exchanges(self) -> tuple[ExchangeExec, ...]:
        """The exchanges this stage reads (their ids are the stages it depends on)."""
        return tuple(i.source for i in self.inputs if isinstance(i.source, ExchangeExec))

    @property
    def scans(self) -> tuple[ScanExec, ...]:
        """The scans whose fragments this stage's tasks read."""
        return tuple(i.source for i in self.inputs if isinstance(i.source, ScanExec))

    @property
    def fragments_read(self) -> int:
        """The fragments the stage's tasks read (more than its tasks when scans are packed)."""
        return sum(len(s.fragments) for s in self.scans)

    @property
    def scan(self) -> ScanExec | None:
        """The stage's scan when it reads exactly one (None for none or a union of several)."""
        scans = self.scans
        return scans[0] if len(scans) == 1 else None

    def operators(self) -> list[PhysicalOp]:
        """The stage's operators in pipeline order (inputs first), exchanges excluded."""
        out: list[PhysicalOp] = []

        def visit(op: PhysicalOp) -> None:
            if isinstance(op, ExchangeExec) and op is not self.root:
                return
            for child in op.children:
                visit(child)
            out.append(op)

        visit(self.root)
        return out


@dataclass(frozen=True, slots=True)
class PhysicalPlan:
    """The executed plan: the operator tree with exchanges, cut into stages (producers first).

    EXPLAIN, the Dask graph and the metrics all read this one object.
    """

    root: PhysicalOp
    stages: tuple[Stage, ...]
    output_names: tuple[str, ...]
    hash_buckets: int
    exchange_fan_in: int = 64  # producer outputs one combine task of a hash exchange merges
    settings: Mapping[str, Any] = field(default_factory=dict)  # what the plan was made with
    notes: tuple[str, ...] = ()  # the logical plan's notes (a WITH query inlined twice)

    def exchange_tasks(self, stage: Stage) -> tuple[int, int]:
        """The (combine, split) tasks between ``stage`` and its consumers: a hash exchange's
        combines and their C x N bucket splits, a broadcast's one collect task, a gather's none.
        """
        if stage.sink is None or stage.sink.kind is ExchangeKind.GATHER:
            return 0, 0
        if stage.sink.kind is ExchangeKind.BROADCAST:
            return 1, 0
        combines = combine_count(stage.tasks, stage.sink.n, self.exchange_fan_in,
                                 stage.fragments_read)
        return combines, combines * stage.sink.n

    @property
    def final_stage(self) -> Stage:
        """The stage whose task outputs, concatenated, are the result."""
        return self.stages[-1]

    def stage(self, stage_id: int) -> Stage:
        """The stage numbered ``stage_id``."""
        return self.stages[stage_id - 1]


def combine_count(maps: int, buckets: int, fan_in: int, fragments: int = 0) -> int:
    """Combine tasks of a hash exchange: ceil(maps / fan_in), at most 2 maps / buckets, >= 1
    (so the combines' C x N bucket splits stay at most 2 maps; see mpp/execution/graph.py).

    ``fragments``: the fragments the map tasks read, when the planner packed several into a
    task; the fan-in then counts fragments, so a combine merges the output of about as many
    fragments as it did with one task per fragment (32 packed map tasks of Q1 still get 16
    combines, not one merging all 1,000 fragments' pairs on one thread), at most one per map.
    """
    units = max(maps, fragments)
    return max(1, min(math.ceil(units / max(1, fan_in)), 2 * maps // max(1, buckets), maps))


def _lower_scan(node: ln.Scan, kids: list[PhysicalOp], ctx: PlannerContext,
                fragments: FragmentLister) -> PhysicalOp:
    frags = _enough_fragments(tuple(fragments(node)), node)
    width = len(node.table.schema)
    starts = pack([read_bytes(f, node.columns, node.predicates, width) for f in frags], ctx)
    return ScanExec(node.table.name, node.alias, node.columns, node.predicates, node.schema,
                    frags, node.table.stats.fragment_count, _source_query(node, frags),
                    node.fetch, version=node.table.snapshot_id,
                    task_starts=starts if len(starts) < len(frags) else ())


def _enough_fragments(frags: tuple[Fragment, ...], node: ln.Scan) -> tuple[Fragment, ...]:
    """The first fragments that hold ``node.fetch`` rows, when that is known: no pushed
    predicate may drop rows, and every fragment's row count is in the metadata. Not for a
    database's table (SQLite, MySQL): a live database another program writes, whose counts date
    from registration (its fragments carry no bounds either, for the same reason)."""
    if (node.fetch is None or node.predicates or node.table.format.relational
            or any(f.row_count < 0 for f in frags)):
        return frags
    rows = 0
    for i, frag in enumerate(frags):
        if rows >= node.fetch:
            return frags[:i]
        rows += frag.row_count
    return frags


def _source_query(node: ln.Scan, frags: tuple[Fragment, ...]) -> str:
    """The SQL a database scan sends (with its parameters), for EXPLAIN; '' for files."""
    if node.table.format is StorageFormat.MYSQL:
        return _mysql_query(node, frags)
    if node.table.format is not StorageFormat.SQLITE:
        return ""
    from mpp.storage import sqlite

    declared = {f.name: sqlite.declared_type(f.type) for f in node.table.schema}
    source = frags[0].option("table", node.table.name) if frags else node.table.name
    sql, params, rest = sqlite.select_sql(source, node.columns, node.predicates, declared)
    text = sql + " -- params: rowid range" + "".join(f", {sql_value(v)}" for v in params)
    return text + (f"; in Arrow: {' AND '.join(map(str, rest))}" if rest else "")


def _mysql_query(node: ln.Scan, frags: tuple[Fragment, ...]) -> str:
    """The SQL a MySQL scan sends, as :func:`_source_query` shows it."""
    from mpp.storage import mysql

    types = {f.name: f.type for f in node.table.schema}
    first = frags[0] if frags else None
    source = first.option("table", node.table.name) if first else node.table.name
    key = first.option("key") if first else None
    sql, params, rest, _ = mysql.scan_sql(source, key, node.columns, node.predicates, types)
    parts = (["key range"] if key else []) + [sql_value(v) for v in params]
    text = sql + (" -- params: " + ", ".join(parts) if parts else "")
    return text + (f"; in Arrow: {' AND '.join(map(str, rest))}" if rest else "")


def _narrow_join(child: PhysicalOp, names: set[str] | frozenset[str]) -> PhysicalOp:
    """A hash join feeding an aggregate or a projection directly outputs only the columns
    that consumer reads: the join's keys and unread columns are never taken."""
    return child.narrowed(names) if isinstance(child, HashJoinExec) else child


def _lower_project(node: ln.Project, kids: list[PhysicalOp], ctx: PlannerContext,
                   fragments: FragmentLister) -> PhysicalOp:
    read = set().union(*(e.columns() for e in node.exprs))
    return ProjectExec(_narrow_join(kids[0], read), node.exprs, node.names)


def _lower_aggregate(node: ln.Aggregate, kids: list[PhysicalOp], ctx: PlannerContext,
                     fragments: FragmentLister) -> PhysicalOp:
    kids = [_narrow_join(kids[0], {c.name for c in node.group_by}
                         | {c.name for call in node.aggregates for c in call.inputs()})]
    kernel = AggregateKernel(tuple(c.name for c in node.group_by), node.aggregates,
                             node.agg_names)
    strategy, note = _distinct_strategy(node, ctx)
    single = HashAggregateExec(kids[0], AggregateMode.SINGLE, kernel, node.schema, note)
    required = single.required_input_distribution()[0]
    if (kids[0].output_partitioning().satisfies(required)
            or strategy is ln.DistinctStrategy.SINGLE_STEP):
        # single_step: the exchange enforce_distribution adds carries the raw rows.
        return single
    partial = HashAggregateExec(kids[0], AggregateMode.PARTIAL, kernel,
                                kernel.partial_schema(kids[0].schema),
                                merge_partials=node.merge_partials,
                                by_build_row=_by_build_row(kids[0], kernel),
                                skip_ratio=float(ctx.settings["aggregate.partial_skip_ratio"]))
    return HashAggregateExec(partial, AggregateMode.FINAL, kernel, node.schema, note)


def _by_build_row(child: PhysicalOp, kernel: AggregateKernel) -> bool:
    """Whether a partial aggregate over ``child`` groups a join's pairs by build row first:
    ``child`` is an inner join with a shared build table, every group key is a build-side
    column and no aggregate is DISTINCT (see ``HashAggregateExec.by_build_row``)."""
    if not isinstance(child, HashJoinExec) or child.kind is not ln.JoinKind.INNER:
        return False
    build = {f.name for f in child.right.schema}
    return (child.tabled and not child.null_aware and not kernel.distinct_args
            and bool(kernel.keys) and set(kernel.keys) <= build)


def _distinct_strategy(node: ln.Aggregate,
                       ctx: PlannerContext) -> tuple[ln.DistinctStrategy | None, str]:
    """A DISTINCT aggregation's strategy and ``"<strategy> (<reason>)"`` for EXPLAIN.

    (None, "") for a plain aggregation. One the optimizer did not resolve (``automatic``, e.g.
    planned unoptimized) takes the setting when it is single_step, else pre_aggregate.
    """
    if not node.reason and not any(c.distinct for c in node.aggregates):
        return None, ""
    strategy = node.distinct_strategy
    if strategy is ln.DistinctStrategy.AUTOMATIC:
        chosen = ln.DistinctStrategy(str(ctx.settings["aggregate.distinct_strategy"]))
        strategy = (chosen if chosen is ln.DistinctStrategy.SINGLE_STEP
                    else ln.DistinctStrategy.PRE_AGGREGATE)
        return strategy, f"{strategy.value} (not resolved by the optimizer)"
    return strategy, f"{strategy.value} ({node.reason})" if node.reason else strategy.value


def _lower_join(node: ln.Join, kids: list[PhysicalOp], ctx: PlannerContext,
                fragments: FragmentLister) -> PhysicalOp:
    strategy, reason = node.strategy, node.reason
    if strategy is ln.JoinStrategy.AUTO:
        chosen = str(ctx.settings["join.strategy"])
        strategy = (ln.JoinStrategy.BROADCAST if chosen == "broadcast"
                    else ln.JoinStrategy.PARTITIONED)
        reason = reason or f"join.strategy={chosen}"
        strategy, reason = node.required_strategy() or (strategy, reason)
    if not node.left_keys:
        return NestedLoopJoinExec(kids[0], kids[1], node.kind, strategy, node.residual, reason)
    return HashJoinExec(kids[0], kids[1], node.kind, tuple(k.name for k in node.left_keys),
                        tuple(k.name for k in node.right_keys), strategy, node.residual, reason,
                        node.null_aware)


def _lower_sort(node: ln.Sort, kids: list[PhysicalOp], ctx: PlannerContext,
                fragments: FragmentLister) -> PhysicalOp:
    child = kids[0]
    if node.fetch is not None and producer_partitions(child) > 1:
        # The optimizer's top-N: each task keeps its best ``fetch`` rows before the gather.
        child = SortExec(child, node.keys, node.fetch, partial=True)
    return SortExec(child, node.keys, node.fetch)


def _lower_limit(node: ln.Limit, kids: list[PhysicalOp], ctx: PlannerContext,
                 fragments: FragmentLister) -> PhysicalOp:
    child, needed = kids[0], node.count + node.offset
    scan_stops = isinstance(child, ScanExec) and child.fetch is not None and child.fetch <= needed
    if producer_partitions(child) > 1 and not scan_stops:
        # Any ``needed`` rows of each task will do: cut them before the gather.
        child = LimitExec(child, node.count, node.offset, partial=True)
    return LimitExec(child, node.count, node.offset)


def _lower_window(node: Window, kids: list[PhysicalOp], ctx: PlannerContext,
                  fragments: FragmentLister) -> PhysicalOp:
    keys = tuple(p.name for p in node.partition_by)
    batch = int(ctx.settings["execution.window_batch_rows"])
    if streaming_reason(node.order_by, node.calls) is not None:
        batch = 0
    window = WindowExec(kids[0], keys, node.order_by, node.calls, node.names, batch)
    required = window.required_input_distribution()[0]
    child = kids[0]
    if (node.topn is not None and producer_partitions(child) > 1
            and not child.output_partitioning().satisfies(required)):
        # The optimizer's top-N per group: each task keeps its best N rows per partition key
        # before the exchange.
        child = WindowTopNExec(child, keys, node.order_by, node.calls[node.topn.call],
                               node.topn.n,
                               float(ctx.settings["aggregate.partial_skip_ratio"]))
    return window.with_children((child,))


_LOWER: dict[type, Callable[..., PhysicalOp]] = {
    ln.Scan: _lower_scan,
    ln.Filter: lambda n, k, c, f: FilterExec(k[0], n.predicate),
    ln.Project: _lower_project,
    ln.Aggregate: _lower_aggregate,
    ln.Join: _lower_join,
    ln.Sort: _lower_sort,
    ln.Limit: _lower_limit,
    ln.Union: lambda n, k, c, f: UnionExec(tuple(k), n.schema, n.operation),
    ln.Replicate: lambda n, k, c, f: ReplicateExec(k[0], n.count.name),
    ln.Values: lambda n, k, c, f: ValuesExec(n.rows, n.schema),
    Window: _lower_window,
}


BucketSizes = dict[int, tuple[int, str]]  # id of an operator -> (buckets, why) of its exchange


def lower(node: ln.LogicalNode, ctx: PlannerContext, fragments: FragmentLister,
          sizes: BucketSizes | None = None) -> PhysicalOp:
    """Map ``node`` and everything below it to physical operators (no exchanges yet).

    With ``sizes``, every operator that needs its input hash-distributed (aggregation, window,
    partitioned join) is given the bucket count of the exchange it may need, sized from the
    logical node's estimate (:meth:`PlannerContext.buckets_for`).
    """
    kids = [lower(child, ctx, fragments, sizes) for child in node.inputs]
    try:
        rule = _LOWER[type(node)]
    except KeyError:
        raise NotImplementedError(f"no physical operator for {type(node).__name__}") from None
    op = rule(node, kids, ctx, fragments)
    if sizes is not None and any(isinstance(r, HashDistribution)
                                 for r in op.required_input_distribution()):
        sizes[id(op)] = ctx.buckets_for(exchanged_bytes(node))
    return op


def exchanged_bytes(node: ln.LogicalNode) -> float:
    """Estimated bytes the hash exchange below ``node``'s operator delivers to its tasks: an
    aggregation's groups (partial states merge down to them), a window's input rows, both
    sides of a join (each bucket holds its share of each)."""
    if isinstance(node, ln.Aggregate):
        return estimate(node).bytes
    return sum(estimate(child).bytes for child in node.inputs)


def _exchange_for(child: PhysicalOp, required: Distribution, buckets: tuple[int, str]
                  ) -> ExchangeExec:
    if isinstance(required, HashDistribution):
        return ExchangeExec(child, ExchangeKind.HASH, required.keys, buckets[0],
                            reason=buckets[1])
    if isinstance(required, BroadcastDistribution):
        return ExchangeExec(child, ExchangeKind.BROADCAST)
    if isinstance(required, SinglePartition):
        return ExchangeExec(child, ExchangeKind.GATHER)
    raise AssertionError(f"no exchange provides {required}")


def enforce_distribution(op: PhysicalOp, ctx: PlannerContext,
                         sizes: BucketSizes | None = None) -> PhysicalOp:
    """Insert an ExchangeExec wherever a child's partitioning does not meet its parent's need.

    A hash exchange takes the bucket count ``sizes`` holds for ``op`` (default: the cluster's).
    The inputs of a partitioned join keep one count: a side already hash-distributed by its
    keys (no exchange) sets it for the other; two exchanged sides share the join's count.
    """
    buckets = (sizes or {}).get(id(op), (ctx.hash_buckets, ""))
    kids = tuple(enforce_distribution(c, ctx, sizes) for c in op.children)
    if kids:
        op = op.with_children(kids)
    pairs = list(zip(op.children, op.required_input_distribution(), strict=True))
    paired = sum(isinstance(need, HashDistribution) and need.exact for _, need in pairs) > 1
    if paired:
        kept = [producer_partitions(c) for c, need in pairs
                if c.output_partitioning().satisfies(need)]
        if kept and max(kept) != buckets[0]:
            n = max(kept)
            buckets = (n, "" if n == ctx.hash_buckets else "the count of the join's other side")
    fixed = tuple(
        child if child.output_partitioning().satisfies(need)
        and not (paired and producer_partitions(child) != buckets[0])
        else _exchange_for(child, need, buckets)
        for child, need in pairs
    )
    changed = any(a is not b for a, b in zip(fixed, op.children, strict=True))
    return op.with_children(fixed) if changed else op


def cut_stages(root: PhysicalOp) -> tuple[PhysicalOp, tuple[Stage, ...]]:
    """Number the exchanges by their producing stage and list the stages, producers first."""
    stages: list[Stage] = []

    def visit(op: PhysicalOp) -> PhysicalOp:
        kids = tuple(visit(c) for c in op.children)
        changed = any(a is not b for a, b in zip(kids, op.children, strict=True))
        op = op.with_children(kids) if changed else op
        if isinstance(op, ExchangeExec):
            stage = _stage(len(stages) + 1, op.input, None)
            op = dataclasses.replace(op, id=stage.id, input=stage.root)
            stages.append(dataclasses.replace(stage, sink=op))
        return op

    root = visit(root)
    stages.append(_stage(len(stages) + 1, root, None))
    return stages[-1].root, tuple(stages)


def _stage(stage_id: int, top: PhysicalOp, sink: ExchangeExec | None) -> Stage:
    top = _number_scans(top, itertools.count(), is_top=True)
    tasks = producer_partitions(top)
    return Stage(stage_id, top, sink, tasks, tuple(_sources(top, 0, tasks, is_top=True)))


def _number_scans(op: PhysicalOp, slots: itertools.count[int], *,
                  is_top: bool = False) -> PhysicalOp:
    """``op`` with each scan of its stage (exchanges below end the stage) given its own slot,
    in pipeline order: a task receives one fragment per slot."""
    if isinstance(op, ExchangeExec) and not is_top:
        return op
    if isinstance(op, ScanExec):
        slot = next(slots)
        return op if op.slot == slot else dataclasses.replace(op, slot=slot)
    kids = tuple(_number_scans(c, slots) for c in op.children)
    changed = any(a is not b for a, b in zip(kids, op.children, strict=True))
    return op.with_children(kids) if changed else op


def _sources(op: PhysicalOp, first: int, tasks: int, *, is_top: bool = False) -> list[StageInput]:
    """The stage's sources below ``op`` (leaves and the exchanges it reads), with task ranges."""
    if isinstance(op, ExchangeExec) and not is_top:
        return [StageInput(op, first, tasks)]
    if not op.children:
        return [StageInput(op, first, tasks)]
    out: list[StageInput] = []
    for child, (start, n) in zip(op.children, op.child_task_ranges(first, tasks), strict=True):
        out += _sources(child, start, n)
    return out


def plan_physical(plan: ln.LogicalPlan, ctx: PlannerContext,
                  fragments: FragmentLister | None = None) -> PhysicalPlan:
    """Plan ``plan`` (already optimized) into stages of partition tasks.

    ``fragments`` lists a logical scan's (pruned) fragments; the session passes the catalog's
    ``fragments(table, predicates)``. Without it every scan has no fragments (plan shape only).
    """
    lister = fragments or _no_fragments
    sizes: BucketSizes = {}
    tree = enforce_distribution(lower(plan.root, ctx, lister, sizes), ctx, sizes)
    # Every partition count is final now; the payloads tasks receive drop the fragment lists.
    tree = tree.transform_up(lambda op: op.with_fixed_partitioning())
    root, stages = cut_stages(tree)
    return PhysicalPlan(root, stages, plan.output_names, ctx.hash_buckets,
                        int(ctx.settings["execution.exchange_fan_in"]), ctx.settings, plan.notes)


def _no_fragments(scan: ln.Scan) -> Sequence[Fragment]:
    return ()

