"""Peak resident memory of a benchmark contender, sampled while it runs.

Every `interval` seconds (20 ms) a thread sums the RSS of the contender's process and all its
descendants, plus, for processes it uses but did not start (the Dask workers of the shared
cluster, passed as `shared_pids`), how far their RSS has grown over what it was when sampling
began. The peak of that sum is the contender's peak memory; the shared processes' own baseline
and the bench process itself (Dask scheduler, Prefect server client) are not counted. The peak
with the shared processes' whole RSS is kept too (`peak_with_shared_bytes`). CPU seconds are
counted for the shared processes, for `infra_pids` (the bench process, the Prefect server) and
for the whole machine, so a run disturbed by other load can be told apart, and for
`background_pids` (the bench's own background load), so it is counted neither as the
contender's nor as other programs'.

>>> import os, time
>>> with RssSampler(os.getpid()) as sampler:
...     block = b"x" * (64 << 20)
...     time.sleep(0.1)
>>> sampler.result()["peak_bytes"] > 64 << 20
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import psutil


def _rss(processes: Iterable[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


def _cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (for the load during a run)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class RssSampler:
    """Context manager sampling RSS of `pid`'s tree (+ growth of `shared_pids`) until exit."""

    def __init__(
        self,
        pid: int,
        shared_pids: Iterable[int] = (),
        infra_pids: Iterable[int] = (),
        background_pids: Iterable[int] = (),
        interval: float = 0.02,
        tree_refresh: float = 0.2,
    ) -> None:
        self.root = psutil.Process(pid)
        self.shared = [psutil.Process(p) for p in shared_pids]
        self.infra = [psutil.Process(p) for p in infra_pids]
        self.background = [psutil.Process(p) for p in background_pids]
        self.interval = interval
        self.tree_refresh = tree_refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples = 0
        self.tree_pids: set[int] = set()
        self.peak = self.peak_tree = self.peak_shared_growth = self.peak_with_shared = 0
        self.shared_baseline = self.shared_peak = 0
        self.shared_cpu_start = self.shared_cpu = 0.0
        self.busy_start = self.busy = 0.0
        self.infra_cpu_start = self.infra_cpu = 0.0
        self.background_cpu_start = self.background_cpu = 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return [self.root]

    def _run(self) -> None:
        tree, refreshed = self._tree(), time.monotonic()
        while True:
            if time.monotonic() - refreshed >= self.tree_refresh:
                tree, refreshed = self._tree(), time.monotonic()
            self.tree_pids.update(process.pid for process in tree)
            tree_rss, shared_rss = _rss(tree), _rss(self.shared)
            growth = max(0, shared_rss - self.shared_baseline)
            self.samples += 1
            self.peak_tree = max(self.peak_tree, tree_rss)
            self.shared_peak = max(self.shared_peak, shared_rss)
            self.peak_shared_growth = max(self.peak_shared_growth, growth)
            self.peak = max(self.peak, tree_rss + growth)
            self.peak_with_shared = max(self.peak_with_shared, tree_rss + shared_rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self.shared_baseline = _rss(self.shared)
        self.shared_cpu_start = _cpu_seconds(self.shared)
        self.infra_cpu_start = _cpu_seconds(self.infra)
        self.background_cpu_start = _cpu_seconds(self.background)
        self.busy_start = machine_busy_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.shared_cpu = _cpu_seconds(self.shared) - self.shared_cpu_start
        self.busy = machine_busy_seconds() - self.busy_start
        self.infra_cpu = _cpu_seconds(self.infra) - self.infra_cpu_start
        self.background_cpu = _cpu_seconds(self.background) - self.background_cpu_start

    def result(self) -> dict:
        return {
            "peak_bytes": self.peak,
            "peak_tree_bytes": self.peak_tree,
            "peak_shared_growth_bytes": self.peak_shared_growth,
            "peak_with_shared_bytes": self.peak_with_shared,
            "shared_baseline_bytes": self.shared_baseline,
            "shared_peak_bytes": self.shared_peak,
            "shared_cpu_s": round(self.shared_cpu, 3),
            "infra_cpu_s": round(self.infra_cpu, 3),
            "background_cpu_s": round(self.background_cpu, 3),
            "machine_busy_cpu_s": round(self.busy, 3),
            "samples": self.samples,
            "tree_pids": sorted(self.tree_pids),
        }
