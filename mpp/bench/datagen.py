"""``mpp bench datagen``: wall time and peak memory (all processes) of one generation.

The LocalCluster is started inside the measured block, so its workers' memory is counted (they
are children of this process); cluster start-up is reported separately from generation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from mpp.bench.memory import PeakMemory
from mpp.datagen import DatagenSpec, generate
from mpp.errors import KnobError
from mpp.execution.cluster import Cluster, ClusterSpec


@dataclass(frozen=True, slots=True)
class DatagenBenchResult:
    """The figures of one benchmark run."""

    rows: int
    partitions: int
    startup_seconds: float  # LocalCluster start
    generate_seconds: float  # generation + commits
    wall_seconds: float  # everything, as a user waits for it
    peak_bytes: int  # RSS of this process + workers, sampled every 50 ms
    cpu_seconds: float  # CPU time of this process + workers (contention-independent)
    warehouse_bytes: int

    def summary(self) -> str:
        """One line per figure, for the terminal."""
        return "\n".join([
            f"datagen {self.rows:,} rows in {self.partitions:,} partitions",
            f"  cluster start   {self.startup_seconds:8.1f} s",
            f"  generation      {self.generate_seconds:8.1f} s "
            f"({self.rows / max(self.generate_seconds, 1e-9) / 1e6:.2f} M rows/s)",
            f"  wall            {self.wall_seconds:8.1f} s",
            f"  cpu (all procs) {self.cpu_seconds:8.1f} s",
            f"  peak memory     {self.peak_bytes / 2**30:8.2f} GiB (all processes)",
            f"  warehouse size  {self.warehouse_bytes / 2**30:8.2f} GiB",
        ])


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def bench_datagen(spec: DatagenSpec, out: str | None = None, *, keep: bool = False,
                  cluster: ClusterSpec | None = None, progress: bool = True) -> DatagenBenchResult:
    """Generate ``spec`` into ``out`` (a fresh temp dir by default) and measure it."""
    if out and os.path.exists(out):
        raise KnobError(f"knob 'out': {out} exists; the benchmark writes a fresh directory "
                        "(and deletes it afterwards unless kept)")
    target = out or os.path.join(tempfile.mkdtemp(prefix="mpp-bench-"), "warehouse")
    try:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            with Cluster(cluster or ClusterSpec(dashboard_address=None)) as c:
                t1 = time.perf_counter()
                generate(target, spec, client=c.client, progress=progress)
                t2 = time.perf_counter()
        size = _tree_bytes(target)
    finally:
        if not keep:
            shutil.rmtree(target if out else os.path.dirname(target), ignore_errors=True)
    return DatagenBenchResult(rows=spec.rows, partitions=spec.partitions,
                              startup_seconds=t1 - t0, generate_seconds=t2 - t1,
                              wall_seconds=mem.wall_seconds, peak_bytes=mem.peak_bytes,
                              cpu_seconds=mem.cpu_seconds,
                              warehouse_bytes=size)
