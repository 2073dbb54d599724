"""``mpp bench joins``: where a broadcast join stops beating a partitioned (hash) join.

One fact table (access_log, ``fact_rows`` rows in ``partitions`` Parquet files) is joined with
dimension tables ``dim_<N>`` of N rows (``user_id`` 1..N, a group and a score) by::

    SELECT d.grp, count(*), sum(a.bytes) FROM access_log a JOIN dim_<N> d
    ON d.user_id = a.user_id GROUP BY d.grp

once per strategy (``join.strategy`` forced), on a fresh session of one LocalCluster. Per run:

* wall time (client side, graph submit to result);
* bytes handed to exchanges (mpp's own count, :attr:`QueryStats.bytes_exchanged`), split into
  hash-exchanged and broadcast bytes, and the model: partitioned moves ~|fact side| + |dim
  side| (the fraction (W-1)/W crosses the network); broadcast moves |dim side| to every worker
  that runs a probe task: ~|dim| x W. Dask fetches a key once per worker, not once per task, so
  "x workers" (not "x tasks") is what really crosses the network;
* bytes Dask actually moved between workers (each worker's ``transfer_incoming_log`` during
  the query; LocalCluster workers on one machine still serialise and copy through TCP);
* peak resident memory per worker (each worker process sampled every 50 ms with psutil);
* predicted makespan at larger worker counts (:func:`mpp.metrics.whatif.predict_many`). The
  what-if model charges an exchange's bytes once, hash-spread; for a broadcast the bytes go to
  every worker, so ``|dim| (W-1) / bandwidth`` (the producing worker's link) is added.

What ``auto`` would choose (``optimizer.broadcast_threshold_bytes``) is printed beside each size.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mpp.catalog import Catalog
from mpp.catalog.write import write_fragment
from mpp.errors import KnobError
from mpp.execution.cluster import Cluster, ClusterSpec
from mpp.metrics.summary import QueryStats
from mpp.metrics.whatif import DEFAULT_BANDWIDTH, predict_many
from mpp.physical.operators.base import PhysicalOp
from mpp.physical.operators.exchange import ExchangeExec
from mpp.storage.base import StorageFormat

DIM_ROWS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
STRATEGIES = ("broadcast", "partitioned")
WHATIF = (8, 32, 128)
DIM_FRAGMENT_ROWS = 1_000_000
MiB = 1024**2
QUERY = ("SELECT d.grp, count(*) n, sum(a.bytes) b FROM access_log a "
         "JOIN {dim} d ON d.user_id = a.user_id GROUP BY d.grp")


@dataclass(frozen=True, slots=True)
class JoinRun:
    """One strategy joining the fact table with one dimension size."""

    dim_rows: int
    strategy: str
    auto_choice: str
    wall_seconds: float
    out_rows: int
    hash_bytes: int  # handed to hash exchanges (both sides of a partitioned join)
    broadcast_bytes: int  # handed to the broadcast exchange once (the dim side)
    model_bytes: int  # partitioned: fact + dim sides; broadcast: dim side x probe workers
    network_bytes: int  # what Dask moved between workers
    peak_worker_bytes: int  # the largest worker's peak RSS
    predicted_s: dict[int, float] = field(default_factory=dict)  # workers -> makespan


class WorkerMemory:
    """Context manager: peak RSS of every worker process of a (local) cluster."""

    def __init__(self, client: Any, interval: float = 0.05):
        import psutil

        self._procs = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        self.peaks = [0] * len(self._procs)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mpp-worker-rss", daemon=True)

    def _sample(self) -> None:
        for i, p in enumerate(self._procs):
            try:
                self.peaks[i] = max(self.peaks[i], p.memory_info().rss)
            except Exception:  # noqa: BLE001 - a worker restarting: keep the peak so far
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> WorkerMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _transfer_log(dask_worker: Any) -> list[tuple[float, int]]:
    return [(e["start"], int(e["total"])) for e in dask_worker.transfer_incoming_log]


def network_bytes(client: Any, since: float) -> int:
    """Bytes the workers fetched from each other since epoch second ``since``."""
    logs = client.run(_transfer_log)
    return sum(n for entries in logs.values() for start, n in entries if start >= since)


def _dim_table(lo: int, hi: int, seed: int) -> pa.Table:
    ids = np.arange(lo + 1, hi + 1, dtype=np.int64)
    rng = np.random.default_rng(seed + lo)
    return pa.table({"user_id": ids, "grp": ids % 100,
                     "score": rng.random(len(ids))})


def prepare_warehouse(path: str, fact_rows: int, partitions: int, dims: Sequence[int],
                      client: Any, seed: int = 0) -> Catalog:
    """The fact table (generated once) and every ``dim_<N>`` table missing from ``path``."""
    from mpp.datagen import DatagenSpec, generate

    if not (Path(path) / "catalog.db").exists():
        spec = DatagenSpec(rows=fact_rows, partitions=partitions, seed=seed, hot_day=0,
                           days=min(30, partitions),
                           sessions=1_000, urls=1_000)
        generate(path, spec, client=client, progress=sys.stderr.isatty())
    catalog = Catalog.open(path)
    have = catalog.table("access_log").stats.row_count
    if have != fact_rows:
        raise KnobError(f"{path} holds {have:,} access_log rows, not --fact-rows {fact_rows:,}; "
                        "use another --out")
    for n in dims:
        name = f"dim_{n}"
        if name in catalog.tables():
            continue
        target = catalog.begin_write(name, _dim_table(0, 0, seed).schema, StorageFormat.PARQUET)
        bounds = range(0, n, DIM_FRAGMENT_ROWS)
        written = [write_fragment(target, i, _dim_table(lo, min(n, lo + DIM_FRAGMENT_ROWS),
                                                        seed))
                   for i, lo in enumerate(bounds)]
        catalog.commit_write(target, written)
    return catalog


def _join_inputs(op: PhysicalOp) -> list[ExchangeExec]:
    """The exchanges feeding the hash joins in ``op``'s tree (not the aggregation's)."""
    found = [c for c in op.children if isinstance(c, ExchangeExec)] if op.word == "hashjoin" \
        else []
    return found + [e for c in op.children for e in _join_inputs(c)]


def join_exchange_bytes(stats: QueryStats) -> dict[str, int]:
    """Bytes the producer tasks handed to the joins' exchanges, by kind (HASH, BROADCAST)."""
    sent = {"HASH": 0, "BROADCAST": 0}
    for ex in {e.id: e for e in _join_inputs(stats.plan.root)}.values():
        stage = stats.plan.stage(ex.id)
        groups = stats.stages.get(ex.id, [])
        sent[ex.kind.name] += sum(g.bytes_sent for g in groups if g.name == stage.name)
    return sent


