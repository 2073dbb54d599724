"""What it costs the workers to move a byte from one worker process to another.

A 1-worker run moves nothing between processes; with W workers the remote part of every
exchange crosses (a hash exchange's producer outputs to their combine, the combine's bucket
slices to the consumers): the sender serialises the slice, both kernels copy it through the
socket, the receiver allocates and deserialises it. That is CPU on the same cores as the task
bodies, so the what-if model on the measuring machine (:mod:`mpp.metrics.calibration`) must
charge it per byte that crosses rather than read it as a per-task cost the count does not
change. This module measures the price on a cluster of two or more workers, with the path a
query's exchange takes: a table cut into hash buckets by the exchange's own code on one worker,
its bucket slices fetched by a task on another.
"""

from __future__ import annotations

import statistics
import time

import distributed
import numpy as np
import pyarrow as pa

from mpp.errors import ClusterError

ROWS = 600_000  # ~15 MB in four bucket slices: an exchange slice's size at scale
REPEATS = 5  # after one untimed round; the median is kept (the machine's speed varies)


def measure_transfer_cost(client: distributed.Client, *, rows: int = ROWS,
                          repeats: int = REPEATS) -> float:
    """The workers' CPU seconds per byte that crosses between two worker processes: the
    median over ``repeats`` rounds (after one untimed) of the CPU all workers used while one
    worker's task fetched four bucket slices of a ``rows``-row table made on another, over
    the slices' bytes.

    Raises:
        ClusterError: the cluster has fewer than two workers (nothing can cross).
    """
    workers = sorted(client.scheduler_info()["workers"])
    if len(workers) < 2:
        raise ClusterError("measuring the cost of moving data between workers needs two or "
                           f"more workers; the cluster has {len(workers)}")
    source, sink = workers[0], workers[1]
    costs = []
    for i in range(repeats + 1):
        made = client.submit(_bucketed, rows, i, workers=[source], pure=False)
        slices = [client.submit(_bucket, made, j, workers=[source], pure=False)
                  for j in range(4)]
        distributed.wait(slices)
        size = sum(client.submit(_nbytes, s, workers=[source], pure=False).result()
                   for s in slices)
        before = client.run(time.process_time)
        client.submit(_rows, *slices, workers=[sink], pure=False).result()
        after = client.run(time.process_time)
        del made, slices
        if i:  # the first round warms both processes' memory pools and connections
            costs.append((sum(after.values()) - sum(before.values())) / size)
    return max(0.0, statistics.median(costs))


def _bucketed(rows: int, seed: int) -> object:
    """A table like an exchange's input (integers, a timestamp, strings) cut into four hash
    buckets by the exchange's own code."""
    from mpp.physical.operators.exchange import partition_by_hash

    rng = np.random.default_rng(seed)
    table = pa.table({"key": rng.integers(0, 1 << 40, rows),
                      "time": pa.array(rng.integers(0, 1 << 40, rows)).cast(pa.timestamp("us")),
                      "name": pa.array(rng.integers(0, 100_000, rows)).cast(pa.string())})
    return partition_by_hash(table, ("key",), 4)


def _bucket(buckets: object, j: int) -> pa.Table:
    """Bucket ``j``: the split task a consumer fetches."""
    from mpp.physical.operators.exchange import take_bucket

    return take_bucket(buckets, j)  # type: ignore[arg-type]


def _nbytes(table: pa.Table) -> int:
    return int(table.nbytes)


def _rows(*tables: pa.Table) -> int:
    """The consumer: it holds every slice, as a task reading an exchange does."""
    return sum(t.num_rows for t in tables)
