"""Sessions: a warehouse's catalog plus a Dask cluster, running SQL the MPP way.

    >>> import mpp                                                   # doctest: +SKIP
    >>> with mpp.connect("/tmp/wh") as s:                            # doctest: +SKIP
    ...     r = s.sql("SELECT date, count(*) FROM access_log GROUP BY date")
    ...     print(r.stats.wall_seconds, r.explain_analyze)

``sql`` runs SQL text -> bind -> optimize -> physical plan -> Dask graph -> result; the
:class:`Result` carries the executed plan and its task records (``.stats``), and
``explain(text, stage)`` shows the plan at each step.
"""

from __future__ import annotations

import importlib
import itertools
import os
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import dask
import distributed
import pandas as pd
import pyarrow as pa

from mpp import crash
from mpp.catalog import Catalog
from mpp.config import PlannerContext, Settings
from mpp.errors import MppError
from mpp.execution.cluster import Cluster, ClusterSpec, PlanOnly
from mpp.execution.run import execute
from mpp.logical.nodes import LogicalPlan
from mpp.metrics.summary import QueryStats
from mpp.physical.explain import explain_physical
from mpp.physical.planner import PhysicalPlan, cut_stages, plan_physical
from mpp.sql.statements import (
    AlterColumn,
    CreateTable,
    CreateTableAs,
    DeleteFrom,
    DropTable,
    ExpireSnapshots,
    InsertInto,
    MergeInto,
    Optimize,
    Query,
    Statement,
    UpdateTable,
    parse_statement,
)
from mpp.text import plural

if TYPE_CHECKING:
    from mpp.write.stage import WriteOutcome

Stage = Literal["logical", "optimized", "physical", "analyze"]
STAGES: tuple[str, ...] = ("logical", "optimized", "physical", "analyze")
_QUERY_COUNTER = itertools.count(1)


def new_query_id() -> str:
    """A fresh query id, ``q<n>-<8 hex>``: the counter reads in order within a process, the
    random part keeps ids of concurrent processes apart (metrics are collected by it)."""
    return f"q{next(_QUERY_COUNTER)}-{uuid.uuid4().hex[:8]}"


class Result:
    """The rows of one query and what running it measured."""

    def __init__(self, table: pa.Table, stats: QueryStats, write: WriteOutcome | None = None):
        self._table = table
        self.stats = stats
        self.write = write  # a write (CREATE TABLE AS ...): files and write stage tasks

    @property
    def ctas(self) -> WriteOutcome | None:
        """The write's outcome (the name CREATE TABLE AS results had first)."""
        return self.write

    def to_arrow(self) -> pa.Table:
        """The result as an Arrow table (column names as the query's SELECT list)."""
        return self._table

    def to_pandas(self) -> pd.DataFrame:
        """The result as a pandas DataFrame."""
        return self._table.to_pandas()

    @property
    def explain_analyze(self) -> str:
        """EXPLAIN ANALYZE of the executed plan: per-stage rows, bytes, task times, wall time
        (and a write's write stage and commit after the SELECT's stages)."""
        text = explain_physical(self.stats.plan, self.stats)
        if self.write is not None and self.write.table:
            text = text.rstrip("\n") + "\n" + self.write.explain()
        return text

    def __repr__(self) -> str:
        return (f"Result({self._table.num_rows} rows x {self._table.num_columns} columns, "
                f"{self.stats.wall_seconds:.3f} s)")


def ddl_stats(query_id: str, wall: float) -> QueryStats:
    """Stats of a statement that ran no tasks (DROP TABLE): an empty plan, no records."""
    from mpp.physical.operators.scan import ScanExec

    root, stages = cut_stages(ScanExec("", "", (), (), ()))
    return QueryStats(query_id, wall, PhysicalPlan(root, stages, (), 1))


def _cluster(cluster: Cluster | ClusterSpec | distributed.Client | str | None) -> tuple[Cluster, bool]:
    """A Cluster for the ``cluster`` argument of :func:`connect`, and whether we own it."""
    if isinstance(cluster, Cluster):
        return cluster, False
    if isinstance(cluster, distributed.Client):
        return Cluster(client=cluster), True  # closes nothing of the caller's client
    if isinstance(cluster, str):
        return Cluster(ClusterSpec(scheduler=cluster)), True
    if cluster is None:  # a running `mpp cluster` serves every session that names none
        return default_cluster(), True
    with dask.config.set(LOCAL_SCHEDULER_CONFIG):
        return Cluster(cluster), True


