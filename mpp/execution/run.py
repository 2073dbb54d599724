"""Run a PhysicalPlan on a Dask cluster and collect its result and task records.

The graph runs through the distributed client (``client.get``), so the scheduler recomputes
the keys a lost worker held: a worker killed mid-query costs time, not the result.

Retry policy: a task that raises (an :class:`~mpp.errors.MppError` such as a division by zero,
or a bug) is never retried (``retries=0``): running it again gives the same error. A task whose
worker died is run again by the scheduler, up to its ``distributed.scheduler.allowed-failures``
(mpp's LocalCluster: ``ClusterSpec.allowed_failures``, 3); then the query fails naming the task.
:class:`~mpp.execution.watch.Watch` waits for the result and turns every cluster fault into a
:class:`~mpp.errors.ClusterFaultError`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dask._expr import LLGExpr
from dask.base import tokenize

from mpp.execution.graph import build_graph
from mpp.execution.watch import DEFAULT_STALL_TIMEOUT, Watch
from mpp.metrics.collector import collect_with_cpu
from mpp.metrics.summary import QueryStats, summarize
from mpp.physical.operators.base import concat
from mpp.physical.planner import PhysicalPlan


class _Graph(LLGExpr):
    """A dict graph, as ``LLGExpr``, with annotations per key for the scheduler."""

    _parameters = ["dsk", "annotations"]

    def __dask_annotations__(self) -> dict[str, dict[Any, Any]]:
        return dict(self.operand("annotations"))


def placement(client: Any, local: list[Any], readers: dict[Any, int]
              ) -> dict[str, dict[Any, Any]]:
    """Where the scheduler should run a hash exchange's split tasks and its consumers.

    * A split task (``local``) runs on the worker holding its combine's output, so only its
      bucket moves. Left to itself, Dask treats a group of tasks much larger than the cluster
      that reads fewer than five tasks (the splits of one to four combines) as root-ish: it
      spreads it over the workers without looking where its input is ("it will end up on
      every worker anyway"), right for the readers of a broadcast, wrong here: every worker
      that got a split fetched the whole combine output. A task with worker restrictions is
      never root-ish: restricted to every worker, the split is placed by its input as any
      other task is.
    * The consumer of bucket ``j`` (``readers``) runs on worker ``j`` mod the cluster's
      threads (each worker weighted by its threads): without it, the consumers too went
      where their input was, all to one worker when one combine holds every bucket.

    Both are loose (``allow_other_workers``): a worker that died or joined later changes
    nothing but the placement. Empty when there is nothing to place or no worker."""
    if not local and not readers:
        return {}
    nthreads = dict(client.nthreads())  # (one small question: not every worker's metrics)
    workers = sorted(nthreads)
    if not workers:
        return {}
    slots = [w for w in workers for _ in range(max(1, int(nthreads[w])))]
    where = {**dict.fromkeys(local, workers),
             **{key: [slots[j % len(slots)]] for key, j in readers.items()}}
    return {"workers": where, "allow_other_workers": dict.fromkeys(where, True)}


@dataclass(frozen=True, slots=True)
class Execution:
    """A finished run: the result rows and the measurements."""

    table: pa.Table
    stats: QueryStats


def query_token(plan_text: str, query_id: str) -> str:
    """The hex token of a query's keys: deterministic in the plan and the query id."""
    return str(tokenize(plan_text, query_id))[:8]


def execute(plan: PhysicalPlan, client: Any, query_id: str, *, plan_text: str = "",
            stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> Execution:
    """Run ``plan`` on ``client``'s cluster; return the result named by the plan's outputs.

    A cluster that cannot run the query for ``stall_timeout`` seconds, a lost scheduler or a
    task that keeps killing its worker raise :class:`~mpp.errors.ClusterFaultError`.
    """
    token = query_token(plan_text, query_id)
    graph = build_graph(plan, query_id, token)
    # client.get wraps a dict graph in an LLGExpr and tokenizes every task argument (operator
    # trees, fragments) to name it: ~1.8 s at 1,000 tasks. Our keys already carry a unique
    # token, so the expression is named by it instead.
    expr = _Graph(graph.dsk, placement(client, graph.local_keys(), graph.bucket_readers),
                  _determ_token=f"{query_id}-{token}")
    start, cpu = time.perf_counter(), time.process_time()
    futures = client.get(expr, graph.result_keys, sync=False, retries=0)
    try:
        parts = Watch(client, query_id, graph.dsk, stall_timeout).gather(futures)
    except BaseException:  # the scheduler forgets the query's tasks (no-op if it is gone)
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise
    wall, client_cpu = time.perf_counter() - start, time.process_time() - cpu
    table = concat(list(parts), plan.root.schema)
    table = pa.table(table.columns, names=list(plan.output_names))
    records, worker_cpu = collect_with_cpu(client, query_id)
    stats = QueryStats(query_id, wall, plan, records, summarize(records), client_cpu,
                       worker_cpu)
    return Execution(table, stats)
