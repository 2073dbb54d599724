"""A whole ingestion pipeline from a scenario's ``[ingest]`` section: ``mpp ingest`` and
:func:`mpp.ingest.run`.

The section names the producers (kinds, how many of each, messages each, seed), the broker
backend (``embedded`` | ``mqtt`` | ``jetstream``), the injected faults, the delivery modes,
the de-duplication strategies (``none`` | ``window:N`` | ``sql``), the batch size and the
target table. :func:`run_ingest` runs one pipeline per (mode, de-duplication) pair and counts
each with the checker against the producers' ledger:

* at-most-once and at-least-once run without de-duplication (what the hop itself gives);
* exactly-once runs once per strategy: ``window:N`` is the consumer's bounded window of recent
  IDs (:class:`~mpp.ingest.consumer.RecentIds`); ``sql`` lands the at-least-once stream in
  the table and removes duplicates at read time with a window-function query on the MPP
  engine (:data:`DEDUP_SQL`); ``none`` is at-least-once under the exactly-once name (it shows
  what the de-duplication is for).

With a target table (and a warehouse) each run commits through :class:`~mpp.ingest.sink.
IcebergSink` into its own table (``<table>`` for one run, ``<table>_<run>`` for several) with
a dead-letter table beside it, and the checker reads what the table holds: the end of the
path is the table, not the consumer's memory.
"""

from __future__ import annotations

import re
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mpp.catalog import Catalog
from mpp.errors import ScenarioError
from mpp.ingest.broker import Broker, EmbeddedBroker, Faults, Record
from mpp.ingest.bulk import BulkSpec, parse_bulk, run_bulk
from mpp.ingest.checker import DELIVERED_SCHEMA, Check, check
from mpp.ingest.consumer import Consumer, ConsumerFaults, DeliveryMode, RecentIds
from mpp.ingest.messages import MESSAGE_SCHEMA
from mpp.ingest.producers import KINDS, Kind, Ledger, Producer, plan_all, send
from mpp.ingest.sink import IcebergSink, SinkEnd, dead_letter_sink, ensure_table
from mpp.ingest.tasks import BatchTasks
from mpp.scenario.validate import Problems, join
from mpp.storage.files import local_path

BACKENDS = ("embedded", "mqtt", "jetstream")

INGEST_SCHEMA = MESSAGE_SCHEMA.append(pa.field("received_at", pa.timestamp("us")))
"""A pipeline's table: the message and when the consumer received the batch holding it."""

DEDUP_SQL = ("SELECT message_id, received_at FROM (SELECT message_id, received_at, "
             "row_number() OVER (PARTITION BY message_id ORDER BY received_at) AS copy "
             "FROM {table}) AS t WHERE copy = 1")
"""De-duplication at read time on the MPP engine: the first copy of each message ID."""

_DEDUP = re.compile(r"^(none|sql|window:([1-9][0-9]*))$")


