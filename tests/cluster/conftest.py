"""Fixtures of the real-cluster test (tests/cluster): one kind cluster for the whole session,
brought up by `k8s/up.sh` as the README tells a user to run it (with only the settings a machine
without a registry needs), then the day's first run that later tests build on.

It needs the cluster cache (k8s/cluster-cache.sh) and the images of .ci/image; without them it
is skipped with that reason, or fails when RETAIL_ETL_REQUIRE_CLUSTER=1 (as in .ci/run).
RETAIL_ETL_KEEP_CLUSTER=1 leaves the cluster up afterwards for a look.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# the test modules import clusterkit and nights (this folder) and chartkit (the chart tests' helpers)
sys.path[:0] = [str(HERE), str(HERE.parent / "chart")]

from chartkit import helm_binary  # noqa: E402
from clusterkit import CACHE, CLUSTER, NAMESPACES, REPO, cache_missing, diagnostics, node_image  # noqa: E402
from nights import expected_figures, land, prefect_api, s3_keys, start_run, wait_for_run  # noqa: E402


def tool_path() -> str:
    """kind and kubectl from the cache, helm as the chart tests get it, ahead of PATH."""
    helm_dir = Path(helm_binary()).parent
    return os.pathsep.join([str(CACHE / "bin"), str(helm_dir), os.environ["PATH"]])


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[dict]:
    missing = cache_missing()
    if missing:
        reason = f"no cluster cache ({', '.join(missing)}): run k8s/cluster-cache.sh"
        if os.environ.get("RETAIL_ETL_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "RETAIL_ETL_"))},
        "PATH": tool_path(),
        "CLUSTER_NAME": CLUSTER,
        "KIND_NODE_IMAGE": node_image(),
        "PYTHON_IMAGE": "retail-etl-standin-python:bookworm",
    }
    subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, capture_output=True)
    try:
        up = subprocess.run(
            ["bash", str(REPO / "k8s" / "up.sh")], env=env, capture_output=True, text=True, timeout=1800
        )
        if up.returncode != 0:
            pytest.fail(f"k8s/up.sh exited {up.returncode}:\n{up.stderr[-6000:]}\n{diagnostics(NAMESPACES)}")
        yield {"env": env, "up_output": up.stdout + up.stderr, "workdir": tmp_path_factory.mktemp("cluster")}
    finally:
        if os.environ.get("RETAIL_ETL_KEEP_CLUSTER") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, capture_output=True)


@pytest.fixture(autouse=True)
def explain_failures(request, cluster) -> Iterator[None]:
    """Pods, events, `kubectl describe` and logs of what is not running, after a failed test."""
    yield
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if any(report is not None and report.failed for report in reports):
        print(diagnostics(NAMESPACES))


@pytest.fixture(autouse=True)
def minio_keys(cluster, monkeypatch) -> None:
    """The platform MinIO's keys, for reading the warehouse back from the test process."""
    for name, value in s3_keys().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def first_run(cluster) -> dict:
    """The dev environment's first run of the day on a generated landing, and what it should publish."""
    landing = land(cluster["workdir"], seed=23)
    with prefect_api() as api:
        run = wait_for_run(api, start_run(api, "dev"), timeout=900)
    return {"run": run, "expected": expected_figures(landing)}
