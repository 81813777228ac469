"""The image, run as the chart runs it: every workload's container made from a `helm template`
render of the chart's defaults (command, args, env, user, read-only root, dropped capabilities,
limits, volumes) on one Docker network whose aliases are the chart's Service names.

In order: the Prefect server answers its health check; the Dask scheduler has the chart's
workers; the bucket Job makes the buckets in the S3 server (moto's, in a container under the
MinIO Service's names); the registration Job registers the environment's deployments; a run of
the daily deployment, created through the API, is executed by the container prefect-kubernetes
would build for it (`prefect flow-run execute`, that run's id, the Job's env); the day's figures
read back from S3 equal those of the generated landing computed by the plain-pandas baseline.
Kubernetes itself (the worker creating the Job, Services, policies) is the cluster test's part.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from pods import Pod, Render, Sandbox, docker, published_port

from retail_etl.bench.baselines import pandas_baseline
from retail_etl.bench.compare import warehouse_figures
from retail_etl.io.delta import TABLES, read_day
from retail_etl.synth.generate import generate_day

NAMESPACE = "retail-etl-dev"
DAY = "2024-01-15"
DEPLOYMENT = "daily-sales-etl/daily-sales-etl-dev"
# a default install; the images are local, so nothing is ever pulled
VALUES = {"image": {"pullPolicy": "Never"}}


@dataclass
class Platform:
    """What the smoke run started: the render, the sandbox, and the host ends of its ports."""

    render: Render
    sandbox: Sandbox
    api_url: str
    server_container: str
    scheduler: str
    s3_endpoint: str
    image: str
    workdir: Path
    jobs: dict[str, str]  # job name -> its output, once it ran


def wait_until(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:  # not up yet
            last = error
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last error: {last!r})")


def run_job(platform: Platform, job: str, timeout: float = 300) -> str:
    """Run a Job of the render as its pod would, to completion; its output, or a failure with it."""
    pod = platform.sandbox.pod(f"{job}-pod", platform.render.pod_spec("Job", job), platform.render)
    done = pod.run_to_completion(timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"Job {job} exited {done.returncode}:\n{output[-6000:]}"
    platform.jobs[job] = output
    return output


@pytest.fixture(scope="module")
def platform(product_image, s3_image, tmp_path_factory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("smoke")
    render = Render.of(VALUES, NAMESPACE)
    sandbox = Sandbox(workdir)
    try:
        # the S3 store under the MinIO Service's names, in place of the MinIO StatefulSet
        minio = sandbox.pod("retail-etl-minio-0", {"containers": []}, render, services=["retail-etl-minio"])
        s3_container = minio.container_name({"name": "s3"})
        docker("run", "--detach", "--name", s3_container, "--label", f"retail-etl-smoke={sandbox.run_id}",
               "--network", sandbox.network, *[f"--network-alias={a}" for a in minio.aliases],
               "--publish=127.0.0.1::9000", s3_image)  # fmt: skip
        server = sandbox.pod(
            "retail-etl-server-0", render.pod_spec("Deployment", "retail-etl-server"), render, ["retail-etl-server"]
        )
        server.prepare_volumes(product_image)
        (server_container,) = server.start(publish=[4200])
        scheduler = sandbox.pod(
            "retail-etl-dask-scheduler-0",
            render.pod_spec("Deployment", "retail-etl-dask-scheduler"),
            render,
            ["retail-etl-dask-scheduler"],
        )
        (scheduler_container,) = scheduler.start(publish=[8786])
        workers = render.named("Deployment", "retail-etl-dask-worker")
        for number in range(workers["spec"]["replicas"]):
            sandbox.pod(f"retail-etl-dask-worker-{number}", workers["spec"]["template"]["spec"], render).start()
        yield Platform(
            render=render,
            sandbox=sandbox,
            api_url=f"http://127.0.0.1:{published_port(server_container, 4200)}/api",
            server_container=server_container,
            scheduler=f"tcp://127.0.0.1:{published_port(scheduler_container, 8786)}",
            s3_endpoint=f"http://127.0.0.1:{published_port(s3_container, 9000)}",
            image=product_image,
            workdir=workdir,
            jobs={},
        )
    finally:
        sandbox.close()


@pytest.fixture(autouse=True)
def diagnostics(request, platform) -> Iterator[None]:
    """On a failure, every container's state and log tail: what failed, and why."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n".join(platform.sandbox.diagnostics()))


def s3_client(platform: Platform):
    keys = platform.render.secret("retail-etl-minio")
    return boto3.client(
        "s3",
        endpoint_url=platform.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )


def test_the_server_answers_its_health_check(platform):
    wait_until("the Prefect server's /api/health", lambda: httpx.get(f"{platform.api_url}/health").json(), 180)
    server = docker("inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", platform.server_container)
    assert server.stdout.split() == ["10001:10001", "true"]


def test_the_dask_scheduler_has_the_charts_workers(platform):
    from distributed import Client

    expected = platform.render.named("Deployment", "retail-etl-dask-worker")["spec"]["replicas"]
    with Client(platform.scheduler, timeout=60) as client:
        client.wait_for_workers(expected, timeout=180)
        names = sorted(worker["name"] for worker in client.scheduler_info()["workers"].values())
    assert names == [f"retail-etl-dask-worker-{n}" for n in range(expected)]  # --name $(POD_NAME)


