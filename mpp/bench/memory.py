"""Peak memory of a run across every process it uses (this one plus its children)."""

from __future__ import annotations

import threading
import time

import psutil


def tree_rss(proc: psutil.Process, cpu: dict[int, float] | None = None) -> int:
    """Resident bytes of ``proc`` and all its descendants (vanished processes count 0).

    If ``cpu`` is given, it is updated with each process's CPU seconds (user + system).
    """
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with p.oneshot():
                total += p.memory_info().rss
                if cpu is not None:
                    t = p.cpu_times()
                    cpu[p.pid] = max(cpu.get(p.pid, 0.0), t.user + t.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class PeakMemory:
    """Context manager: sample RSS of this process + children every ``interval`` seconds.

    After the block, ``peak_bytes`` is the largest sum seen, ``wall_seconds`` the block's
    wall time and ``cpu_seconds`` the CPU time the processes used during it (as last sampled;
    unlike wall time it does not grow when other jobs compete for the cores). Sampling runs in a daemon thread; a spike shorter than the interval can be
    missed, so the figure is a lower bound of the true peak (at 50 ms, a close one).
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0
        self.wall_seconds = 0.0
        self._cpu0: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process()
        self._t0 = 0.0

    def sample(self) -> int:
        """Take one sample now (and update the peak)."""
        rss = tree_rss(self._proc, self._cpu)
        self.peak_bytes = max(self.peak_bytes, rss)
        return rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self._t0 = time.perf_counter()
        self.sample()
        self._cpu0 = dict(self._cpu)
        self._thread = threading.Thread(target=self._loop, name="mpp-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self.wall_seconds = time.perf_counter() - self._t0

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds used by the process tree while measured."""
        return sum(t - self._cpu0.get(pid, 0.0) for pid, t in self._cpu.items())