@dataclass(frozen=True)
class IngestSpec:
    """A validated ``[ingest]`` section (see docs/scenario-reference.md)."""

    producers: tuple[tuple[str, int], ...] = (("web", 1), ("mobile", 1), ("device", 1))
    messages: int = 1000  # per producer
    seed: int = 0
    backend: str = "embedded"
    partitions: int = 4
    faults: Faults = field(default_factory=Faults)
    consumer_faults: ConsumerFaults = field(default_factory=ConsumerFaults)
    modes: tuple[DeliveryMode, ...] = tuple(DeliveryMode)
    dedup: tuple[str, ...] = ("window:100000",)
    batch_size: int = 100  # records per poll: one committed batch
    table: str | None = None
    retries: int = 8
    compact: bool = False  # compact each run's table after it, timing COMPACTION_SQL
    bulk: BulkSpec | None = None  # [ingest.bulk]: files landed on a schedule, loaded in chunks

    def runs(self) -> list[tuple[DeliveryMode, str]]:
        """The streaming (mode, de-duplication) pairs to run, in report order."""
        return [(m, d) for m in self.modes
                for d in (self.dedup if m is DeliveryMode.EXACTLY_ONCE else ("none",))]

    def bulk_runs(self) -> list[str]:
        """The bulk runs' de-duplications (``none``, ``offset``), after the streaming runs."""
        return list(self.bulk.dedup) if self.bulk is not None else []

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped ``[ingest]`` table (:func:`parse_ingest` of it gives this back)."""
        d: dict[str, Any] = {
            "producers": dict(self.producers), "messages": self.messages, "seed": self.seed,
            "backend": self.backend, "partitions": self.partitions,
            "faults": asdict(self.faults), "consumer_faults": asdict(self.consumer_faults),
            "modes": [m.value for m in self.modes], "dedup": list(self.dedup),
            "batch_size": self.batch_size, "retries": self.retries, "compact": self.compact}
        if self.table is not None:
            d["table"] = self.table
        if self.bulk is not None:
            d["bulk"] = {**asdict(self.bulk), "dedup": list(self.bulk.dedup)}
        return d

    def total_messages(self) -> int:
        """Messages the producers plan in one run."""
        return self.messages * sum(n for _, n in self.producers)


def _dataclass_from(p: Problems, t: dict[str, Any], cls: type, path: str) -> Any:
    """A Faults / ConsumerFaults from a TOML table, every key checked."""
    known = {f.name: f for f in fields(cls)}
    p.unknown_keys(t, known, path)
    values = {}
    for name, f in known.items():
        kind = int if f.type in ("int", int) else float
        v = p.get(t, name, kind, path, default=None)
        if v is None:
            continue
        if kind is float and not 0.0 <= v <= 1.0:
            p.add(join(path, name), f"a probability is between 0 and 1, got {v}.")
            continue
        values[name] = v
    return cls(**values)


def parse_ingest(p: Problems, t: Mapping[str, Any], path: str = "ingest", *,
                 scale: float = 1.0) -> IngestSpec:
    """Validate an ``[ingest]`` table into an :class:`IngestSpec`; problems go to ``p``.

    ``scale`` multiplies ``messages`` (at least one each), as ``--scale`` does the data rows.
    """
    keys = ("producers", "messages", "seed", "backend", "partitions", "faults",
            "consumer_faults", "modes", "dedup", "batch_size", "table", "retries", "compact",
            "bulk")
    p.unknown_keys(t, keys, path)
    d = IngestSpec()
    prods = p.get(t, "producers", dict, path, default={k: n for k, n in d.producers})
    producers = []
    for kind, n in (prods or {}).items():
        where = join(join(path, "producers"), kind)
        if kind not in KINDS:
            p.add(where, "unknown producer kind.", f"Known kinds: {', '.join(KINDS)}.")
        elif not isinstance(n, int) or isinstance(n, bool) or n < 0:
            p.add(where, f"expected a count of producers (an integer >= 0), got {n!r}.")
        elif n:
            producers.append((kind, n))
    if not producers:
        p.add(join(path, "producers"), "no producer.", 'Write e.g. {web = 1, device = 2}.')
    backend = p.get(t, "backend", str, path, default=d.backend)
    if backend not in BACKENDS:
        p.add(join(path, "backend"), f"unknown backend {backend!r}.",
              f"Known backends: {', '.join(BACKENDS)}.")
    modes = []
    for i, m in enumerate(p.get(t, "modes", list, path, default=[m.value for m in d.modes])
                          or []):
        try:
            modes.append(DeliveryMode(m))
        except ValueError:
            p.add(join(join(path, "modes"), i), f"unknown delivery mode {m!r}.",
                  "Known: " + ", ".join(x.value for x in DeliveryMode) + ".")
    dedup = []
    for i, s in enumerate(p.get(t, "dedup", list, path, default=list(d.dedup)) or []):
        if not isinstance(s, str) or not _DEDUP.match(s):
            p.add(join(join(path, "dedup"), i), f"unknown de-duplication {s!r}.",
                  "Known: none, window:N (N recent IDs), sql.")
        else:
            dedup.append(s)
    table = p.get(t, "table", str, path, default=None)
    if "sql" in dedup and DeliveryMode.EXACTLY_ONCE in modes and not table:
        p.add(join(path, "dedup"), "'sql' de-duplicates a table at read time.",
              "Set ingest.table to the target table's name.")
    if table is not None and backend == "mqtt":
        p.add(join(path, "table"), "MQTT has no offsets: the Iceberg sink needs a log.",
              "Use backend = 'jetstream' or 'embedded' for a table (devices reach JetStream "
              "through the bridge).")
    if table is not None and not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        p.add(join(path, "table"), f"{table!r} is not a plain lower-case table name.")
    compact = p.get(t, "compact", bool, path, default=False)
    if compact and not table:
        p.add(join(path, "compact"), "compaction rewrites a table's files.",
              "Set ingest.table to the target table's name.")
    ints = {}
    for key, low in (("messages", 1), ("seed", 0), ("partitions", 1), ("batch_size", 1),
                     ("retries", 0)):
        v = p.get(t, key, int, path, default=getattr(d, key))
        if v is not None and v < low:
            p.add(join(path, key), f"must be at least {low}, got {v}.")
        ints[key] = v if v is not None else getattr(d, key)
    ints["messages"] = max(1, round(ints["messages"] * scale))
    faults = _dataclass_from(p, p.table(t, "faults", path), Faults, join(path, "faults"))
    cfaults = _dataclass_from(p, p.table(t, "consumer_faults", path), ConsumerFaults,
                              join(path, "consumer_faults"))
    if backend != "embedded" and any(getattr(faults, f.name) != getattr(Faults(), f.name)
                                     for f in fields(Faults) if f.name != "seed"):
        p.add(join(path, "faults"), f"the {backend} backend is a real broker: its faults are "
              "not injected.", "Use backend = 'embedded', or consumer_faults only.")
    bulk = parse_bulk(p, p.table(t, "bulk", path), join(path, "bulk")) if "bulk" in t else None
    return IngestSpec(producers=tuple(producers), backend=backend, faults=faults,
                      consumer_faults=cfaults, modes=tuple(modes), dedup=tuple(dedup),
                      table=table, compact=bool(compact), bulk=bulk, **ints)


def load_ingest(path: str | Path) -> tuple[str, IngestSpec]:
    """The scenario's name and its validated ``[ingest]`` section (raises ScenarioError)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError("no such scenario file", file=str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=str(path)) from None
    p = Problems(str(path))
    section = p.table(raw, "ingest", "", required=True)
    spec = parse_ingest(p, section)
    p.raise_if_any()
    return str(raw.get("name", path.stem)), spec


