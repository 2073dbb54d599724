"""The write stage: the rows of a planned SELECT written as files on the cluster.

Every write (CREATE TABLE AS, INSERT) runs its SELECT's stages, then this stage, then commits
once:

1. The SELECT's Dask graph gets two more tasks per result partition, ``prepare`` (columns
   renamed and cast to the table's, sorted by the partition columns) and ``measure`` (row
   ranges per partition value, estimated encoded bytes). Results stay on the workers; only the
   measurements come back.
2. :func:`~mpp.write.sizing.plan_writes` coalesces small ranges and splits large ones into
   files of about the target size; one ``write`` task per file runs where its inputs are.

The caller commits the returned files (or removes them: every file carries the write id).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dask._expr import LLGExpr

from mpp import crash
from mpp.catalog.model import Committed, TableInfo
from mpp.catalog.write import WriteTarget, WrittenFragment
from mpp.config import PlannerContext
from mpp.errors import SqlError, UnknownTableError
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
from mpp.write.sizing import Piece, WriteTask, plan_writes
from mpp.write.tasks import WritePayload, measure, prepare, range_args, write

if TYPE_CHECKING:
    from mpp.session import Session


@dataclasses.dataclass(frozen=True, slots=True)
class WriteOutcome:
    """A finished write: rows written, files, and the measurements of the run."""

    rows: int  # the statement's count: rows written (DELETE: rows deleted)
    files: tuple[WriteTask, ...]
    stats: QueryStats  # the SELECT's stages
    write_tasks: tuple[TaskRecord, ...]  # the write stage's tasks, one per file
    table: str = ""  # the table written
    commit: str = ""  # what the one commit did, e.g. "Iceberg append, snapshot 123"

    @property
    def write_seconds(self) -> float:
        """Span of the write stage (first task start to last task stop)."""
        if not self.write_tasks:
            return 0.0
        return max(r.stop for r in self.write_tasks) - min(r.start for r in self.write_tasks)

    def explain(self) -> str:
        """The write stage as EXPLAIN ANALYZE shows it, after the SELECT's stages."""
        size = sum(r.bytes_sent for r in self.write_tasks)
        stage = self.stats.plan.final_stage.id + 1
        written = sum(t.rows for t in self.files)
        return (f"Stage {stage} [write into {self.table}]: {plural(len(self.write_tasks), 'task')}"
                f" = {plural(len(self.files), 'file')}, {written:,} rows written, "
                f"{size / 2**20:.1f} MiB, {self.write_seconds:.3f} s\n"
                f"Commit: {self.commit or 'one catalog commit'}\n")

    def summary(self) -> str:
        """One line: rows, files, bytes written, time."""
        size = sum(r.bytes_sent for r in self.write_tasks)
        written = sum(t.rows for t in self.files)
        return (f"wrote {written:,} rows in {plural(len(self.files), 'file')} ({size / 2**20:.1f} MiB) "
                f"in {self.stats.wall_seconds:.3f} s (write stage {self.write_seconds:.3f} s)"
                + (f"; {self.commit}" if self.commit else ""))


@dataclasses.dataclass(slots=True)
class Pending:
    """What a statement commits at the end of :func:`one_commit`: the files it wrote and the
    paths of the current files they replace. The body of the ``with`` fills it in."""

    written: list[WrittenFragment] = dataclasses.field(default_factory=list)
    deleted: set[str] = dataclasses.field(default_factory=set)
    committed: Committed | None = None  # set by one_commit once the snapshot is in

    @property
    def changes(self) -> bool:
        """Whether there is anything to commit (files written or removed)."""
        return bool(self.written or self.deleted)


@contextlib.contextmanager
def one_commit(session: Session, target: WriteTarget, query_id: str, ctx: PlannerContext, *,
               always: bool = False) -> Iterator[Pending]:
    """Commit-or-abort around a statement's data work: the body writes files and puts them
    (and the paths they replace) in the yielded :class:`Pending`; on leaving, ONE Iceberg
    snapshot commits them if anything changed (or ``always``: an INSERT of no rows is still
    a snapshot), and the write is ended without a snapshot otherwise. A commit that loses the
    race to another writer is retried up to ``write.commit_retries`` times where the
    statement's preconditions still hold (:meth:`mpp.catalog.Catalog.commit_append`). Any
    failure, in the body or in the commit, removes the statement's files and re-raises: the
    table is left as it was."""
    catalog = session.catalog
    pending = Pending()
    try:
        yield pending
        if pending.changes or always:
            with crash.context(query_id=query_id):
                pending.committed = catalog.commit_append(
                    target, pending.written, deleted=pending.deleted,
                    retries=int(ctx.settings["write.commit_retries"]))
        else:
            catalog.abort_write(target)  # nothing to commit: no snapshot, no files
    except BaseException:
        catalog.abort_write(target)  # idempotent; commit_append already aborts on its failures
        raise


