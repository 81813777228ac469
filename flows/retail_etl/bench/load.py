"""`--background-load CORES`: a bounded CPU burner the bench runs beside every contender.

The pipeline (Prefect server, flow process, Dask workers on two cores) loses more to other load
than a one-process script does; to measure that the same way for every contender, the bench adds
the load itself. CORES is split over ``ceil(CORES)`` burner processes, each given an equal share
(<= 1 core). A burner keeps its CPU time at its share of the wall time since it started: it
spins while behind and sleeps while ahead (checking every `PERIOD` seconds), so a fraction of a
core is a fraction and a burner never takes more than asked on average. The burners are
children of the bench process, never of a contender, so they are outside
every contender's process tree (memory and CPU); the bench counts their CPU apart.

A burner exits by itself when its parent goes away (checked every period), so even a bench killed
with SIGKILL leaves no burner running; normally `BackgroundLoad` stops them on exit, whatever
ended the block, and reports their CPU seconds from the kernel's accounting.

>>> plan(1.5)
[0.75, 0.75]
>>> plan(0)
[]
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from types import TracebackType

PERIOD = 0.05
CATCH_UP = 1.0


def plan(cores: float) -> list[float]:
    """The share of a core for each burner process: ceil(cores) equal shares."""
    if cores < 0:
        raise ValueError("background load must be >= 0 cores")
    count = math.ceil(cores)
    return [cores / count] * count if count else []


def burn(share: float, parent: int, period: float = PERIOD, catch_up: float = CATCH_UP) -> None:
    """Use `share` of a core until the parent process is gone (the burner process's loop).

    The burner owes `share` CPU seconds per wall second since it started; it spins while it owes,
    sleeps while it is ahead, and forgives what it could not get within the last `catch_up`
    seconds (a busy machine delays it; it never makes up more than that at once).
    """
    start, cpu = time.monotonic(), time.process_time()
    while os.getppid() == parent:
        now = time.monotonic()
        owed = share * (now - start) - (time.process_time() - cpu)
        if owed > share * catch_up:
            start += (owed - share * catch_up) / share
            owed = share * catch_up
        if owed <= 0:
            time.sleep(min(period, -owed / share))
            continue
        until = now + period
        while time.monotonic() < until and time.process_time() - cpu < share * (time.monotonic() - start):
            pass


class BackgroundLoad:
    """Context manager: `cores` worth of burner processes while the block runs (none for 0)."""

    def __init__(self, cores: float) -> None:
        self.cores = cores
        self.shares = plan(cores)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cpu_s = 0.0
        self.started_pids: list[int] = []
        self.wall_s = 0.0
        self._started = 0.0

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def __enter__(self) -> BackgroundLoad:
        self._started = time.perf_counter()
        try:
            for share in self.shares:
                command = [sys.executable, "-m", "retail_etl.bench.load", repr(share), str(os.getpid())]
                self.processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
                self.started_pids.append(self.processes[-1].pid)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill every burner and reap it; its CPU seconds (user + system) come from wait4."""
        for process in self.processes:
            if process.returncode is None:
                try:
                    process.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            if process.returncode is None:
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s += usage.ru_utime + usage.ru_stime
        if self.processes:
            self.wall_s = time.perf_counter() - self._started
        self.processes = []

    def result(self) -> dict:
        """What the burners did: requested cores, processes, CPU seconds, wall seconds, cores used."""
        return {
            "cores": self.cores,
            "processes": len(self.shares),
            "pids": self.started_pids,
            "cpu_s": round(self.cpu_s, 3),
            "wall_s": round(self.wall_s, 3),
            "cores_used": round(self.cpu_s / self.wall_s, 3) if self.wall_s > 0 else 0.0,
        }


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the bench stops us
    burn(float(sys.argv[1]), int(sys.argv[2]))