def _auto_choice(session: Any, sql: str) -> str:
    text = session.explain(sql, "optimized")
    return "broadcast" if "strategy=broadcast" in text else "partitioned"


def run_one(session: Any, n: int, strategy: str, workers: Sequence[int]) -> JoinRun:
    """Run the benchmark query for ``dim_<n>`` with ``strategy`` forced, and measure it."""
    sql = QUERY.format(dim=f"dim_{n}")
    client = session.cluster.client
    since = time.time()
    with WorkerMemory(client) as mem:
        result = session.sql(sql, settings={"join.strategy": strategy})
    stats = result.stats
    sent = join_exchange_bytes(stats)
    probe_workers = len({r.worker for r in stats.tasks if any(r.join_rows)})
    model = (sent["HASH"] if strategy == "partitioned"
             else sent["BROADCAST"] * max(1, probe_workers))
    predicted = {w: p.makespan + (sent["BROADCAST"] * (w - 1) / DEFAULT_BANDWIDTH)
                 for w, p in predict_many(stats.tasks, workers).items()}
    return JoinRun(n, strategy, _auto_choice(session, sql), stats.wall_seconds,
                   result.to_arrow().num_rows, sent["HASH"], sent["BROADCAST"], model,
                   network_bytes(client, since), max(mem.peaks), predicted)


