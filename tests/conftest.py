"""Shared real services for the tests: one Prefect API, one moto S3 server, one Dask cluster.

Order matters: the Dask workers are spawned after the Prefect API and the S3
settings exist, so they inherit both (exactly as the CLI does it).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Keep Prefect's home (profiles, local DB of any CLI run) out of the user's ~/.prefect; each
# pytest-xdist worker gets its own (a worker inherits the home the controller process set).
if "PYTEST_XDIST_WORKER" in os.environ or "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="retail-etl-prefect-home-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


#: Test folders whose tests need no service (no Prefect API, Dask, S3 server or external tool).
UNIT_FOLDERS = {"core", "contract", "io", "synth"}
REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Mark the fast subset `unit`: the pure tests and every module's doctests (`pytest -m unit`)."""
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(REPO).parts
        if item.get_closest_marker("s3") or item.get_closest_marker("dask"):
            continue  # a unit folder's test (or parameter) that needs a service says so
        if relative[0] == "flows" or (relative[0] == "tests" and relative[1] in UNIT_FOLDERS):
            item.add_marker(pytest.mark.unit)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until something answers on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing answers on 127.0.0.1:{port} after {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api():
    """A real temporary Prefect server (prefect_test_harness) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    from retail_etl.orchestration.platform import current_api_url

    with prefect_test_harness(server_startup_timeout=120):
        yield current_api_url()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1, as s3fs's own test suite runs it."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # In its own process: delta-rs holds the GIL in some calls, which would stall an in-process server.
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, server)
    saved = {
        name: os.environ.get(name)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "RETAIL_ETL_S3_ENDPOINT_URL")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        RETAIL_ETL_S3_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    server.terminate()
    server.wait(timeout=30)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def dask_address(prefect_api, s3_endpoint):
    """A real process-based LocalCluster whose workers report to the session's Prefect API."""
    from retail_etl.orchestration.platform import local_cluster

    with local_cluster(n_workers=2, threads_per_worker=1) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh bucket per test; returns its s3:// URL."""
    import boto3

    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + f"-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def run_day(dask_address):
    """Run daily_sales_etl on the shared cluster; returns the manifest (or the state with return_state)."""
    from prefect_dask import DaskTaskRunner

    from retail_etl.orchestration.flows import daily_sales_etl

    flow = daily_sales_etl.with_options(task_runner=DaskTaskRunner(address=dask_address))

    def run(sale_date: str, landing: str, warehouse: str, **kwargs):
        return flow(run_date=sale_date, landing=str(landing), warehouse=str(warehouse), **kwargs)

    return run


@pytest.fixture
def tmp_dirs(tmp_path: Path):
    return tmp_path / "landing", tmp_path / "warehouse"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`rep_call`): the container and cluster tests
    print their containers' and pods' logs when a test's call failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_xdist_make_scheduler(config, log):
    """With `--dist loadfile` (addopts), every tests/cluster module goes to one worker: they share
    the one kind cluster the session fixture brings up, which two workers would both create."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class OneWorkerForTheCluster(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/cluster/"):
                return "tests/cluster"
            return super()._split_scope(nodeid)

    return OneWorkerForTheCluster(config, log)