def write_outcome(session: Session, table: str, query_id: str, start: float,
                  plan: PhysicalPlan | None, rows: int, tasks: Sequence[WriteTask],
                  pending: Pending, detail: str, *, idle: str,
                  shown: str | None = None, write_ids: Sequence[str] | None = None,
                  ) -> WriteOutcome:
    """The :class:`WriteOutcome` of a statement that began at ``start`` (perf_counter):
    the measurements of ``plan``'s run (the records of query ``shown``, default
    ``query_id``; none when no plan ran), the write tasks of the ``write_ids`` runs (default
    ``query_id``), and the commit line: the snapshot and ``detail`` when ``pending`` was
    committed, ``idle`` when it was not."""
    wall = time.perf_counter() - start
    client = session.cluster.client
    if plan is None:
        from mpp.session import ddl_stats

        stats, writes = ddl_stats(query_id, wall), []
    else:
        shown = shown or query_id
        records = collect(client, shown)
        stats = QueryStats(shown, wall, plan, records, summarize(records))
        writes = [r for i in (write_ids or (query_id,)) for r in collect(client, f"{i}-write")]
    commit = idle
    done = pending.committed
    if done is not None:
        commit = (f"Iceberg {done.operation}, snapshot {done.snapshot_id}"
                  + (f" (committed again after {plural(done.retries, 'concurrent commit')})"
                     if done.retries else "")
                  + (f": {detail}" if detail else ""))
    return WriteOutcome(rows, tuple(tasks), stats, tuple(writes), table, commit)


def placed(exc: UnknownTableError, place: tuple[int, int]) -> UnknownTableError:
    """``exc`` reported at the statement's ``place`` unless it already names a line."""
    return exc if exc.line is not None else UnknownTableError(str(exc), *place)


def current_table(session: Session, name: str, place: tuple[int, int]) -> TableInfo:
    """Table ``name`` as committed now (refreshed): a write plans with, and commits on top of,
    the current version. An unknown table is reported at the statement's ``place``."""
    session.catalog.refresh(name)
    try:
        return session.catalog.table(name)
    except UnknownTableError as exc:
        raise placed(exc, place) from None


def bind_generated(session: Session, sql: str, what: str, place: tuple[int, int]) -> Any:
    """Bind ``sql``, a query mpp built from a statement: an error in it is reported at the
    statement's ``place`` (its own line and column are in the generated text)."""
    try:
        return session.bind(sql)
    except SqlError as exc:
        message = str(exc)
        if exc.line is not None:
            message = message.rsplit(" (line ", 1)[0]
        raise type(exc)(f"{what}: {message}", *place) from None


def run_write_stage(session: Session, ctx: PlannerContext, plan: PhysicalPlan,
                    target: WriteTarget, query_id: str, *,
                    names: Sequence[str] | None = None, empty_file: bool = True,
                    choose: Callable[[list[Piece]], list[Piece]] | None = None,
                    first_index: int = 0,
                    ) -> tuple[list[WrittenFragment], list[WriteTask]]:
    """Steps 1 and 2 of the module docstring: the files written, and the plan they followed.

    ``names``: the table column each SELECT column goes to (default: the SELECT's names);
    ``empty_file``: an empty unpartitioned result still writes one (empty) file, which a new
    table needs to have a file; an append of no rows writes none. ``choose``: which measured
    pieces to write (DELETE writes only the files it changes), all by default."""
    names = tuple(plan.output_names if names is None else names)
    client = session.cluster.client
    token = query_token(explain_physical(plan), query_id)
    graph = build_graph(plan, query_id, token)
    dsk = dict(graph.dsk)
    write_stage = plan.final_stage.id + 1
    prep_keys = [(f"stage{write_stage}-prepare-{token}", i) for i in range(len(graph.result_keys))]
    meas_keys = [(f"stage{write_stage}-measure-{token}", i) for i in range(len(prep_keys))]
    for i, key in enumerate(graph.result_keys):
        dsk[prep_keys[i]] = (prepare, key, names, target.schema, target.partition_by,
                             target.transforms)
        dsk[meas_keys[i]] = (measure, prep_keys[i], i, target.group_columns, target.format)
    futures = client.get(LLGExpr(dsk, _determ_token=f"{query_id}-{token}"),
                         [prep_keys, meas_keys], sync=False)
    prepared, measured = futures
    writes: list[Any] = []
    watch = Watch(client, query_id, dsk, session.cluster.spec.stall_timeout)
    try:
        pieces: list[Piece] = [p for part in watch.gather(measured) for p in part]
        if choose is not None:
            pieces = choose(pieces)
        target_bytes = int(ctx.settings["write.target_file_bytes"])
        tasks = [dataclasses.replace(t, index=t.index + first_index)
                 for t in plan_writes(pieces, target_bytes)]
        if not tasks and not target.group_columns and empty_file:  # one (empty) file
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