def bench_joins(*, fact_rows: int = 10_000_000, dims: Sequence[int] = DIM_ROWS,
                strategies: Sequence[str] = STRATEGIES, partitions: int = 100,
                workers: int = 2, threads: int = 1, whatif: Sequence[int] = WHATIF,
                out: str | None = None, keep: bool = False,
                settings: dict[str, Any] | None = None,
                cluster: Cluster | None = None, repeats: int = 1) -> list[JoinRun]:
    """Sweep ``dims`` at ``fact_rows`` for each strategy; the warehouse goes to ``out`` (a
    temporary directory, deleted unless ``keep``, when None; reused when it exists). A
    ``cluster`` given is used as is (``workers``/``threads`` then do not apply). Each run is
    repeated ``repeats`` times and the fastest kept (the machine is shared: the minimum is the
    least disturbed)."""

    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not dims or min(dims) < 1 or repeats < 1:
        raise KnobError(f"strategies must be among {STRATEGIES}, dim sizes and repeats >= 1 "
                        f"(got {list(strategies)}, {list(dims)}, {repeats})")
    path = out or tempfile.mkdtemp(prefix="mpp-bench-joins-")
    spec = ClusterSpec(workers=workers, threads_per_worker=threads, dashboard_address=None)
    try:
        if cluster is not None:
            return _sweep(path, cluster, fact_rows, partitions, dims, strategies, whatif,
                          settings, repeats)
        with Cluster(spec) as own:
            return _sweep(path, own, fact_rows, partitions, dims, strategies, whatif, settings,
                          repeats)
    finally:
        if out is None and not keep:
            shutil.rmtree(path, ignore_errors=True)


def _sweep(path: str, cluster: Cluster, fact_rows: int, partitions: int, dims: Sequence[int],
           strategies: Sequence[str], whatif: Sequence[int],
           settings: dict[str, Any] | None, repeats: int) -> list[JoinRun]:
    import mpp

    prepare_warehouse(path, fact_rows, partitions, dims, cluster.client)
    with mpp.connect(path, cluster=cluster, settings=settings) as session:
        session.sql(QUERY.format(dim=f"dim_{min(dims)}"))  # warm the workers up
        return [min((run_one(session, n, s, whatif) for _ in range(repeats)),
                    key=lambda r: r.wall_seconds)
                for n in dims for s in strategies]


def crossover(runs: Sequence[JoinRun]) -> int | None:
    """The smallest dimension size from which partitioned was faster at every larger size
    (one noisy small size does not make a crossover); None if broadcast won at the largest."""
    walls = {(r.dim_rows, r.strategy): r.wall_seconds for r in runs}
    sizes = [n for n in sorted({r.dim_rows for r in runs})
             if (n, "broadcast") in walls and (n, "partitioned") in walls]
    found = None
    for n in reversed(sizes):
        if walls[n, "partitioned"] >= walls[n, "broadcast"]:
            break
        found = n
    return found


def format_runs(runs: Sequence[JoinRun]) -> str:
    """A terminal table of the runs and the crossover statement."""
    ws = sorted({w for r in runs for w in r.predicted_s})
    head = (f"{'dim rows':>10} {'strategy':11} {'auto':11} {'wall s':>7} {'hash MiB':>9} "
            f"{'bcast MiB':>9} {'model MiB':>9} {'net MiB':>8} {'peak wkr MiB':>12}"
            + "".join(f" {'W=' + str(w) + ' s':>8}" for w in ws))
    lines = [head]
    for r in runs:
        lines.append(
            f"{r.dim_rows:>10,} {r.strategy:11} {r.auto_choice:11} {r.wall_seconds:7.2f} "
            f"{r.hash_bytes / MiB:9.1f} {r.broadcast_bytes / MiB:9.1f} "
            f"{r.model_bytes / MiB:9.1f} {r.network_bytes / MiB:8.1f} "
            f"{r.peak_worker_bytes / MiB:12.0f}"
            + "".join(f" {r.predicted_s.get(w, float('nan')):8.2f}" for w in ws))
    n = crossover(runs)
    lines.append("broadcast stops winning at " + (f"{n:,} dimension rows (measured wall time; "
                                                   "partitioned faster from there up)"
                 if n is not None else "no measured size (it won at every size)"))
    return "\n".join(lines)


def write_json(runs: Sequence[JoinRun], path: str, **context: Any) -> None:
    """The runs, the crossover and ``context`` (scale, load) as JSON."""
    doc = {**context, "crossover_dim_rows": crossover(runs),
           "runs": [asdict(r) for r in runs]}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
