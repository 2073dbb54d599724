"""Physical operators, one module per kind; each declares the distribution it needs."""

from __future__ import annotations

from mpp.physical.operators.aggregate import AggregateMode, HashAggregateExec
from mpp.physical.operators.base import PhysicalOp, TaskContext
from mpp.physical.operators.exchange import ExchangeExec, ExchangeKind
from mpp.physical.operators.join import HashJoinExec
from mpp.physical.operators.nested_loop import NestedLoopJoinExec
from mpp.physical.operators.rowwise import FilterExec, ProjectExec
from mpp.physical.operators.scan import ScanExec
from mpp.physical.operators.sort import LimitExec, SortExec

__all__ = [
    "AggregateMode", "ExchangeExec", "ExchangeKind", "FilterExec", "HashAggregateExec",
    "HashJoinExec", "LimitExec", "NestedLoopJoinExec", "PhysicalOp", "ProjectExec", "ScanExec", "SortExec",
    "TaskContext",
]
