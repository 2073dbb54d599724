"""What a rule is, and the small tree helpers every rule shares.

A rule is a pure function ``(root, ctx) -> root`` over immutable logical nodes. Rules rebuild
the nodes they change with :func:`dataclasses.replace`; :func:`with_inputs` does that for the
inputs of any node, so rules only spell out the node types they care about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpp.config import PlannerContext
from mpp.logical.nodes import LogicalNode

RuleFn = Callable[[LogicalNode, PlannerContext], LogicalNode]


@dataclass(frozen=True, slots=True)
class Rule:
    """An optimizer rule: ``name`` is its module, its function and its ``optimizer.<name>``
    switch. ``when_off`` (if any) runs instead when the switch is off, for rules whose
    decision something downstream needs (a join must leave the optimizer with a strategy)."""

    name: str
    fn: RuleFn
    when_off: RuleFn | None = None
    help: str = ""


def with_inputs(node: LogicalNode, inputs: tuple[LogicalNode, ...]) -> LogicalNode:
    """``node`` with its inputs replaced (same order as ``node.inputs``)."""
    return node.with_inputs(inputs)


def transform_up(node: LogicalNode, fn: Callable[[LogicalNode], LogicalNode]) -> LogicalNode:
    """Apply ``fn`` to every node, inputs first (post-order), rebuilding parents."""
    rebuilt = with_inputs(node, tuple(transform_up(c, fn) for c in node.inputs))
    return fn(rebuilt)
