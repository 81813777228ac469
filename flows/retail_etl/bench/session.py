"""What every bench mode sets up once, outside the timed region: the Prefect API, the Dask
cluster with warmed workers, the contenders' environment, and what is recorded about the run
(commit, machine, versions, RETAIL_ETL_* settings)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from ..config import ENV_PREFIX, child_environment

PACKAGES = (
    "retail-etl",
    "prefect",
    "prefect-dask",
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
    "pandera",
    "duckdb",
    "numpy",
)


@dataclass
class Session:
    """The running infrastructure the contenders use."""

    env: dict[str, str]
    scheduler: str
    client: Any

    def worker_pids(self) -> list[int]:
        return sorted(self.client.run(os.getpid).values())


@contextmanager
def bench_session(workdir: Path, console: Console) -> Iterator[Session]:
    """One Prefect API and one 2-worker Dask cluster (logs in workdir/cluster.log); SIGTERM stops
    them like Ctrl-C. The contenders get this process's environment (so RETAIL_ETL_* settings given
    on the command line reach the pipeline), the API's URL and the generator's regions."""
    from distributed import Client

    from ..orchestration.platform import local_cluster, prefect_api
    from ..synth.generate import REGIONS

    with _interruptible(), prefect_api() as api_url:
        env = child_environment(PREFECT_API_URL=api_url, RETAIL_ETL_REGIONS=",".join(REGIONS))
        with _output_to(workdir / "cluster.log"):
            cluster = local_cluster(n_workers=2, threads_per_worker=1)
        with cluster, Client(cluster) as client:
            client.run(_warm_worker)
            console.print(
                f"Prefect API {api_url}; Dask scheduler {cluster.scheduler_address} "
                f"(worker logs in {workdir / 'cluster.log'})"
            )
            yield Session(env=env, scheduler=cluster.scheduler_address, client=client)


def infra_pids(exclude: list[int]) -> list[int]:
    """This process and its children (the Prefect server, idle Dask workers, ...) but `exclude`."""
    children = [child.pid for child in psutil.Process().children(recursive=True) if child.pid not in exclude]
    return [os.getpid(), *children]


def retail_settings(env: dict[str, str]) -> dict[str, str]:
    """The RETAIL_ETL_* settings the contenders ran with (recorded in the JSON)."""
    return {key: value for key, value in sorted(env.items()) if key.startswith(ENV_PREFIX)}


def _warm_worker() -> None:
    """Import what the pipeline's tasks need, as a worker that has served a run already has."""
    import prefect.task_engine  # noqa: F401
    import prefect_dask  # noqa: F401

    import retail_etl.orchestration.tasks  # noqa: F401


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM ends the benchmark like Ctrl-C does: contender stopped, cluster and server shut down."""

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `path` while child processes are started (they inherit
    them), so the Dask workers' logs go to a file instead of the bench's table."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def code_revision() -> dict:
    """The git commit of the code being measured, and the package's uncommitted files (if a checkout)."""
    package = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "uncommitted": None}
    return {"commit": commit, "uncommitted": [line[3:] for line in dirty]}


def machine() -> dict:
    """The machine and the package versions the figures were measured with."""
    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": found,
    }