def test_the_bucket_job_makes_the_buckets(platform):
    output = run_job(platform, "retail-etl-make-buckets")
    assert "bucket landing: created" in output and "bucket warehouse-dev: created" in output
    buckets = {bucket["Name"] for bucket in s3_client(platform).list_buckets()["Buckets"]}
    assert {"landing", "warehouse-dev"} <= buckets


def test_the_registration_job_registers_the_environment(platform):
    test_the_server_answers_its_health_check(platform)
    run_job(platform, "retail-etl-register")
    deployments = httpx.post(f"{platform.api_url}/deployments/filter", json={}).json()
    names = {deployment["name"] for deployment in deployments}
    assert {"daily-sales-etl-dev", "backfill-dev"} <= names
    assert not any(name.endswith(("-staging", "-prod")) for name in names)


async def _flow_run_pod_spec(api_url: str, run_date: str) -> tuple[str, dict]:
    """A run of the daily deployment, created through the API, and the Job prefect-kubernetes
    builds for it, as the worker does (the pool's base job template, the deployment's and the
    run's job variables, the run's id), with the run proposed Pending as the worker proposes it."""
    from prefect.client.orchestration import PrefectClient
    from prefect.states import Pending
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters={"run_date": run_date})
        pool = await client.read_work_pool(deployment.work_pool_name)
        configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
            flow_run, client=client, work_pool=pool, worker_name="smoke-test", deployment=deployment
        )
        await client.set_flow_run_state(flow_run.id, Pending())
    return str(flow_run.id), configuration.job_manifest


def test_a_run_of_the_daily_deployment_publishes_the_generated_day(platform, monkeypatch):
    if "retail-etl-register" not in platform.jobs:
        test_the_registration_job_registers_the_environment(platform)
    if "retail-etl-make-buckets" not in platform.jobs:
        test_the_bucket_job_makes_the_buckets(platform)
    landing = platform.workdir / "landing"
    generate_day(landing, DAY, rows=20_000, stores=6, bad_fraction=0.02, seed=19, bad_files=2)
    s3 = s3_client(platform)
    for path in sorted((landing / "sales").rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), "landing", str(path.relative_to(landing)))

    run_id, job = asyncio.run(_flow_run_pod_spec(platform.api_url, DAY))
    pod_spec = job["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["args"] == ["prefect", "flow-run", "execute"] or "flow-run" in " ".join(
        container.get("command", []) + container.get("args", [])
    ), container
    pod = Pod(f"{job['metadata']['generateName']}smoke", pod_spec, platform.render, platform.workdir,
              platform.sandbox.run_id, platform.sandbox.network)  # fmt: skip
    env = pod.env(container)
    assert env["PREFECT__FLOW_RUN_ID"] == run_id and env["RETAIL_ETL_ENVIRONMENT"] == "dev"
    transitions_before = _dask_transitions(platform.scheduler)
    done = pod.run_to_completion(timeout=600)
    state = httpx.get(f"{platform.api_url}/flow_runs/{run_id}").json()["state"]
    assert done.returncode == 0 and state["type"] == "COMPLETED", (
        f"flow run {run_id}: {state['type']} {state.get('message')}; exit {done.returncode}\n"
        f"{(done.stdout + done.stderr)[-8000:]}"
    )

    assert _dask_transitions(platform.scheduler) > transitions_before, "no task ran on the Dask workers"

    expected = warehouse_figures(_baseline_warehouse(landing, platform.workdir), DAY)
    for name, value in platform.render.secret("retail-etl-minio").items():
        monkeypatch.setenv(name, value)  # the keys the chart gives its S3 clients
    options = {"endpoint_url": platform.s3_endpoint}
    marts = read_day("s3://warehouse-dev", options, TABLES["marts"], DAY)
    published = {
        row.region: {
            "revenue": round(row.revenue * 100),
            "units": int(row.units),
            "transactions": int(row.transactions),
        }
        for row in marts.itertuples()
    }
    assert published == {
        region: {
            "revenue": round(figures["revenue"] * 100),
            "units": figures["units"],
            "transactions": figures["transactions"],
        }
        for region, figures in expected["regions"].items()
    }
    quarantined = read_day("s3://warehouse-dev", options, TABLES["quarantine"], DAY)
    assert quarantined["reason"].value_counts().to_dict() == expected["quarantine_reasons"]
    curated = read_day("s3://warehouse-dev", options, TABLES["curated"], DAY, columns=["region"])
    assert len(curated) == expected["rows_published"] > 0


def _dask_transitions(address: str) -> int:
    """How many task state transitions the chart's Dask scheduler has seen so far."""
    from distributed import Client

    with Client(address, timeout=60) as client:
        return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def _baseline_warehouse(landing: Path, workdir: Path) -> Path:
    """The same landing day through the plain-pandas baseline (no Prefect, Dask or Delta)."""
    warehouse = workdir / "baseline-warehouse"
    pandas_baseline.run(landing / "sales" / f"sale_date={DAY}", warehouse, DAY)
    return warehouse
