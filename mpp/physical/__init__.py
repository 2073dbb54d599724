"""mpp.physical: optimized logical plan -> operators with exchanges -> stages of tasks.

:func:`plan_physical` builds the :class:`PhysicalPlan` that is executed, explained
(:func:`explain_physical`) and measured. See docs/architecture/physical.md.
"""

from __future__ import annotations

from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan, Stage, plan_physical

__all__ = ["PhysicalPlan", "Stage", "explain_physical", "plan_physical"]
