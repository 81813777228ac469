"""What a night brings on the test cluster: a landing day in the cluster's S3 store, runs of an
environment's daily deployment through the Prefect API, and the day's figures read back from the
warehouse and from the pandas baseline on the same landing.

The store is the platform release's MinIO (its keys in the Secret retail-etl-minio); everything
is reached through `kubectl port-forward`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from clusterkit import kubectl, port_forward

from retail_etl.bench.baselines import pandas_baseline
from retail_etl.bench.compare import warehouse_figures
from retail_etl.io.delta import TABLES, read_day
from retail_etl.synth.generate import REGIONS, generate_day

DAY = "2024-01-15"
KEY_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@cache
def s3_keys() -> dict[str, str]:
    """The platform MinIO's root keys, from the Secret the chart generated."""
    data = json.loads(kubectl("-n", "retail-etl", "get", "secret", "retail-etl-minio", "-o", "json"))["data"]
    return {name: base64.b64decode(data[name]).decode() for name in KEY_NAMES}


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """The cluster's S3 store (the platform MinIO) as an endpoint URL on 127.0.0.1."""
    with port_forward("retail-etl", "svc/retail-etl-minio", 9000) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def prefect_api() -> Iterator[str]:
    """The platform release's Prefect API as a URL on 127.0.0.1."""
    with port_forward("retail-etl", "svc/retail-etl-server", 4200) as port:
        yield f"http://127.0.0.1:{port}/api"


def s3_client(endpoint: str):
    keys = s3_keys()
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


def land(workdir: Path, seed: int, rows: int = 30_000) -> Path:
    """Generate the day with `seed` and make it the day's whole landing in s3://landing (a larger
    day takes the pipeline long enough for a fault to hit it mid-run)."""
    landing = workdir / f"landing-{seed}-{rows}"
    if not landing.exists():
        generate_day(landing, DAY, rows=rows, stores=8, bad_fraction=0.02, seed=seed, bad_files=2)
    prefix = f"sales/sale_date={DAY}/"
    with s3_endpoint() as endpoint:
        client = s3_client(endpoint)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="landing", Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket="landing", Key=item["Key"])
        for path in sorted((landing / "sales").rglob("*")):
            if path.is_file():
                client.upload_file(str(path), "landing", str(path.relative_to(landing)))
    return landing


def expected_figures(landing: Path) -> dict:
    """The day's figures by the pandas baseline, with the regions the environments accept."""
    warehouse = landing.with_name(f"{landing.name}-baseline")
    if not warehouse.exists():
        pandas_baseline.run(landing / "sales" / f"sale_date={DAY}", warehouse, DAY, regions=REGIONS)
    figures = warehouse_figures(warehouse, DAY)
    return {
        "regions": {
            region: (round(f["revenue"] * 100), f["units"], f["transactions"])
            for region, f in figures["regions"].items()
        },  # fmt: skip
        "reasons": figures["quarantine_reasons"],
        "rows": figures["rows_published"],
    }


def published_figures(warehouse: str) -> dict:
    """The day as the warehouse serves it now (needs the S3 keys in the environment)."""
    missing = [name for name, value in s3_keys().items() if os.environ.get(name) != value]
    assert not missing, f"the MinIO keys are not in the environment: {missing}"
    with s3_endpoint() as endpoint:
        options = {"endpoint_url": endpoint}
        marts = read_day(warehouse, options, TABLES["marts"], DAY)
        quarantine = read_day(warehouse, options, TABLES["quarantine"], DAY)
        curated = read_day(warehouse, options, TABLES["curated"], DAY, columns=["transaction_id"])
    return {
        "regions": {
            row.region: (round(row.revenue * 100), int(row.units), int(row.transactions)) for row in marts.itertuples()
        },  # fmt: skip
        "reasons": {str(k): int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()},
        "rows": len(curated),
    }


def _client(api_url: str):
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api_url)


def start_run(api_url: str, environment: str) -> str:
    """A run of the environment's daily deployment for DAY; its flow run id."""

    async def start() -> str:
        async with _client(api_url) as client:
            deployment = await client.read_deployment_by_name(f"daily-sales-etl/daily-sales-etl-{environment}")
            flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters={"run_date": DAY})
            return str(flow_run.id)

    return asyncio.run(start())


def flow_run(api_url: str, run_id: str) -> dict[str, Any]:
    """The run's name, state and message, and the states of its task runs."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, Any]:
        async with _client(api_url) as client:
            run = await client.read_flow_run(run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            return {
                "id": run_id,
                "name": run.name,
                "state": run.state.type.value if run.state else None,
                "message": run.state.message if run.state else None,
                "deployment_version": run.deployment_version,
                "tasks": [task.state.type.value for task in tasks if task.state],
            }

    return asyncio.run(read())


def wait_for_run(api_url: str, run_id: str, timeout: float, until: Callable[[dict], bool] | None = None) -> dict:
    """Poll the run until `until(run)` holds (default: a final state); the run as last read."""
    import time

    until = until or (lambda run: run["state"] in FINAL)
    deadline = time.monotonic() + timeout
    while True:
        run = flow_run(api_url, run_id)
        if until(run):
            return run
        if run["state"] in FINAL or time.monotonic() > deadline:
            raise AssertionError(f"flow run {run_id}: not as awaited within {timeout:.0f} s: {run}")
        time.sleep(2)


def deployment(api_url: str, name: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with _client(api_url) as client:
            found = await client.read_deployment_by_name(name)
            return {"id": str(found.id), "version": found.version, "image": found.job_variables.get("image")}

    return asyncio.run(read())


def artifact_keys(api_url: str, run_id: str) -> set[str]:
    """The keys of the artifacts a flow run created."""
    from uuid import UUID

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> set[str]:
        async with _client(api_url) as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
            )
            return {artifact.key for artifact in found if artifact.key}

    return asyncio.run(read())
