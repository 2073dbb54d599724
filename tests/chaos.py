"""Test-only fault injection: a worker plugin that kills a process when a chosen task starts.

Deterministic where a timer is not: the kill happens exactly when the chosen task (named as
:func:`mpp.execution.watch.describe_task` names it, e.g. ``stage2-final-agg partition 1``)
starts executing, whatever the machine's load. Every task start is logged to a file, so a test
can count how often a task ran.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from mpp.execution.watch import describe_task


@dataclass(frozen=True, slots=True)
class Victim:
    """Kill ``pid`` (None: the worker running the task) the first ``times`` times task ``task``
    starts (``task`` may name a stage only: any of its partitions). With ``hog_mib`` the worker
    is not signalled but runs out of memory: its nanny kills it above its memory limit."""

    task: str
    times: int = 1
    pid: int | None = None
    hog_mib: int = 0  # > 0: instead of a signal, take this much memory until the nanny kills


    def matches(self, key: Any) -> bool:
        """Whether ``key`` is (a partition of) this victim's task."""
        name = describe_task(key)
        return name == self.task or name.split(" partition ")[0] == self.task


@dataclass
class Chaos(WorkerPlugin):
    """Worker plugin: logs each task start to ``folder/starts.log``; kills as ``victims`` say.

    The kills are counted with marker files in ``folder`` (created atomically), so a restarted
    worker does not kill again once a victim's ``times`` are used up.
    """

    folder: str
    victims: tuple[Victim, ...] = ()
    name: str = field(default="mpp-test-chaos")

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        """On a worker, for each task state change: act when a task starts executing."""
        if finish != "executing":
            return
        with open(Path(self.folder) / "starts.log", "a") as log:
            log.write(describe_task(key) + "\n")
        for n, victim in enumerate(self.victims):
            if victim.matches(key) and self._claim(n, victim.times):
                if victim.hog_mib:
                    _hog(victim.hog_mib)
                os.kill(victim.pid or os.getpid(), signal.SIGKILL)

    def _claim(self, n: int, times: int) -> bool:
        for i in range(times):
            try:
                os.close(os.open(Path(self.folder) / f"victim-{n}-{i}",
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return True
            except FileExistsError:
                continue
        return False


def _hog(mib: int) -> None:
    """Hold ``mib`` MiB of touched memory for up to 60 s: the nanny's memory monitor kills the
    process well before (``distributed.worker.memory.terminate``, 95% of the limit)."""
    held = np.ones(mib * 2**20, dtype=np.uint8)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        held[::4096] += 1  # keep the pages resident
        time.sleep(0.05)


def starts(folder: Path) -> list[str]:
    """The tasks started so far (one line per start, in order)."""
    log = folder / "starts.log"
    return log.read_text().splitlines() if log.exists() else []
