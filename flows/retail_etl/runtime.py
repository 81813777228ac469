"""Where flows run: one Prefect API and one Dask scheduler per command.

Prefect's per-process ephemeral mode would make every Dask worker process start
its own temporary server, so a command with no `PREFECT_API_URL` starts one
local server itself and hands its URL to the workers. Likewise a command with no
`RETAIL_ETL_DASK_ADDRESS` starts one `LocalCluster` that every flow it runs shares.

>>> runner = dask_task_runner(Settings(dask_address="tcp://10.0.0.5:8786"))
>>> runner.address
'tcp://10.0.0.5:8786'
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect_dask import DaskTaskRunner

from .settings import Settings

SERVER_STARTUP_TIMEOUT = 90


def current_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def temporary_environment(**values: str) -> Iterator[None]:
    """Set environment variables (seen by processes started meanwhile) and restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def prefect_api() -> Iterator[str]:
    """The configured Prefect API, or a temporary local server for the duration."""
    url = current_api_url()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer(port=_free_port())
    with temporary_environment(PREFECT_SERVER_ANALYTICS_ENABLED=os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false")):
        server.start(timeout=SERVER_STARTUP_TIMEOUT)  # a throwaway local server does not phone home
    try:
        with temporary_environment(PREFECT_API_URL=server.api_url), temporary_settings({PREFECT_API_URL: server.api_url}):
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
    """Variables a local Dask worker needs: this process's Prefect API, our settings, S3 credentials."""
    env = Settings().aws_environment()
    env.update((name, value) for name, value in os.environ.items() if name.startswith(("RETAIL_ETL_", "PREFECT_", "AWS_")))
    url = current_api_url()
    if url:
        env["PREFECT_API_URL"] = url
    return env


def local_cluster(n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any):
    """A process-based LocalCluster whose workers share this process's Prefect API."""
    from distributed import LocalCluster

    kwargs.setdefault("dashboard_address", ":0")
    kwargs.setdefault("silence_logs", logging.WARNING)
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        env=worker_environment(),
        **kwargs,
    )


def dask_task_runner(settings: Settings | None = None) -> DaskTaskRunner:
    """Connect to `RETAIL_ETL_DASK_ADDRESS`, or start a temporary LocalCluster on first use."""
    settings = settings or Settings()
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class=local_cluster,
        cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": settings.dask_threads_per_worker},
    )


@contextmanager
def dask_scheduler(settings: Settings | None = None) -> Iterator[str]:
    """The configured scheduler, or one LocalCluster shared by every flow in this command."""
    settings = settings or Settings()
    if settings.dask_address:
        yield settings.dask_address
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler runs in this process
    with local_cluster(settings.dask_workers, settings.dask_threads_per_worker) as cluster:
        with temporary_environment(RETAIL_ETL_DASK_ADDRESS=cluster.scheduler_address):
            yield cluster.scheduler_address


@contextmanager
def platform(settings: Settings | None = None) -> Iterator[tuple[str, str]]:
    """(Prefect API URL, Dask scheduler address) for one command, started here if not configured."""
    with prefect_api() as api_url, dask_scheduler(settings) as address:
        yield api_url, address