def default_cluster(spec: ClusterSpec | None = None) -> Cluster:
    """The running ``mpp cluster`` if there is one, else a new LocalCluster of ``spec``'s
    shape (default: 2 workers x 1 thread): what :func:`connect` uses when it is given no
    cluster, for code that keeps one Cluster for several sessions (the notebooks).

    A stale record (the cluster died) is reported as a warning and a LocalCluster started.
    ``close()`` it when done: a LocalCluster stops; a running ``mpp cluster`` stays up (only
    the connection to it closes)."""
    from mpp.execution import background

    record, stale = background.running()
    if stale:
        warnings.warn(stale, stacklevel=2)
    if record is not None:
        return Cluster(ClusterSpec(scheduler=record.scheduler))
    with dask.config.set(LOCAL_SCHEDULER_CONFIG):
        return Cluster(spec or ClusterSpec())


# A LocalCluster mpp starts sends every ready task to a worker at once instead of queuing root
# tasks on the scheduler (worker-saturation inf): a 1,000-task leaf stage then no longer waits
# a scheduler round trip between tasks (Q0 on 100M rows: 3.0 s -> 2.0 s). Memory stays bounded
# because each leaf task's output is already small (partial aggregates). Work stealing is off:
# Dask never steals tasks shorter than 5 ms, which every leaf task is, so it only cost the
# scheduler bookkeeping per task. The workers' statistical profiler (the dashboard's Profile
# page) samples every 100 ms instead of 10 ms. Together ~4% less CPU on a 1,000-task query.
LOCAL_SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": float("inf"),
                          "distributed.scheduler.work-stealing": False,
                          "distributed.worker.profile.interval": "100ms"}


