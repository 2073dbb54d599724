"""Running CREATE TABLE AS on the cluster: the SELECT's stages, then a write stage, one commit.

1. The SELECT is bound, optimized and planned as usual; its Dask graph gets two more tasks per
   result partition, ``prepare`` (columns renamed, sorted by the partition columns) and
   ``measure`` (row ranges per partition value, estimated encoded bytes). Results stay on the
   workers; only the measurements come back.
2. :func:`~mpp.ctas.sizing.plan_writes` coalesces small ranges and splits large ones into
   files of about the target size; one ``write`` task per file runs where its inputs are.
3. The catalog commits every written file in ONE Iceberg commit (Parquet) or one external-table
   registration (ORC). Until then nothing is registered, so readers never see the files.

Every file of an attempt carries the attempt's fresh write id. If anything fails (the SELECT,
a write task, the commit, an interrupt), the attempt's files are deleted and the catalog and
every earlier table are untouched. Files of an attempt killed before its clean-up are never
read either: readers list fragments from the catalog only.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from dask._expr import LLGExpr

from mpp import crash
from mpp.catalog.place import check_table_name
from mpp.catalog.write import WriteTarget, WrittenFragment
from mpp.config import PlannerContext
from mpp.ctas.sizing import Piece, WriteTask, plan_writes
from mpp.ctas.statement import CTAS_FORMATS, CreateTableAs
from mpp.ctas.tasks import WritePayload, measure, prepare, range_args, write
from mpp.errors import CatalogError, MppError, SqlError
from mpp.execution.cluster import cancel_and_drain
from mpp.execution.graph import build_graph
from mpp.execution.run import query_token
from mpp.execution.watch import Watch
from mpp.metrics.collector import collect
from mpp.metrics.records import TaskRecord
from mpp.metrics.summary import QueryStats, summarize
from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan
from mpp.text import plural

if TYPE_CHECKING:
    from mpp.session import Session

PROP_SOURCE_SQL = "mpp.ctas-select"


@dataclasses.dataclass(frozen=True, slots=True)
class CtasOutcome:
    """A finished CREATE TABLE AS: rows written, files, and the measurements of the run."""

    rows: int
    files: tuple[WriteTask, ...]
    stats: QueryStats  # the SELECT's stages
    write_tasks: tuple[TaskRecord, ...]  # the write stage's tasks, one per file

    @property
    def write_seconds(self) -> float:
        """Span of the write stage (first task start to last task stop)."""
        if not self.write_tasks:
            return 0.0
        return max(r.stop for r in self.write_tasks) - min(r.start for r in self.write_tasks)

    def summary(self) -> str:
        """One line: rows, files, bytes written, time."""
        size = sum(r.bytes_sent for r in self.write_tasks)
        return (f"wrote {self.rows:,} rows in {plural(len(self.files), 'file')} ({size / 2**20:.1f} MiB) "
                f"in {self.stats.wall_seconds:.3f} s (write stage {self.write_seconds:.3f} s)")


def top_value_columns(schema: pa.Schema) -> tuple[str, ...]:
    """Columns whose most frequent values are kept: keys that may be skewed (not floats or
    timestamps, whose values rarely repeat)."""
    def keyish(t: pa.DataType) -> bool:
        return bool(pa.types.is_integer(t) or pa.types.is_string(t)
                    or pa.types.is_large_string(t) or pa.types.is_date(t)
                    or pa.types.is_boolean(t))

    return tuple(f.name for f in schema if keyish(f.type))


def output_schema(plan: PhysicalPlan, stmt: CreateTableAs) -> pa.Schema:
    """The new table's Arrow schema from the SELECT's output (clear errors for bad names)."""
    names = list(plan.output_names)
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise SqlError(f"CREATE TABLE {stmt.name}: column {dup!r} appears twice in the SELECT; "
                       "give each column its own alias")
    unnamed = next((n for n in names if n.startswith("_col")), None)
    if unnamed is not None:
        raise SqlError(f"CREATE TABLE {stmt.name}: column {unnamed!r} has no name; add an alias "
                       "(AS name) to every computed column")
    # Stored types: NULL literals as strings, dictionary-encoded columns as their values.
    types = [pa.string() if pa.types.is_null(t) else
             t.value_type if pa.types.is_dictionary(t) else t
             for t in (f.dtype for f in plan.root.schema)]
    schema = pa.schema(list(zip(names, types, strict=True)))
    for col in stmt.partitioned_by:
        if col not in names:
            raise SqlError(f"CREATE TABLE {stmt.name}: partition column {col!r} is not a column "
                           f"of the SELECT ({', '.join(names)})")
    return schema


def create_table_as(session: Session, stmt: CreateTableAs, *,
                    settings: Mapping[str, Any] | None = None,
                    top_columns: Sequence[str] | None = None) -> CtasOutcome | None:
    """Run ``stmt`` on the session's cluster; None if IF NOT EXISTS found the table."""
    catalog = session.catalog
    check_table_name(stmt.name)  # before any planning: the name is the table's folder
    if stmt.format not in CTAS_FORMATS:
        raise MppError(f"CREATE TABLE AS writes PARQUET or ORC, not {stmt.format.value}")
    if stmt.name in catalog.tables():
        if stmt.if_not_exists:
            return None
        raise CatalogError(f"table {stmt.name!r} already exists; DROP TABLE {stmt.name} first, "
                           "or use CREATE TABLE IF NOT EXISTS")
    query_id = f"ctas-{stmt.name}-{uuid.uuid4().hex[:8]}"
    ctx = session.context(settings)
    with crash.context(query_id=query_id):  # an internal error names the statement's run
        plan = session.physical(session.optimize(session.bind(stmt.select_sql), ctx), ctx)
    schema = output_schema(plan, stmt)
    target = catalog.begin_write(
        stmt.name, schema, stmt.format, partition_by=stmt.partitioned_by,
        top_columns=top_value_columns(schema) if top_columns is None else top_columns)
    start = time.perf_counter()
    try:
        with crash.context(query_id=query_id):
            written, tasks = _run(session, ctx, plan, target, query_id)
            catalog.commit_write(target, written, {PROP_SOURCE_SQL: stmt.select_sql.strip()})
    except BaseException:
        catalog.abort_write(target)  # idempotent; commit_write already aborts on its failures
        raise
    wall = time.perf_counter() - start
    records = collect(session.cluster.client, query_id)
    stats = QueryStats(query_id, wall, plan, records, summarize(records))
    writes = collect(session.cluster.client, f"{query_id}-write")
    return CtasOutcome(sum(t.rows for t in tasks), tuple(tasks), stats, tuple(writes))


