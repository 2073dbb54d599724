"""mpp.optimizer: an ordered list of rules, one per module, each switchable off by name.

``optimize`` runs :data:`RULES` in order over a bound :class:`~mpp.logical.nodes.LogicalPlan`.
Each rule is a pure function ``(root, ctx) -> root`` in the module of the same name, with the
setting ``optimizer.<name>`` (default on, described by the rule's ``help``) to switch it off
from ``--set``, ``mpp.connect`` or a scenario; mpp.config derives those switches from RULES. ``trace`` collects the plan after every rule
(verbose EXPLAIN shows it).
See docs/architecture/optimizer.md.
"""

from __future__ import annotations

from mpp.config import PlannerContext
from mpp.logical.nodes import LogicalPlan
from mpp.optimizer.choose_join_strategy import choose_join_strategy, default_join_strategy
from mpp.optimizer.prune_projections import prune_projections
from mpp.optimizer.push_down_limit import push_down_limit
from mpp.optimizer.push_down_semi_joins import push_down_semi_joins
from mpp.optimizer.push_down_topn_per_group import push_down_topn_per_group
from mpp.optimizer.pushdown_predicates import pushdown_predicates
from mpp.optimizer.reorder_joins import join_keys_in_from_order, reorder_joins
from mpp.optimizer.rewrite_count_distinct import keep_count_distinct, rewrite_count_distinct
from mpp.optimizer.rule import Rule

RULES: tuple[Rule, ...] = (
    # First: filters must reach the scans before anything measures or narrows them. Pushed
    # storage predicates remove Filter nodes, so columns used only there need not be carried
    # (prune_projections), and scans' predicates feed the size estimates (choose_join_strategy).
    Rule("pushdown_predicates", pushdown_predicates,
         help="Push WHERE/ON conjuncts down to the scans (shrink the fact table early)."),
    # After pushdown (the relations' estimates count their pushed predicates; WHERE equalities
    # between relations are left above the cross products it cannot pass), before pruning and
    # join choice (it may add key Projects; the strategy is chosen for the final order).
    Rule("reorder_joins", reorder_joins, when_off=join_keys_in_from_order,
         help="Make WHERE equalities between FROM relations join keys and order inner joins "
              "greedily by estimated size; when off, the keys are still used, in FROM order."),
    # After reorder_joins: the inner joins exist (with keys) only once it has rebuilt them
    # from the FROM clause's cross joins and WHERE equalities. Before choose_join_strategy,
    # whose estimates then see each join's inputs after the subquery filtered them.
    Rule("push_down_semi_joins", push_down_semi_joins,
         help="Apply an IN / EXISTS subquery (semi or anti join) to the one relation whose "
              "columns it tests, below the inner joins; when off, above the FROM clause."),
    # After pushdown_predicates: a Filter it dissolved into a scan no longer stops a Limit, and
    # a scan's fetch then counts rows passing its predicates. Before prune_projections, which
    # merges the Projects a Limit leaves stacked when it moves below one. Before
    # choose_join_strategy: a LEFT join's left side under a pushed Limit is estimated small.
    Rule("push_down_limit", push_down_limit,
         help="Plan ORDER BY ... LIMIT as a top-N per task and push LIMIT through projections, "
              "into scans and into a LEFT join's left side; when off, LIMIT runs where the "
              "query wrote it (ORDER BY ... LIMIT sorts every row in one task)."),
    # After pushdown_predicates: a filter on a window's ranking stops right above the Window.
    # Before prune_projections, which then keeps the ranking call the top-N reads.
    Rule("push_down_topn_per_group", push_down_topn_per_group,
         help="Over WHERE rn <= N on row_number/rank/dense_rank, keep each task's best N rows "
              "per partition before the window's exchange; when off, every row is exchanged."),
    # After pushdown, before join choice: the join's size estimate counts only the columns a
    # side really carries.
    Rule("prune_projections", prune_projections,
         help="Read and carry only the columns a query uses."),
    # After pruning (it reshapes aggregates but reads no new columns). When off it still
    # resolves each DISTINCT aggregate's strategy, so the planner never sees 'automatic'.
    Rule("rewrite_count_distinct", rewrite_count_distinct, when_off=keep_count_distinct,
         help="Choose each DISTINCT aggregation's strategy (aggregate.distinct_strategy) and "
              "rewrite count(DISTINCT x) into count(x) over a DISTINCT (group, x) where "
              "chosen; when off, nothing is rewritten."),
    # Last: estimates need the final predicates and column lists of every scan. When switched
    # off it still runs its fallback: a join must leave the optimizer with a strategy.
    Rule("choose_join_strategy", choose_join_strategy, when_off=default_join_strategy,
         help="Resolve join strategy 'auto' to broadcast or partitioned from table statistics; "
              "when off, 'auto' joins are partitioned."),
)

def optimize(plan: LogicalPlan, ctx: PlannerContext, *,
             trace: list[tuple[str, LogicalPlan]] | None = None) -> LogicalPlan:
    """Run every rule in order (switched-off rules run their fallback, if any).

    ``trace``, when given, receives ``(rule name, plan after the rule)`` for each rule.
    """
    root = plan.root
    for rule in RULES:
        enabled = bool(ctx.settings[f"optimizer.{rule.name}"])
        fn = rule.fn if enabled else rule.when_off
        if fn is not None:
            root = fn(root, ctx)
        if trace is not None:
            trace.append((rule.name, LogicalPlan(root, plan.output_names, plan.notes)))
    return LogicalPlan(root, plan.output_names, plan.notes)


__all__ = ["RULES", "Rule", "optimize"]
