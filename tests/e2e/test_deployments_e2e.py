"""Deployments end to end: real `prefect server start`, real process worker, real S3 API (moto).

The same registration code the chart's Job runs registers dev and staging with their pools
overridden to process pools; a scheduled dev run of build A is executed by a worker, promoted to
staging, run there, and each environment's outputs land in its own bucket. Then the gate: a dev run
with invalid parameters does not count, an untested build B registered in dev is refused, a forced
promotion is marked as forced, and staging rolls back to A; each promotion leaves a record in
staging's warehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import httpx
import pytest

from retail_etl.synth.generate import generate_day

REPO = Path(__file__).resolve().parents[2]
TIMEZONE = "Europe/Berlin"
DAY = "2024-01-15"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on 127.0.0.1 with its own database; yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
    )
    log = open(home / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError((home / "server.log").read_text())
        time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("prefect server did not start:\n" + (home / "server.log").read_text())
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture
def api(prefect_server, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("RETAIL_ETL_SCHEDULE_TIMEZONE", TIMEZONE)
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server


def bucket_objects(endpoint: str, bucket: str) -> dict[str, str]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"]: obj["ETag"] for page in pages for obj in page.get("Contents", [])}


def run_worker(api_url: str, pool: str, home: Path) -> str:
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retail_etl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        cwd=REPO,
        timeout=300,
    )


def flow_run(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def schedule_run(deployment: str, when: datetime, parameters: dict | None = None):
    """A run of `deployment` scheduled at `when` (the way the scheduler makes them)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
        return client.create_flow_run_from_deployment(
            target.id, parameters=parameters or {}, state=Scheduled(scheduled_time=when)
        ).id


def create_run_unchecked(api_url: str, deployment: str, parameters: dict):
    """A run created without the server checking its parameters against the deployment's schema."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
    response = httpx.post(
        f"{api_url}/deployments/{target.id}/create_flow_run",
        json={"parameters": parameters, "enforce_parameter_schema": False},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


def register(s3_endpoint: str, environment: str, build: str, local: dict):
    """Register `environment` as the chart's hook would, with `build` as its version and image tag."""
    from retail_etl.deploy.register import register_environment

    os.environ["RETAIL_ETL_WAREHOUSE"] = f"s3://warehouse-{environment}"
    try:
        return register_environment(
            environment,
            REPO / "prefect.yaml",
            pool_type="process",
            image=f"retail-etl:{build}",
            version=build,
            working_directory=str(REPO),
            job_variables=local,
            wait_timeout=30,
        )
    finally:
        del os.environ["RETAIL_ETL_WAREHOUSE"]