@dataclass
class Progress:
    """Running totals of a pipeline, for a progress bar's live summary."""

    run: str = ""
    index: int = 0  # of the run in the pipeline's runs
    sent: int = 0
    delivered: int = 0
    duplicated: int = 0
    planned: int = 0

    @property
    def lost(self) -> int:
        """Sent and not (yet) delivered."""
        return self.sent - self.delivered

    def line(self) -> str:
        """``sent 300 / delivered 297 / lost 3 / duplicated 5``."""
        return (f"sent {self.sent} / delivered {self.delivered} / lost {self.lost} / "
                f"duplicated {self.duplicated}")


class _Counting:
    """The in-memory end: counts each arrival (and keeps it for the checker), then passes the
    records on to the table's end, if any."""

    def __init__(self, progress: Progress, then: Callable[[Sequence[Record]], None] | None):
        self.progress, self.then = progress, then
        self.seen: set[str] = set()
        self.ids: list[str] = []
        self.arrived_ns: list[int] = []

    def __call__(self, records: Sequence[Record]) -> None:
        now = time.time_ns()
        for r in records:
            if r.message_id in self.seen:
                self.progress.duplicated += 1
            else:
                self.seen.add(r.message_id)
                self.progress.delivered += 1
        self.ids.extend(r.message_id for r in records)
        self.arrived_ns.extend([now] * len(records))
        if self.then is not None:
            self.then(records)

    def delivered(self) -> pa.Table:
        return pa.table([pa.array(self.ids, pa.string()), pa.array(self.arrived_ns, pa.int64())],
                        schema=DELIVERED_SCHEMA)


