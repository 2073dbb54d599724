"""EXPLAIN text of a PhysicalPlan, and EXPLAIN ANALYZE with the measured per-stage figures.

Stages print result-first (as Trino prints fragments): each with its task count, where its
output goes, and its operators as a tree; an exchange a stage reads shows as ``<- stage N``.
The text is deterministic (no ids, tokens or addresses), so it can be a golden file.
"""

from __future__ import annotations

from mpp.metrics.records import format_key
from mpp.metrics.skew import StageSkew, stage_lines
from mpp.metrics.summary import GroupSummary, QueryStats
from mpp.physical.operators.base import PhysicalOp
from mpp.physical.operators.exchange import ExchangeExec
from mpp.physical.operators.scan import ScanExec
from mpp.physical.operators.union import UnionExec
from mpp.physical.operators.values import ValuesExec
from mpp.physical.planner import PhysicalPlan, Stage
from mpp.text import human_bytes, plural


def _source_reason(source: PhysicalOp) -> str:
    if isinstance(source, ExchangeExec):
        return "one per hash bucket" if source.kind.name == "HASH" else "single"
    if isinstance(source, ScanExec):
        if source.packed:  # small fragments share tasks (scan.max_task_bytes)
            return (f"{plural(len(source.fragments), 'fragment')} in "
                    f"{plural(source.tasks, 'task')}")
        return "one per fragment"
    if isinstance(source, ValuesExec):
        return "one, for the rows written in the query"
    return "single"


def _task_reason(stage: Stage) -> str:
    """Why the stage has its task count: from the sources that set it (a broadcast does not)."""
    unions = [op for op in stage.operators() if isinstance(op, UnionExec)]
    if unions:
        return (f"the union's inputs' partitions concatenated: "
                f"{' + '.join(map(str, unions[-1].partitions()))}")
    sources = [i.source for i in stage.inputs
               if not (isinstance(i.source, ExchangeExec) and i.source.kind.name == "BROADCAST")]
    scans = [_source_reason(s) for s in sources if isinstance(s, ScanExec)]
    if scans:
        return scans[0]
    reasons = [_source_reason(s) for s in sources]
    if "one per hash bucket" in reasons:
        return "one per hash bucket"
    return reasons[0] if len(set(reasons)) == 1 else "single"


def _tree(op: PhysicalOp, stage: Stage, indent: str) -> list[str]:
    if isinstance(op, ExchangeExec) and op is not stage.root:
        return [f"{indent}<- stage {op.id} ({op.kind.name.lower()})"]
    lines = [indent + op.explain_line()]
    for child in op.children:
        lines += _tree(child, stage, indent + "  ")
    return lines


def _stage_header(plan: PhysicalPlan, stage: Stage) -> str:
    tasks = f"{plural(stage.tasks, 'task')} ({_task_reason(stage)})"
    if stage is plan.final_stage or stage.sink is None:
        return f"Stage {stage.id} [{stage.name}]: {tasks} -> result"
    out = stage.sink.explain_line()
    # The exchange's own tasks, as the graph has them (stageN-combine, -split, -collect).
    combines, splits = plan.exchange_tasks(stage)
    if splits:
        out += (f" via {plural(combines, 'combine task')} (fan-in {plan.exchange_fan_in}) "
                f"and {plural(splits, 'split task')}")
    elif combines:
        out += f" via {plural(combines, 'collect task')}"
    return f"Stage {stage.id} [{stage.name}]: {tasks} -> {out}"


def _measured(g: GroupSummary) -> str:
    line = (f"  measured {g.name}: {plural(g.tasks, 'task')}, rows in {g.rows_in:,} out {g.rows_out:,}, "
            f"read {human_bytes(g.bytes_read)}, exchanged {human_bytes(g.bytes_sent)}, "
            f"task time min/median/max {g.time_min * 1000:.1f}/{g.time_median * 1000:.1f}/"
            f"{g.time_max * 1000:.1f} ms, rows max/median {g.skew:.2f}")
    if any(g.join_rows):
        line += f", join input rows left {g.join_rows[0]:,} right {g.join_rows[1]:,}"
        if g.join_builds:  # a broadcast build side is built once per worker, not per task
            line += f" (build side built {plural(g.join_builds, 'time')})"
    if g.partial_skipped:  # aggregate.partial_skip_ratio: rows the partial step kept
        what = "merge" if g.name.endswith("-combine") else "partial reduction"
        line += (f", {what} skipped in {g.partial_skipped:,} of {plural(g.tasks, 'task')} "
                 "(rows not reduced)")
    if g.slowest_hot_keys:
        hot = ", ".join(f"{format_key(k)}={n:,}" for k, n in g.slowest_hot_keys)
        line += f"; slowest task (partition {g.slowest_partition}) held {hot}"
    return line


def _skew(sk: StageSkew) -> list[str]:
    verdict = "SKEWED (" + ", ".join(v.label() for v in sk.tripped) + ")" \
        if sk.skewed else "balanced"
    return [f"  skew: {verdict}"] + ["    " + line for line in stage_lines(sk)]


def explain_physical(plan: PhysicalPlan, stats: QueryStats | None = None) -> str:
    """The plan's stages, operators, task counts and exchanges; with ``stats``, measurements."""
    lines = [f"PhysicalPlan: {plural(len(plan.stages), 'stage')}, hash exchanges into "
             f"{plan.hash_buckets} buckets"]
    lines += [f"Note: {note}" for note in plan.notes]
    skews = stats.skew() if stats is not None else {}
    for stage in reversed(plan.stages):
        lines.append(_stage_header(plan, stage))
        if stats is not None:
            lines += [_measured(g) for g in stats.stages.get(stage.id, [])]
            if stage.id in skews:
                lines += _skew(skews[stage.id])
        lines += _tree(stage.root, stage, "  ")
    if stats is not None:
        # Split tasks only slice a combine's output (no work to measure), so they leave no record.
        read = f"read {stats.rows_read:,} rows, {human_bytes(stats.bytes_read)}"
        if stats.rows_read and not stats.bytes_read:
            read += " (no column data: values from the catalog and file footers)"
        lines.append(f"Wall time {stats.wall_seconds:.3f} s; {plural(len(stats.tasks), 'task record')}"
                     f" (split tasks are not recorded); {read}; "
                     f"exchanged {human_bytes(stats.bytes_exchanged)}")
        if stats.tasks:
            predicted = ", ".join(f"W={w} {p.makespan:.3f} s"
                                  for w, p in stats.predict_many().items())
            lines.append(f"What-if makespan (replayed tasks, measured overheads): {predicted}")
    return "\n".join(lines) + "\n"