class Session:
    """A connection to a warehouse: its catalog, a cluster, and default settings."""

    def __init__(self, catalog: Catalog, cluster: Cluster, settings: Settings, *,
                 owns_cluster: bool = False):
        self.catalog = catalog
        self.cluster = cluster
        self.settings = settings
        self._owns_cluster = owns_cluster

    @property
    def dashboard_link(self) -> str | None:
        """URL of the cluster's Dask dashboard (watch the task stream read as the plan)."""
        return self.cluster.dashboard_link

    def context(self, settings: Mapping[str, Any] | None = None) -> PlannerContext:
        """The planner context of one query: session settings plus ``settings``, sized for
        :meth:`planned_size` (the cluster's, unless ``planning.*`` settings name another)."""
        merged = self.settings.merged(settings)
        workers, threads = self.planned_size(merged)
        return PlannerContext(merged, workers, workers * threads)

    def planned_size(self, settings: Settings | None = None) -> tuple[int, int]:
        """(workers, threads per worker) the plan is made for: ``planning.workers`` and
        ``planning.threads_per_worker`` where set (> 0), else the cluster's."""
        settings = settings or self.settings
        workers = int(settings["planning.workers"]) or self.cluster.worker_count()
        threads = int(settings["planning.threads_per_worker"]) or max(
            1, self.cluster.total_threads() // self.cluster.worker_count())
        return workers, threads

    def bind(self, text: str) -> LogicalPlan:
        """SQL text -> bound logical plan."""
        from mpp.sql import bind

        return bind(text, self.catalog)

    def optimize(self, plan: LogicalPlan, ctx: PlannerContext) -> LogicalPlan:
        """Apply the optimizer's rules (each switchable by its setting)."""
        from mpp.optimizer import optimize

        return optimize(plan, ctx)

    def physical(self, plan: LogicalPlan, ctx: PlannerContext) -> PhysicalPlan:
        """An optimized logical plan -> stages of partition tasks over pruned fragments."""
        return plan_physical(plan, ctx, lambda scan: self.catalog.fragments(scan.table,
                                                                            scan.predicates))

    def run_plan(self, plan: LogicalPlan, *, settings: Mapping[str, Any] | None = None,
                 optimize: bool = True, query_id: str | None = None) -> Result:
        """Run a bound logical plan (optimized first unless ``optimize`` is False).

        ``query_id`` names the run (a new one by default); an internal error in planning or
        in the tasks carries it to the user (:mod:`mpp.crash`)."""
        query_id = query_id or new_query_id()
        with crash.context(query_id=query_id):
            ctx = self.context(settings)
            if optimize:
                plan = self.optimize(plan, ctx)
            physical = self.physical(plan, ctx)
            run = execute(physical, self.cluster.client, query_id,
                          plan_text=explain_physical(physical),
                          stall_timeout=self.cluster.spec.stall_timeout)
        return Result(run.table, run.stats)

    def sql(self, text: str, *, settings: Mapping[str, Any] | None = None) -> Result:
        """Run one statement (SELECT, CREATE TABLE [AS], INSERT INTO, DELETE, UPDATE,
        MERGE, DROP TABLE); ``settings`` override the session's for this statement only."""
        return self.execute(parse_statement(text), settings=settings)

    def execute(self, stmt: Statement, *, settings: Mapping[str, Any] | None = None) -> Result:
        """Run one parsed statement (:func:`mpp.sql.statements.parse_statement`)."""
        if isinstance(stmt, Query):
            query_id = new_query_id()
            with crash.context(query_id=query_id):  # a bug in binding is in this query too
                plan = self.bind(stmt.text)
            return self.run_plan(plan, settings=settings, query_id=query_id)
        if isinstance(stmt, CreateTableAs):
            return self._create(stmt, settings)
        if isinstance(stmt, InsertInto):
            from mpp.write.insert import insert_into

            outcome = insert_into(self, stmt, settings=settings)
            return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}),
                          outcome.stats, outcome)
        if isinstance(stmt, DeleteFrom):
            from mpp.write.delete import delete_from

            outcome = delete_from(self, stmt, settings=settings)
            return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}),
                          outcome.stats, outcome)
        if isinstance(stmt, UpdateTable):
            from mpp.write.update import update_table

            outcome = update_table(self, stmt, settings=settings)
            return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}),
                          outcome.stats, outcome)
        if isinstance(stmt, MergeInto):
            from mpp.write.merge import merge_into

            outcome = merge_into(self, stmt, settings=settings)
            return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}),
                          outcome.stats, outcome)
        if isinstance(stmt, CreateTable):
            from mpp.write.ctas import create_table

            start = time.perf_counter()
            created = create_table(self, stmt)
            return Result(pa.table({"created": [created]}),
                          ddl_stats(f"create-{uuid.uuid4().hex[:8]}", time.perf_counter() - start))
        if isinstance(stmt, Optimize | ExpireSnapshots):
            return self._maintain(stmt, settings)
        if isinstance(stmt, AlterColumn):
            from mpp.write.alter import alter_column

            start = time.perf_counter()
            altered = alter_column(self, stmt, settings=settings)
            return Result(pa.table({"altered": [altered]}),
                          ddl_stats(f"alter-{uuid.uuid4().hex[:8]}", time.perf_counter() - start))
        if isinstance(stmt, DropTable):
            start = time.perf_counter()
            dropped = self.drop_table(stmt.name, if_exists=stmt.if_exists)
            return Result(pa.table({"dropped": [dropped]}),
                          ddl_stats(f"drop-{uuid.uuid4().hex[:8]}", time.perf_counter() - start))
        raise MppError(f"no way to run {type(stmt).__name__}")  # a new kind, not wired up here

    def create_table_as(self, name: str, select_sql: str, *, format: str = "parquet",
                        partitioned_by: Sequence[str] = (), target_file_bytes: int | None = None,
                        if_not_exists: bool = False,
                        settings: Mapping[str, Any] | None = None) -> Result:
        """Write the rows of ``select_sql`` as new table ``name`` (Parquet/Iceberg or ORC).

        Runs as partition tasks on the cluster and registers the table, with statistics, in
        one atomic commit; a failure leaves no table and no files. The result has one row,
        ``rows`` written (0 rows and no work if IF NOT EXISTS found the table).
        """
        from mpp.storage.base import StorageFormat

        try:
            fmt = StorageFormat(format.lower())
        except ValueError:
            raise MppError(f"format must be 'parquet' or 'orc', got {format!r}") from None
        return self._create(CreateTableAs(name, select_sql, fmt, tuple(partitioned_by),
                                          target_file_bytes, if_not_exists), settings)

    def _create(self, stmt: CreateTableAs, settings: Mapping[str, Any] | None) -> Result:
        from mpp.write.ctas import create_table_as

        merged = dict(settings or {})
        if stmt.target_file_bytes is not None:
            merged["write.target_file_bytes"] = stmt.target_file_bytes
        outcome = create_table_as(self, stmt, settings=merged)
        if outcome is None:  # IF NOT EXISTS and the table exists
            return Result(pa.table({"rows": pa.array([0], pa.int64())}),
                          ddl_stats(f"ctas-{uuid.uuid4().hex[:8]}", 0.0))
        return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}), outcome.stats,
                      outcome)

    def _maintain(self, stmt: Optimize | ExpireSnapshots,
                  settings: Mapping[str, Any] | None) -> Result:
        """ALTER TABLE ... EXECUTE optimize / expire_snapshots (:mod:`mpp.write.maintenance`)."""
        from mpp.write import maintenance

        if isinstance(stmt, Optimize):
            outcome = maintenance.optimize(self, stmt, settings=settings)
            return Result(pa.table({"rows": pa.array([outcome.rows], pa.int64())}),
                          outcome.stats, outcome if outcome.files else None)
        done = maintenance.expire_snapshots(self, stmt, settings=settings)
        return Result(pa.table({"expired_snapshots": pa.array([len(done.snapshots)], pa.int64()),
                                "deleted_files": pa.array([len(done.deleted)], pa.int64())}),
                      done.stats)

    def drop_table(self, name: str, *, if_exists: bool = False) -> bool:
        """Unregister table ``name`` and delete its files; False if IF EXISTS found none."""
        if if_exists and name not in self.catalog.tables():
            return False
        self.catalog.drop_table(name)  # UnknownTableError (with suggestions) if missing
        return True

    def explain(self, text: str, stage: Stage = "physical", *,
                settings: Mapping[str, Any] | None = None) -> str:
        """The plan of ``text`` after ``stage``; ``analyze`` runs it and adds measurements."""
        if stage not in STAGES:
            raise MppError(f"unknown explain stage {stage!r}; choose one of {', '.join(STAGES)}")
        if stage == "analyze":
            return self.sql(text, settings=settings).explain_analyze
        from mpp.logical.explain import explain_logical

        stmt = parse_statement(text)
        head = ""
        if isinstance(stmt, CreateTableAs):  # the SELECT's plan; a write stage follows it
            head = (f"CreateTableAs{' (or replace)' if stmt.replace else ''}: {stmt.name} "
                    f"({stmt.format.value}"
                    + (f", partitioned by {', '.join(stmt.partitioned_by)}"
                       if stmt.partitioned_by else "")
                    + "): write stage after the SELECT, files near write.target_file_bytes\n")
            text = stmt.select_sql
        elif isinstance(stmt, InsertInto):
            head = (f"InsertInto: {stmt.name}"
                    + (f" ({', '.join(stmt.columns)})" if stmt.columns is not None else "")
                    + ": write stage after the query, one Iceberg append snapshot\n")
            text = stmt.query_sql
        elif isinstance(stmt, DeleteFrom):
            if stmt.filter_sql is None:
                return f"DeleteFrom: {stmt.name}: every file removed (metadata only)\n"
            head = (f"DeleteFrom: {stmt.name}: the files this scan reads may hold matching "
                    "rows; a condition on identity partition columns drops them whole, any "
                    "other rewrites the files it changes\n")
            text = stmt.filter_sql
        elif isinstance(stmt, UpdateTable):
            head = (f"UpdateTable: {stmt.name}: the files this scan reads may hold matching "
                    "rows; only those with a matching row are rewritten\n")
            text = stmt.filter_sql or f"SELECT * FROM {stmt.name}"
        elif isinstance(stmt, MergeInto):
            from mpp.write.merge import _Sql

            info = self.catalog.table(stmt.name)
            queries = _Sql(stmt, tuple(info.schema.names))
            settings = {**(settings or {}), "join.strategy": "broadcast"}  # as it runs
            head = (f"MergeInto: {stmt.name}: the target files holding a matched row are "
                    "rewritten as this join computes them; unmatched source rows are inserted "
                    "as new files; one snapshot\n")
            text = queries.rewrite() if queries.updates() else queries.insert()
        elif isinstance(stmt, AlterColumn):
            return (f"AlterColumn: {stmt.name}: {stmt.describe()}: one Iceberg schema commit, "
                    "metadata only (no data file is read or written; older files are read by "
                    "field id)\n")
        elif isinstance(stmt, Optimize | ExpireSnapshots):
            raise MppError("ALTER TABLE ... EXECUTE has no plan to explain before it runs; "
                           "EXPLAIN ANALYZE runs it and shows its stages")
        elif isinstance(stmt, DropTable | CreateTable):
            raise MppError(f"{'DROP' if isinstance(stmt, DropTable) else 'CREATE'} TABLE has "
                           "no plan to explain")
        ctx = self.context(settings)
        plan = self.bind(text)
        if stage == "logical":
            return head + explain_logical(plan)
        plan = self.optimize(plan, ctx)
        if stage == "optimized":
            return head + explain_logical(plan)
        text = head + explain_physical(self.physical(plan, ctx))
        if isinstance(self.cluster, PlanOnly) or int(ctx.settings["planning.workers"]):
            workers, threads = ctx.workers, ctx.threads // ctx.workers  # the size ctx planned
            source = ("--workers / --threads or the planning.* settings; no cluster started"
                      if isinstance(self.cluster, PlanOnly)
                      else "the planning.* settings, not the cluster's size")
            text = (text.rstrip("\n") + f"\nPlanned for {plural(workers, 'worker')} x "
                    f"{plural(threads, 'thread')} ({source})\n")
        return text

    def close(self) -> None:
        """Close the cluster if this session started it."""
        if self._owns_cluster:
            self.cluster.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(warehouse: str | os.PathLike[str], *,
            cluster: Cluster | ClusterSpec | distributed.Client | str | None = None,
            settings: Mapping[str, Any] | None = None,
            catalog_uri: str | None = None, catalog: Catalog | None = None) -> Session:
    """Open a session on ``warehouse``.

    Args:
        warehouse: the warehouse directory (or URL) holding the catalog and tables.
        cluster: None uses the running ``mpp cluster`` if there is one, else starts a
            LocalCluster (``ClusterSpec`` defaults); a ClusterSpec starts
            one of that shape; a scheduler address (``"tcp://host:8786"``) or a
            ``distributed.Client`` uses an existing cluster; a Cluster is used as is.
        settings: setting values (dotted names, see ``mpp settings``) for every query.
        catalog_uri: an Iceberg catalog URI instead of the warehouse's SQLite catalog.
        catalog: the warehouse's catalog, already opened (the CLI opens it to check the query
            before any cluster starts; the session then reuses the tables it loaded).
    """
    values = Settings(settings)  # validate before starting a cluster
    catalog = catalog or Catalog.open(warehouse, catalog_uri)
    c, owns = _cluster(cluster)
    if not isinstance(c, PlanOnly):
        preload(c)
    return Session(catalog, c, values, owns_cluster=owns)


def preload(cluster: Cluster) -> None:
    """Import the task code on every worker now, so the first query's tasks do not pay for it
    (and a cluster whose workers lack mpp fails here, clearly). ``mpp cluster start`` does it
    before it records the cluster, so no later command pays it (2 s, measured). The workers
    then freeze what they imported (:func:`mpp.execution.tasks.freeze_imported`)."""
    try:
        for module in ("mpp.execution.tasks", "mpp.storage.parquet"):
            cluster.client.run(importlib.import_module, module)
    except ImportError as exc:
        raise MppError(f"the cluster's workers cannot import mpp: {exc}") from None
    from mpp.execution.tasks import freeze_imported

    # The imported code, frozen: no full garbage collection walks it inside a task (~90 ms).
    cluster.client.run(freeze_imported)