@dataclass
class RunRow:
    """One (mode, de-duplication) run: its counts and what the de-duplication cost."""

    mode: str
    dedup: str
    table: str | None
    check: Check
    consumer_deduplicated: int = 0
    consumer_duplicates: int = 0  # copies past the window (slipped), before the sink
    window_memory_bytes: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    compaction: dict[str, Any] | None = None  # files and COMPACTION_SQL's time before/after
    sql_dedup: dict[str, Any] | None = None  # rows in, rows out and DEDUP_SQL's time
    tasks: dict[str, int] = field(default_factory=dict)  # cluster tasks per kind (consume...)
    task_seconds: float = 0.0  # time those tasks ran, summed over their records
    path: str = "stream"  # or "bulk": files landed on a schedule
    bulk: dict[str, int] | None = None  # a bulk run's BulkCounts

    @property
    def name(self) -> str:
        """``exactly-once/window:1000``; ``bulk:exactly-once/offset`` for a bulk run."""
        return run_label({"path": self.path, "mode": self.mode, "dedup": self.dedup})

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON reports)."""
        d = asdict(self)
        d["check"] = self.check.as_dict()
        d["holds"] = self.check.holds(self.mode)
        return d


@dataclass
class IngestResult:
    """Every run of a pipeline."""

    spec: IngestSpec
    rows: list[RunRow]

    def table(self) -> str:
        """The checker's counts, one line per run (what ``mpp ingest`` prints at the end)."""
        return format_rows([r.as_dict() for r in self.rows])


def run_label(row: Mapping[str, Any]) -> str:
    """A :meth:`RunRow.as_dict` row's name: ``mode/dedup``, ``bulk:`` first for bulk runs."""
    prefix = "bulk:" if row.get("path") == "bulk" else ""
    return f"{prefix}{row['mode']}/{row['dedup']}"