def _run(session: Session, ctx: PlannerContext, plan: PhysicalPlan, target: WriteTarget,
         query_id: str) -> tuple[list[WrittenFragment], list[WriteTask]]:
    """Steps 1 and 2 of the module docstring: the files written, and the plan they followed."""
    client = session.cluster.client
    token = query_token(explain_physical(plan), query_id)
    graph = build_graph(plan, query_id, token)
    dsk = dict(graph.dsk)
    write_stage = plan.final_stage.id + 1
    prep_keys = [(f"stage{write_stage}-prepare-{token}", i) for i in range(len(graph.result_keys))]
    meas_keys = [(f"stage{write_stage}-measure-{token}", i) for i in range(len(prep_keys))]
    for i, key in enumerate(graph.result_keys):
        dsk[prep_keys[i]] = (prepare, key, plan.output_names, target.schema, target.partition_by)
        dsk[meas_keys[i]] = (measure, prep_keys[i], i, target.partition_by, target.format)
    futures = client.get(LLGExpr(dsk, _determ_token=f"{query_id}-{token}"),
                         [prep_keys, meas_keys], sync=False)
    prepared, measured = futures
    writes: list[Any] = []
    watch = Watch(client, query_id, dsk, session.cluster.spec.stall_timeout)
    try:
        pieces: list[Piece] = [p for part in watch.gather(measured) for p in part]
        target_bytes = int(ctx.settings["write.target_file_bytes"])
        tasks = plan_writes(pieces, target_bytes)
        if not tasks and not target.partition_by:  # an empty result is still one (empty) file
            tasks = [WriteTask(0, (), 0.0)]
        payload = WritePayload(f"{query_id}-write", write_stage, f"stage{write_stage}-write", target,
                               int(ctx.settings["write.fail_task"]))
        writes += [client.submit(write, payload, t.index, range_args(prepared, t.ranges),
                                 key=f"stage{write_stage}-write-{token}-{t.index}", pure=False)
                   for t in tasks]
        watch.keys += [f.key for f in writes]
        watch.wait(writes)  # every task finished (or failed) before any clean-up
        failed = [f for f in writes if f.status == "error"]
        if failed:
            watch.gather(failed[:1])  # re-raises the task's exception here
        return watch.gather(writes), tasks
    finally:  # release the held partitions; on an interrupt, stop writes not yet started
        cancel_and_drain(client, [*prepared, *measured, *writes])