def test_register_run_promote_and_schedule(api, s3_endpoint, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
    from prefect.client.schemas.sorting import FlowRunSort

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in ("landing", "warehouse-dev", "warehouse-staging"):
        s3.create_bucket(Bucket=bucket)
    generate_day(
        "s3://landing",
        DAY,
        rows=3_000,
        stores=3,
        bad_fraction=0.02,
        seed=21,
        bad_files=1,
        options={"endpoint_url": s3_endpoint},
    )

    local = {
        "env": {
            "RETAIL_ETL_S3_ENDPOINT_URL": s3_endpoint,
            "RETAIL_ETL_DASK_ADDRESS": "",
            "RETAIL_ETL_DASK_WORKERS": "1",
        }
    }
    for environment, build in (("dev", "1.0.1"), ("staging", "1.0.0")):
        result = register(s3_endpoint, environment, build, local)
        assert result["work_pools"] == {f"retail-etl-{environment}": "created"}
        assert result["result_storage"].startswith("remote-file-system/retail-etl-results-")
        assert sorted(d["name"] for d in result["deployments"]) == [
            f"backfill-{environment}",
            f"daily-sales-etl-{environment}",
        ]

    # Staging has never run: promoting it to prod is refused.
    refused = cli("promote", "--from", "staging", "--to", "prod")
    assert refused.returncode == 24 and "never finished a run" in refused.stderr  # GateRefused

    # A dev run scheduled at 06:00 Berlin on the 16th processes the 15th (the day before).
    scheduled = datetime(2024, 1, 16, 6, 0, tzinfo=ZoneInfo(TIMEZONE))
    dev_run = schedule_run("daily-sales-etl/daily-sales-etl-dev", scheduled)
    run_worker(api, "retail-etl-dev", tmp_path / "worker-home")
    state = flow_run(dev_run).state
    assert state.is_completed(), state
    dev_objects = bucket_objects(s3_endpoint, "warehouse-dev")
    manifest = json.loads(s3.get_object(Bucket="warehouse-dev", Key=f"manifests/sale_date={DAY}.json")["Body"].read())
    assert manifest["run_id"] == str(dev_run)
    assert manifest["rows_in"] == 3_000 == manifest["rows_published"] + manifest["rows_quarantined"]
    assert any(key.startswith(f"curated/sales/sale_date={DAY}/region=") for key in dev_objects)
    assert any(key.startswith("_prefect/results/extract-") for key in dev_objects)
    assert not bucket_objects(s3_endpoint, "warehouse-staging")

    # A run created with invalid parameters (schema enforcement off, as an old client would) fails
    # validation in the engine and does not become "the latest run" the gate looks at.
    invalid_run = create_run_unchecked(api, "daily-sales-etl/daily-sales-etl-dev", {"run_date": "2024-13-45"})
    run_worker(api, "retail-etl-dev", tmp_path / "worker-home")
    invalid_state = flow_run(invalid_run).state
    assert invalid_state.is_failed() and "Validation of flow parameters failed" in invalid_state.message

    dry = cli("promote", "--from", "dev", "--to", "staging", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "retail-etl:1.0.1" in dry.stdout and "dry run" in dry.stdout
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging").version == "1.0.0"

    promoted = cli("promote", "--from", "dev", "--to", "staging")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    with get_client(sync_client=True) as client:
        staging = client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging")
        dev = client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-dev")
    assert staging.job_variables["image"] == dev.job_variables["image"] == "retail-etl:1.0.1"
    assert staging.version == "1.0.1"
    assert staging.job_variables["namespace"] == "retail-etl-staging"
    assert staging.job_variables["env"]["RETAIL_ETL_WAREHOUSE"] == "s3://warehouse-staging"
    assert staging.work_pool_name == "retail-etl-staging"
    assert "promoted-from:dev" in staging.tags and "Promoted from dev" in staging.description
    assert "build:1.0.1" in staging.tags and f"gate run {dev_run}" in staging.description
    assert f"passed: {flow_run(dev_run).name} ({dev_run})" in promoted.stdout

    # The Helm path on a copy of staging's values file: the gate, then the image lines as a diff.
    values = tmp_path / "values-staging.yaml"
    values.write_text((REPO / "k8s" / "values-staging.yaml").read_text())
    helm = cli("promote", "--from", "dev", "--to", "staging", "--values-file", str(values), "--apply", "--dry-run")
    assert helm.returncode == 0, helm.stdout + helm.stderr
    assert "+  repository: retail-etl" in helm.stdout and '+  tag: "1.0.1"' in helm.stdout
    assert f"would run: helm upgrade --install retail-etl charts/retail-etl -n retail-etl-staging -f {values}" in (
        helm.stdout
    )
    assert [s.active for s in staging.schedules] == [True] and [s.active for s in dev.schedules] == [False]

    staging_run = schedule_run(
        "daily-sales-etl/daily-sales-etl-staging", datetime.now(ZoneInfo("UTC")), parameters={"run_date": DAY}
    )
    run_worker(api, "retail-etl-staging", tmp_path / "worker-home")
    assert flow_run(staging_run).state.is_completed()
    staging_manifest = json.loads(
        s3.get_object(Bucket="warehouse-staging", Key=f"manifests/sale_date={DAY}.json")["Body"].read()
    )
    assert staging_manifest["run_id"] == str(staging_run)
    assert staging_manifest["rows_published"] == manifest["rows_published"]
    assert bucket_objects(s3_endpoint, "warehouse-dev") == dev_objects  # dev untouched

    # The active staging schedule produced runs at 06:00 Berlin time; the paused dev one none.
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            upcoming = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[staging.id])),
                flow_run_filter=FlowRunFilter(
                    state={"type": {"any_": ["SCHEDULED"]}},
                    start_time={"is_null_": True},
                    expected_start_time={"after_": datetime.now(ZoneInfo("UTC"))},
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=10,
            )
            dev_upcoming = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dev.id])),
                flow_run_filter=FlowRunFilter(
                    state={"type": {"any_": ["SCHEDULED"]}},
                    expected_start_time={"after_": datetime.now(ZoneInfo("UTC"))},
                ),
                limit=10,
            )
        if len(upcoming) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    times = [run.expected_start_time.astimezone(ZoneInfo(TIMEZONE)) for run in upcoming]
    assert len(times) >= 3
    assert all((t.hour, t.minute) == (6, 0) for t in times)
    assert all(later - earlier == timedelta(days=1) for earlier, later in zip(times, times[1:], strict=False))
    assert dev_upcoming == []

    # dev re-registered with an untested build B: refused, naming the run, its build and B.
    register(s3_endpoint, "dev", "1.0.2", local)
    refused = cli("promote", "--from", "dev", "--to", "staging")
    assert refused.returncode == 24, refused.stdout + refused.stderr
    assert f"({dev_run}), ran build 1.0.1, not build 1.0.2 to be promoted" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    forced = cli("promote", "--from", "dev", "--to", "staging", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "FORCED past the gate" in forced.stdout
    with get_client(sync_client=True) as client:
        staging = client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging")
    assert staging.version == "1.0.2" and {"forced-promotion", "build:1.0.2"} <= set(staging.tags)

    # Rollback to A: found in staging's promotion records, through the gate (dev's Completed run of A).
    rolled = cli("promote", "--to", "staging", "--build", "1.0.1")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "rollback dev -> staging: build 1.0.2 -> 1.0.1 (image retail-etl:1.0.1)" in rolled.stdout
    with get_client(sync_client=True) as client:
        staging = client.read_deployment_by_name("daily-sales-etl/daily-sales-etl-staging")
        backfill = client.read_deployment_by_name("retail-etl-backfill/backfill-staging")
    assert staging.version == backfill.version == "1.0.1"
    assert staging.job_variables["image"] == backfill.job_variables["image"] == "retail-etl:1.0.1"
    assert "forced-promotion" not in staging.tags and "rollback" in staging.tags
    keys = sorted(key for key in bucket_objects(s3_endpoint, "warehouse-staging") if key.startswith("_promotions/"))
    records = [json.loads(s3.get_object(Bucket="warehouse-staging", Key=key)["Body"].read()) for key in keys]
    assert [(r["build"], r["forced"], r["rollback"]) for r in records] == [
        ("1.0.1", False, False),
        ("1.0.2", True, False),
        ("1.0.1", False, True),
    ]
    assert records[0]["gate_run_id"] == records[2]["gate_run_id"] == str(dev_run)
    for name, result in (("refused", refused), ("forced", forced), ("rolled back", rolled)):
        print(f"--- {name}: exit {result.returncode}\n{result.stdout}{result.stderr}")
