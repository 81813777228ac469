"""`retail-etl check-install` (the chart's `helm test` pods) against a real Prefect API, moto's S3
server and a real Dask cluster; each check fails for real when its target is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "chart"))

import chartkit  # noqa: E402

from retail_etl.deploy.checks import check_api_health, check_buckets, check_dask, check_work_pool  # noqa: E402


def run_check(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)  # the command gets --api, as in the test pod
    return subprocess.run(
        [sys.executable, "-m", "retail_etl", "check-install", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def chart_pool(prefect_api, tmp_path):
    """A work pool holding the chart's base job template, as the registration Job leaves it."""
    from retail_etl.deploy.register import sync_work_pool

    template = chartkit.base_job_template(chartkit.render_chart())
    name = f"check-{tmp_path.name[-20:].lower().strip('-_')}".replace("_", "-")
    sync_work_pool(name, "kubernetes", template)
    (tmp_path / "template.json").write_text(json.dumps(template))
    return name, template, tmp_path / "template.json"


def test_every_check_passes_on_a_complete_install(prefect_api, chart_pool, s3_endpoint, dask_address, tmp_path):
    pool, _, template_file = chart_pool
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("ci-landing", "ci-warehouse"):
        s3.create_bucket(Bucket=bucket)
    args = ["--api", prefect_api, "--work-pool", pool, "--base-job-template", str(template_file)]
    args += ["--bucket", "ci-landing", "--bucket", "ci-warehouse", "--dask-address", dask_address, "--timeout", "30"]
    result = run_check(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == 5 and "FAIL" not in result.stdout


def test_the_command_fails_when_one_check_fails(prefect_api, chart_pool, tmp_path):
    pool, _, template_file = chart_pool
    result = run_check(["--api", prefect_api, "--work-pool", pool + "-missing", "--timeout", "5"], tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "ok   api health" in result.stdout and "FAIL work pool" in result.stdout
    assert "1 of 2 install checks failed" in result.stderr


def test_api_health_fails_without_a_server():
    result = check_api_health(f"http://127.0.0.1:{free_port()}/api", timeout=1, interval=0.2)
    assert not result.ok and "ConnectError" in result.detail


def test_work_pool_fails_when_missing_or_different(prefect_api, chart_pool):
    pool, template, _ = chart_pool
    assert check_work_pool(prefect_api, pool, template).ok
    missing = check_work_pool(prefect_api, pool + "-nope", template)
    assert not missing.ok and "does not exist" in missing.detail
    changed = json.loads(json.dumps(template))
    changed["variables"]["properties"]["finished_job_ttl"]["default"] = 1
    different = check_work_pool(prefect_api, pool, changed)
    assert not different.ok and "variables.properties.finished_job_ttl.default" in different.detail


def test_buckets_fail_when_missing(s3_endpoint):
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ci-present")
    options = {"endpoint_url": s3_endpoint}
    present, missing = check_buckets(["ci-present", "ci-absent"], options)
    assert present.ok and not missing.ok and "ci-absent does not exist" in missing.detail


def test_dask_fails_without_scheduler_or_workers(dask_address):
    assert check_dask(dask_address, timeout=30).ok
    unreachable = check_dask(f"tcp://127.0.0.1:{free_port()}", timeout=2)
    assert not unreachable.ok
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        no_workers = check_dask(empty.scheduler_address, timeout=2)
    assert not no_workers.ok and "TimeoutError" in no_workers.detail


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