def format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """:meth:`RunRow.as_dict` rows as a text table, then the compactions (also the scenario
    summary's ingestion part)."""
    head = ("run", "attempted", "delivered", "lost", "lost acked", "duplicated", "copies",
            "unexpected", "msg/s", "p50 ms", "p99 ms", "window KiB", "past window", "holds")
    lines = [head]
    for r in rows:
        c = r["check"]
        lat = c["latency_ms"]
        lines.append((run_label(r), str(c["attempted"]), str(c["delivered"]),
                      str(c["lost"]), str(c["lost_acknowledged"]), str(c["duplicated"]),
                      str(c["duplicate_copies"]), str(c["unexpected"]),
                      f"{c['throughput_per_s']:,.0f}", f"{lat.get('p50', float('nan')):.1f}",
                      f"{lat.get('p99', float('nan')):.1f}",
                      f"{r['window_memory_bytes'] / 1024:,.0f}" if r["window_memory_bytes"]
                      else "-",
                      str(r["consumer_duplicates"]) if r["window_memory_bytes"] else "-",
                      "yes" if r["holds"] else "NO"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = "\n".join("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths, strict=True)))
                     for row in lines)
    for r in rows:
        q = r.get("sql_dedup")
        if q:
            text += (f"\nSQL de-duplication of {r['table']}: {q['rows_in']} -> {q['rows_out']}"
                     f" rows in {q['query_s']:.2f} s (row_number() on the engine)")
    for r in rows:
        b = r.get("bulk")
        if b:
            text += (f"\nbulk load of {r['table'] or run_label(r)}: {b['files']} files landed, "
                     f"{b['deliveries']} delivered, {b['chunks']} chunks read, {b['loaded']} "
                     f"loaded, {b['skipped']} skipped by (file, offset), {b['restarts']} "
                     "loader restarts")
    for r in rows:
        if r.get("tasks"):
            text += (f"\ncluster tasks of {r['table']}: " + ", ".join(
                f"{n} ingest-{k}" for k, n in r["tasks"].items())
                + f" ({r.get('task_seconds', 0.0):.2f} s of task time)")
    for r in rows:
        c = r.get("compaction")
        if c:
            text += (f"\ncompaction of {r['table']}: {c['files_before']} -> {c['files_after']}"
                     f" files, {c['tasks_before']} -> {c['tasks_after']} tasks, query "
                     f"{c['query_s_before']:.2f} s -> {c['query_s_after']:.2f} s")
    return text


def _broker(spec: IngestSpec) -> Broker:
    if spec.backend == "embedded":
        return EmbeddedBroker(spec.faults)
    from mpp.ingest import services

    if spec.backend == "mqtt":
        why = services.mqtt_missing()
        if why:
            raise ScenarioError(f"ingest.backend 'mqtt': {why}")
        from mpp.ingest.mqtt import MqttBroker

        return MqttBroker(*services.MQTT_ADDR, qos=1)
    why = services.nats_missing()
    if why:
        raise ScenarioError(f"ingest.backend 'jetstream': {why}")
    from mpp.ingest.jetstream import JetStreamBroker

    return JetStreamBroker("nats://{}:{}".format(*services.NATS_ADDR))


def _settle(consumer: Consumer, broker: Broker, expected: int, got: Callable[[], int],
            timeout: float = 10.0) -> None:
    """Let the consumer read until the group has no lag (embedded) or ``expected`` records
    arrived and a poll comes back empty (real brokers cannot tell the lag). A real broker's
    wait ends after ``timeout`` seconds without a record (at most 31 x ``timeout`` in all), not
    after ``timeout`` in all: on a busy machine delivery is slow, and stopping early would
    count slow records as lost."""
    if isinstance(broker, EmbeddedBroker):
        for _ in range(1_000_000):
            if broker.lag(consumer.group, consumer.topic) == 0:
                return
            consumer.step()
        raise RuntimeError("consumer made no progress")  # pragma: no cover - a bug
    deadline = time.monotonic() + timeout
    cap = deadline + 30 * timeout  # redeliveries that never end must end the wait too
    while time.monotonic() < deadline:
        if consumer.step(timeout=0.2) > 0:
            deadline = min(cap, time.monotonic() + timeout)  # records keep coming
        elif got() >= expected:
            return


def _plan_run(spec: IngestSpec, progress: Progress, run: str) -> tuple[list[Producer], pa.Table]:
    """The run's seeded producers and every message they plan to send, noted in ``progress``."""
    progress.run = run
    producers = [Producer(cast(Kind, kind), i, seed=spec.seed) for kind, n in spec.producers
                 for i in range(n)]
    planned = plan_all(producers, spec.messages)
    progress.planned = planned.num_rows
    return producers, planned


def table_name(spec: IngestSpec, mode: DeliveryMode, dedup: str) -> str | None:
    """The table a run lands in: ``<table>`` alone, ``<table>_<mode>[_<dedup>]`` for several."""
    if spec.table is None:
        return None
    if len(spec.runs()) == 1:
        return spec.table
    suffix = mode.value.replace("-", "_")
    if mode is DeliveryMode.EXACTLY_ONCE:
        suffix += "_" + dedup.replace(":", "_")
    return f"{spec.table}_{suffix}"


def read_delivered(catalog: Catalog, table: str) -> pa.Table:
    """What a pipeline's table holds as the checker's delivered copies (every row, with its
    receive time), read from the table's files."""
    catalog.refresh(table)
    parts = [pq.read_table(local_path(f.uri), columns=["message_id", "received_at"])
             for f in catalog.fragments(table)]
    got = pa.concat_tables(parts) if parts else INGEST_SCHEMA.empty_table().select(
        ["message_id", "received_at"])
    return _as_delivered(got)


def _as_delivered(got: pa.Table) -> pa.Table:
    ns = pc.multiply(pc.cast(pc.cast(got["received_at"], pa.timestamp("us")), pa.int64()), 1000)
    return pa.table([got["message_id"].cast(pa.string()), ns], schema=DELIVERED_SCHEMA)


COMPACTION_SQL = ("SELECT producer, count(*) AS n, count(DISTINCT message_id) AS ids "
                  "FROM {table} GROUP BY producer")
"""The query timed before and after a compaction (it reads every file of the table)."""


def compact_and_time(session: Any, table: str, *, target_file_bytes: int | None = None
                     ) -> dict[str, Any]:
    """Compact ``table`` (:func:`mpp.ingest.compact.compact`) and time
    :data:`COMPACTION_SQL` on the engine before and after: files, tasks and seconds."""
    from mpp.ingest.compact import compact

    def timed() -> tuple[float, int, pa.Table]:
        session.catalog.refresh(table)
        t0 = time.perf_counter()
        result = session.sql(COMPACTION_SQL.format(table=table))
        return time.perf_counter() - t0, len(result.stats.tasks), result.to_arrow()

    before_s, before_tasks, before = timed()
    kw = {} if target_file_bytes is None else {"target_file_bytes": target_file_bytes}
    done = compact(session, table, **kw)
    after_s, after_tasks, after = timed()
    return {"files_before": done.files_before, "files_after": done.files_after,
            "tasks_before": before_tasks, "tasks_after": after_tasks,
            "query_s_before": before_s, "query_s_after": after_s,
            "same_result": before.sort_by("producer").equals(after.sort_by("producer"))}


def dedup_sql(session: Any, table: str) -> pa.Table:
    """:data:`DEDUP_SQL` on the MPP engine (``session``: :class:`mpp.session.Session`), as the
    checker's delivered copies."""
    session.catalog.refresh(table)
    return _as_delivered(session.sql(DEDUP_SQL.format(table=table)).to_arrow())


def run_one(spec: IngestSpec, mode: DeliveryMode, dedup: str, *, catalog: Catalog | None = None,
            session: Any = None, progress: Progress | None = None,
            on_chunk: Callable[[Progress], None] | None = None, chunk: int = 200) -> RunRow:
    """One pipeline run (see the module docstring).

    The producers send ``chunk`` messages (at least a batch) at a time; after each chunk the
    consumer reads until it caught up, so the run interleaves sending and consuming.
    """
    progress = progress or Progress()
    producers, planned = _plan_run(spec, progress, f"{mode.value}/{dedup}")
    broker = _broker(spec)
    topic = "events" if spec.backend == "embedded" else f"ingest_{uuid.uuid4().hex[:10]}"
    table = table_name(spec, mode, dedup)
    started = time.monotonic()
    try:
        broker.create_topic(topic, spec.partitions)
        sink_end = None
        tasks = None
        if table is not None:
            if catalog is None:
                raise ScenarioError("ingest.table is set: the pipeline needs a warehouse")
            ensure_table(catalog, table, INGEST_SCHEMA)
            client = session.cluster.client if session is not None else None
            tasks = BatchTasks(client, table)
            sink_end = SinkEnd(IcebergSink(catalog, table, sink_id="ingest", tasks=tasks),
                               dead_letter_sink(catalog, table, tasks=tasks), tasks=tasks)
        end = _Counting(progress, sink_end)
        window = None
        if mode is DeliveryMode.EXACTLY_ONCE and dedup.startswith("window:"):
            window = RecentIds(int(dedup.split(":")[1]))
        consumer_mode = mode if window is not None else (
            DeliveryMode.AT_LEAST_ONCE if mode is DeliveryMode.EXACTLY_ONCE else mode)
        consumer = Consumer(broker, "sink", topic, "c0", consumer_mode, end, window=window,
                            faults=spec.consumer_faults, max_records=spec.batch_size)
        ledger = Ledger()
        retries = 0 if mode is DeliveryMode.AT_MOST_ONCE else spec.retries
        expected = 0
        chunk = max(chunk, spec.batch_size)  # a batch is not cut short by the chunk's end
        for lo in range(0, planned.num_rows, chunk):
            expected += send(planned.slice(lo, chunk), broker, topic, ledger, retries=retries)
            progress.sent = len(ledger)
            _settle(consumer, broker, expected,
                    lambda: consumer.counts.deduplicated + len(end.ids))
            if on_chunk is not None:
                on_chunk(progress)
    finally:
        if spec.backend != "embedded":
            broker.delete_topic(topic)
        broker.close()
    seconds = time.monotonic() - started
    task_counts: dict[str, int] = {}
    task_seconds = 0.0
    if tasks is not None and tasks.client is not None:  # what ran on the cluster
        task_counts = dict(tasks.counts)
        task_seconds = sum(r.duration for r in tasks.records())
    sql_dedup = None
    if table is None:
        delivered = end.delivered()
    elif dedup == "sql" and mode is DeliveryMode.EXACTLY_ONCE:
        if session is None:
            raise ScenarioError("ingest.dedup 'sql' runs a query: the pipeline needs a session")
        assert catalog is not None
        rows_in = read_delivered(catalog, table).num_rows
        t0 = time.perf_counter()
        delivered = dedup_sql(session, table)
        sql_dedup = {"rows_in": rows_in, "rows_out": delivered.num_rows,
                     "query_s": time.perf_counter() - t0}
    else:
        assert catalog is not None
        delivered = read_delivered(catalog, table)
    compaction = None
    if spec.compact and table is not None:
        if session is None:
            raise ScenarioError("ingest.compact times a query: the pipeline needs a session")
        compaction = compact_and_time(session, table)
    return RunRow(mode.value, dedup, table, check(ledger.table(), delivered),
                  consumer_deduplicated=consumer.counts.deduplicated,
                  consumer_duplicates=end.progress.duplicated,
                  window_memory_bytes=window.memory_bytes() if window is not None else 0,
                  dead_letters=len(sink_end.dead_letters) if sink_end is not None else 0,
                  seconds=seconds, compaction=compaction, sql_dedup=sql_dedup,
                  tasks=task_counts, task_seconds=task_seconds)


def run_bulk_one(spec: IngestSpec, dedup: str, *, catalog: Catalog | None = None,
                 session: Any = None, progress: Progress | None = None,
                 on_chunk: Callable[[Progress], None] | None = None,
                 landing: Path | None = None) -> RunRow:
    """One bulk run (:mod:`mpp.ingest.bulk`): the producers' messages landed as files on
    ``spec.bulk``'s schedule into ``landing`` (a temporary folder by default) and loaded in
    chunks; ``dedup`` ``offset`` skips a chunk already loaded (exactly-once), ``none`` loads it
    again (at-least-once). With a table (``<table>_bulk_<dedup>``) the chunks land there and
    the checker reads the table."""
    import tempfile

    assert spec.bulk is not None
    mode = DeliveryMode.EXACTLY_ONCE if dedup == "offset" else DeliveryMode.AT_LEAST_ONCE
    progress = progress or Progress()
    producers, planned = _plan_run(spec, progress, f"bulk:{mode.value}/{dedup}")
    table = None if spec.table is None else f"{spec.table}_bulk_{dedup}"
    sink = tasks = None
    if table is not None:
        if catalog is None:
            raise ScenarioError("ingest.table is set: the pipeline needs a warehouse")
        ensure_table(catalog, table, INGEST_SCHEMA)
        tasks = BatchTasks(session.cluster.client if session is not None else None, table)
        sink = IcebergSink(catalog, table, sink_id="bulk", tasks=tasks)
    arrived: list[pa.Table] = []
    seen: set[str] = set()

    def end(batch: pa.Table) -> None:
        arrived.append(batch.select(["message_id", "received_at"]))
        for mid in batch["message_id"].to_pylist():
            if mid in seen:
                progress.duplicated += 1
            else:
                seen.add(mid)
                progress.delivered += 1

    ledger = Ledger()

    def delivered_one(_: Any) -> None:
        progress.sent = len(ledger)
        if on_chunk is not None:
            on_chunk(progress)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mpp-landing-") as tmp:
        folder = (landing or Path(tmp)) / (table or f"bulk_{dedup}")
        counts = run_bulk(planned, spec.bulk, dedup, folder, ledger, sink=sink, tasks=tasks,
                          end=end, on_delivery=delivered_one)
    seconds = time.monotonic() - started
    if table is None:
        got = pa.concat_tables(arrived) if arrived else INGEST_SCHEMA.empty_table().select(
            ["message_id", "received_at"])
        delivered = _as_delivered(got)
    else:
        assert catalog is not None
        delivered = read_delivered(catalog, table)
    task_counts: dict[str, int] = {}
    task_seconds = 0.0
    if tasks is not None and tasks.client is not None:
        task_counts = dict(tasks.counts)
        task_seconds = sum(r.duration for r in tasks.records())
    compaction = None
    if spec.compact and table is not None:
        compaction = compact_and_time(session, table)
    return RunRow(mode.value, dedup, table, check(ledger.table(), delivered),
                  seconds=seconds, compaction=compaction, tasks=task_counts,
                  task_seconds=task_seconds, path="bulk", bulk=asdict(counts))


def run_ingest(spec: IngestSpec, *, warehouse: str | Path | None = None, cluster: Any = None,
               on_chunk: Callable[[Progress], None] | None = None) -> IngestResult:
    """Run every (mode, de-duplication) pair of ``spec``; with ``spec.table``, into Iceberg
    tables of ``warehouse`` (created if missing). ``cluster`` (see :func:`mpp.connect`) runs
    the consumers' per-batch tasks (:mod:`mpp.ingest.tasks`), the ``sql`` de-duplication's
    query and the compactions; ``on_chunk`` is called with the running
    totals after each chunk of messages."""
    catalog = Catalog.open(warehouse, create=True) if warehouse is not None else None
    if spec.table is not None and catalog is None:
        raise ScenarioError("ingest.table is set: give a warehouse (--warehouse)")
    session = None
    try:
        if spec.table is not None and warehouse is not None:  # tasks, SQL and compaction
            from mpp.session import connect

            session = connect(warehouse, cluster=cluster)
        rows = [run_one(spec, m, d, catalog=catalog, session=session, on_chunk=on_chunk,
                        progress=Progress(index=i))
                for i, (m, d) in enumerate(spec.runs())]
        landing = Path(warehouse) / "landing" if warehouse is not None else None
        rows += [run_bulk_one(spec, d, catalog=catalog, session=session, on_chunk=on_chunk,
                              progress=Progress(index=len(rows) + i), landing=landing)
                 for i, d in enumerate(spec.bulk_runs())]
    finally:
        if session is not None:
            session.close()
    return IngestResult(spec, rows)


def run(scenario: str | Path | IngestSpec | Mapping[str, Any], *,
        warehouse: str | Path | None = None, cluster: Any = None,
        on_chunk: Callable[[Progress], None] | None = None) -> IngestResult:
    """``mpp ingest`` from Python: a scenario file, its ``[ingest]`` table as a dict, or an
    :class:`IngestSpec`; see :func:`run_ingest`."""
    if isinstance(scenario, IngestSpec):
        spec = scenario
    elif isinstance(scenario, Mapping):
        p = Problems("<ingest>")
        spec = parse_ingest(p, scenario)
        p.raise_if_any()
    else:
        spec = load_ingest(scenario)[1]
    return run_ingest(spec, warehouse=warehouse, cluster=cluster, on_chunk=on_chunk)
