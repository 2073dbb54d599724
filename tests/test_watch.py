"""Watch waits for a query's futures without piling work onto the client's event loop.

The client's event loop is also where a LocalCluster's scheduler runs, and the what-if model
charges that process's CPU to the scheduler per task: whatever the waiting adds there is
predicted as scheduler cost on the simulated warehouse.
"""

from __future__ import annotations

import asyncio
import threading
import time

from mpp.execution import watch
from mpp.execution.cluster import Cluster


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return 0


def _plus(x: int, i: int) -> int:
    return x + i


async def _loop_tasks() -> int:
    return len(asyncio.all_tasks())


def test_waiting_adds_one_task_per_future_not_one_per_future_per_poll(
        cluster: Cluster, monkeypatch) -> None:
    client = cluster.client
    monkeypatch.setattr(watch, "_POLL_SECONDS", 0.05)  # many polls while the gate sleeps
    before = client.sync(_loop_tasks)
    gate = client.submit(_sleep, 2.0, pure=False)
    futures = [client.submit(_plus, gate, i, pure=False) for i in range(40)]
    most, waiting = [0], threading.Event()

    def count() -> None:  # the largest number of tasks on the loop while Watch waits
        while not waiting.is_set():
            most[0] = max(most[0], client.sync(_loop_tasks))
            time.sleep(0.05)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        w = watch.Watch(client, "q-watch", [f.key for f in futures])
        assert w.gather(futures) == list(range(40))
    finally:
        waiting.set()
        counter.join()
    # distributed.wait(futures, timeout=...) once a poll left 40 waiter tasks behind at each
    # of the ~40 polls; one done-callback a future adds 40 in all (and a few of Dask's own)
    assert most[0] - before <= len(futures) + 20, (before, most[0])
