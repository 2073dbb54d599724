"""PhysicalPlan -> Dask graph: one task per partition per stage, plus the exchanges' tasks.

Keys are ``(f"stage{n}-{operator words}-{token}", i)``; the dashboard groups the task stream by
the part before the hex token, so it reads as the plan (``stage1-scan-partial-agg``,
``stage1-combine``, ``stage1-split``, ``stage2-final-agg``). Dask's ``key_split`` keeps the
``-``-separated words up to the first that is not alphabetic (``partial_agg`` would end the
name) and drops any 8-letter word starting with a-f, taking it for a hex token: ``finalagg``
would show as plain ``stage2``. ``tests/test_physical_golden.py`` checks every stage and
exchange task name survives ``key_split`` whole.

A hash exchange with M producer tasks and N buckets is wired as (see
docs/architecture/execution.md)::

    map task i ──> combine c = i // F ──────────> split (c, j) ──> consumer task j
    (its output)   (merges F maps' outputs, cuts   (picks bucket j)  (takes its bucket from
                    them into N buckets by hash)                      every combine)

so the graph has about M + 2 C N edges instead of M x N. C = ceil(M / F) combines
(F = ``execution.exchange_fan_in``), but never more than 2M / N: at many buckets each combine
merges more maps, so the C N split tasks stay at most 2M (at 1,000 maps and 128 buckets, 15
combines and 1,920 splits rather than 16 and 2,048; a split task costs the scheduler as much as
any other task). A cap of M / N (7 combines) halved the splits but made each combine merge 143
maps, which became the critical path when the run is replayed on 128 workers. A broadcast is one ``collect`` task the consumer tasks all read; a gather is
a consumer task reading every producer task. Where the split tasks and the consumers of a hash
exchange run is told to the scheduler with the graph (:attr:`QueryGraph.bucket_readers`,
:meth:`QueryGraph.local_keys`, :func:`mpp.execution.run.placement`).

A stage reads several inputs (:class:`~mpp.physical.planner.StageInput`): task i of a stage gets,
for each scan (by its slot), the fragments of its partition ``i - first`` (one, or several the
planner packed into it: ``ScanExec.task_fragments``) when its task range holds i and, for
each exchange, its partition ``i - first`` of it; None when i is outside that input's range
(the other inputs of a union). Several scans may share a task (the single-task sides of a
RIGHT or FULL nested-loop join): the task then reads its fragments of each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mpp.physical.operators.exchange import ExchangeExec, ExchangeKind
from mpp.physical.operators.scan import ScanExec
from mpp.physical.planner import PhysicalPlan, Stage
from mpp.storage.base import Fragment

Key = tuple[str, int]
Graph = dict[Key, Any]
InputRef = Callable[[int], Any]  # consumer partition -> key or list of keys it reads


@dataclass(frozen=True, slots=True)
class QueryGraph:
    """The Dask graph of one query, and the keys whose values are the result partitions."""

    dsk: Graph
    result_keys: list[Key]
    # Tasks that read a hash exchange (its consumers), by their partition: the scheduler is
    # told to spread them over the workers by it (see mpp.execution.run).
    bucket_readers: dict[Key, int] = field(default_factory=dict)

    def local_keys(self) -> list[Key]:
        """Tasks that must run where their one input is: the hash exchanges' split tasks.

        A split takes one bucket of a combine task's output, so that only the bucket crosses
        to its consumer. Left to itself, Dask places a group of tasks much larger than the
        cluster that reads fewer than five tasks (a split group reads the C combines) as it
        places root tasks: spread over the workers, ignoring where the input is, so every
        worker that ran a split fetched the whole combine output (see :mod:`mpp.execution.run`,
        which tells the scheduler otherwise).
        """
        from mpp.physical.operators.exchange import take_bucket

        return [key for key, task in self.dsk.items()
                if isinstance(task, tuple) and task and task[0] is take_bucket]

    def edges(self) -> int:
        """Dependencies in the graph (for shape tests: stays ~M + 2CN at M = 1,000)."""
        return sum(len(_refs(task, self.dsk)) for task in self.dsk.values())


def _refs(obj: Any, dsk: Graph) -> list[Key]:
    if isinstance(obj, tuple) and len(obj) == 2 and obj in dsk:
        return [obj]
    if isinstance(obj, tuple | list):
        return [k for item in obj for k in _refs(item, dsk)]
    return []


def build_graph(plan: PhysicalPlan, query_id: str, token: str) -> QueryGraph:
    """The Dask graph running ``plan``; ``token`` makes the keys unique to this query.

    Exchanges get the tasks :meth:`PhysicalPlan.exchange_tasks` counts (EXPLAIN prints them).
    """
    from mpp.execution.tasks import StagePayload, run_stage_task

    dsk: Graph = {}
    refs: dict[int, InputRef] = {}
    readers: dict[Key, int] = {}
    for stage in plan.stages:
        name = f"{stage.name}-{token}"
        payload = StagePayload.of(stage, query_id)
        hashed = any(ex.kind is ExchangeKind.HASH for ex in stage.exchanges)
        for i in range(stage.tasks):
            dsk[(name, i)] = (run_stage_task, payload, i, _fragments(stage, i),
                              *_exchange_inputs(stage, i, refs))
            if hashed:
                readers[(name, i)] = i
        if stage.sink is not None:
            refs[stage.id] = _EXCHANGES[stage.sink.kind](dsk, plan, stage, token, query_id)
    final = plan.final_stage
    return QueryGraph(dsk, [(f"{final.name}-{token}", i) for i in range(final.tasks)], readers)


def _fragments(stage: Stage, task: int) -> tuple[tuple[Fragment, ...] | None, ...]:
    """The fragments task ``task`` reads of each of the stage's scans, by slot: one, or the
    several the planner packed into it (None: the scan's range does not hold the task; empty:
    its fragments were all pruned away)."""
    scans = [i for i in stage.inputs if isinstance(i.source, ScanExec)]
    out: list[tuple[Fragment, ...] | None] = [None] * len(scans)
    for scan_input in scans:
        scan = scan_input.source
        assert isinstance(scan, ScanExec)
        part = scan_input.partition(task)
        if part is not None:
            out[scan.slot] = scan.task_fragments(part)
    return tuple(out)


def _exchange_inputs(stage: Stage, task: int, refs: dict[int, InputRef]) -> list[Any]:
    """What ``task`` reads of each exchange of ``stage`` (None for one outside its range)."""
    out: list[Any] = []
    for source in stage.inputs:
        if isinstance(source.source, ExchangeExec):
            part = source.partition(task)
            out.append(None if part is None else refs[source.source.id](part))
    return out


def _hash_exchange(dsk: Graph, plan: PhysicalPlan, stage: Stage, token: str,
                   query_id: str) -> InputRef:
    from mpp.execution.tasks import CombinePayload, run_combine
    from mpp.physical.operators.exchange import take_bucket

    assert stage.sink is not None
    maps = [(f"{stage.name}-{token}", i) for i in range(stage.tasks)]
    n = stage.sink.n
    combines, _ = plan.exchange_tasks(stage)
    payload = CombinePayload.of(stage, query_id, split=True)
    combine_name = f"stage{stage.id}-combine-{token}"
    split_name = f"stage{stage.id}-split-{token}"
    for c in range(combines):
        group = maps[c * len(maps) // combines:(c + 1) * len(maps) // combines]  # never empty
        dsk[(combine_name, c)] = (run_combine, payload, c, group)
        for j in range(n):
            dsk[(split_name, c * n + j)] = (take_bucket, (combine_name, c), j)
    return lambda j: [(split_name, c * n + j) for c in range(combines)]


def _broadcast_exchange(dsk: Graph, plan: PhysicalPlan, stage: Stage, token: str,
                        query_id: str) -> InputRef:
    from mpp.execution.tasks import CombinePayload, run_combine

    maps = [(f"{stage.name}-{token}", i) for i in range(stage.tasks)]
    key = (f"stage{stage.id}-collect-{token}", 0)
    dsk[key] = (run_combine, CombinePayload.of(stage, query_id, split=False), 0, maps)
    return lambda j: key


def _gather_exchange(dsk: Graph, plan: PhysicalPlan, stage: Stage, token: str,
                     query_id: str) -> InputRef:
    maps = [(f"{stage.name}-{token}", i) for i in range(stage.tasks)]
    return lambda j: maps


_EXCHANGES: dict[ExchangeKind, Callable[[Graph, PhysicalPlan, Stage, str, str], InputRef]] = {
    ExchangeKind.HASH: _hash_exchange,
    ExchangeKind.BROADCAST: _broadcast_exchange,
    ExchangeKind.GATHER: _gather_exchange,
}

