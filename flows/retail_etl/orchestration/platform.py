"""Where flows run: one Prefect API and one Dask scheduler per command.

Prefect's per-process ephemeral mode would make every Dask worker process start
its own temporary server, so a command with no `PREFECT_API_URL` starts one
local server itself and hands its URL to the workers. Likewise a command with no
`RETAIL_ETL_DASK_ADDRESS` starts one `LocalCluster` that every flow it runs shares.
A deployment run (no command around it) gets the same choice when its flow starts,
from `SettingsDaskTaskRunner`.

>>> from retail_etl.config import load_settings
>>> runner = dask_task_runner(load_settings(dask_address="tcp://10.0.0.5:8786"))
>>> runner.address
'tcp://10.0.0.5:8786'
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from prefect.task_runners import TaskRunner
from prefect_dask import DaskTaskRunner

from ..config import Settings, forwarded_environment, load_settings
from .cores import available_cores, cluster_shape

SERVER_STARTUP_TIMEOUT = 90


def current_api_url() -> str | None:
    """The Prefect API this process talks to, if one is configured."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def prefect_api() -> Iterator[str]:
    """The configured Prefect API, or a temporary local server for the duration."""
    url = current_api_url()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

    server = SubprocessASGIServer(port=_free_port())
    # A throwaway local server does not phone home (the server process inherits these settings).
    with temporary_settings({PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        server.start(timeout=SERVER_STARTUP_TIMEOUT)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            try:
                yield server.api_url
            finally:
                _drain_logs()
    finally:
        server.stop()


def _drain_logs() -> None:
    """Ship buffered run logs before the temporary server goes away."""
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.instance().drain()
    except RuntimeError:
        pass  # no log worker was started


def worker_environment() -> dict[str, str]:
    """Variables a local Dask worker needs: our settings, AWS credentials, this process's Prefect API."""
    env = forwarded_environment()
    url = current_api_url()
    if url:
        env["PREFECT_API_URL"] = url
    return env


def local_cluster(n_workers: int | None = None, threads_per_worker: int | None = None, **kwargs: Any) -> Any:
    """A process-based LocalCluster whose workers share this process's Prefect API, sized from the
    cores this process may use (`cores`: affinity and cgroup quota) where not given."""
    from distributed import LocalCluster

    workers, threads = cluster_shape(available_cores(), n_workers, threads_per_worker)
    kwargs.setdefault("dashboard_address", ":0")
    kwargs.setdefault("silence_logs", logging.WARNING)
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        env=thread_pools(threads) | worker_environment(),
        **kwargs,
    )


def thread_pools(threads: int) -> dict[str, str]:
    """Arrow's and Polars' own thread pools sized to a worker's Dask threads (both default to one
    thread per core in every process): the workers together then use the cores they were sized
    for, instead of each one's columnar work competing for all of them.

    >>> thread_pools(1)
    {'OMP_NUM_THREADS': '1', 'POLARS_MAX_THREADS': '1'}
    """
    return {"OMP_NUM_THREADS": str(threads), "POLARS_MAX_THREADS": str(threads)}


def dask_task_runner(settings: Settings) -> DaskTaskRunner:
    """Connect to the configured scheduler, or start a temporary LocalCluster on first use."""
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": settings.dask_threads_per_worker},
    )


class SettingsDaskTaskRunner(DaskTaskRunner):
    """A DaskTaskRunner that reads the Dask settings when a flow run starts, not at import.

    A flow decorated with it can be imported anywhere (a deployment's entrypoint, a test)
    without touching the environment; `with_options(task_runner=...)` replaces it.
    """

    def __enter__(self) -> SettingsDaskTaskRunner:
        if not self.address and not self.cluster_class:
            configured = dask_task_runner(load_settings())
            self.address, self.cluster_class = configured.address, configured.cluster_class
            self.cluster_kwargs = configured.cluster_kwargs
        super().__enter__()
        return self

    def scheduler_address(self) -> str:
        """The address of the scheduler this runner uses (starting its cluster if need be)."""
        return str(self.client.scheduler_info()["address"])


def runner_at(address: str) -> TaskRunner[Any]:
    """A task runner on the Dask scheduler at `address` (typed for Prefect's flow options)."""
    return cast("TaskRunner[Any]", DaskTaskRunner(address=address))


def settings_runner() -> TaskRunner[Any]:
    """A `SettingsDaskTaskRunner` (typed for Prefect's flow options)."""
    return cast("TaskRunner[Any]", SettingsDaskTaskRunner())


@contextmanager
def dask_scheduler(settings: Settings) -> Iterator[str]:
    """The configured scheduler, or one LocalCluster shared by every flow in this command."""
    if settings.dask_address:
        yield settings.dask_address
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler runs in this process
    with local_cluster(settings.dask_workers, settings.dask_threads_per_worker) as cluster:
        yield cluster.scheduler_address


@contextmanager
def platform(settings: Settings) -> Iterator[tuple[str, str]]:
    """(Prefect API URL, Dask scheduler address) for one command, started here if not configured."""
    with prefect_api() as api_url, dask_scheduler(settings) as address:
        yield api_url, address
