"""Benchmarks: wall time and peak memory of whole runs (not tests: figures, not assertions).

:class:`~mpp.bench.memory.PeakMemory` samples the resident memory of this process and all its
children (a LocalCluster's workers and nanny processes) while a run executes.
"""

from __future__ import annotations

from mpp.bench.memory import PeakMemory

__all__ = ["PeakMemory"]
