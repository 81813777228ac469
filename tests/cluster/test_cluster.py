"""The product on a real Kubernetes cluster: kind, from the node image k8s/cluster-cache.sh built,
brought up by `k8s/up.sh` as the README tells a user to run it (with only the settings a machine
without a registry needs), then what a night brings.

MinIO's image is in a registry this machine cannot reach, so the releases use an external S3
store: moto's S3 server (tests/cluster/s3-server.yaml) in namespace retail-etl-s3. Everything
else is the chart as installed: the Prefect server, the worker creating flow-run Jobs in the
environment's namespace, Dask, the registration hook, NetworkPolicies enforced by
kube-network-policies.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from chartkit import helm_binary
from clusterkit import (
    CACHE,
    CLUSTER,
    CONTEXT,
    REPO,
    cache_missing,
    diagnostics,
    kubectl,
    node_image,
    port_forward,
    wait_until,
)
from pods import moto_image

from retail_etl.bench.baselines import pandas_baseline
from retail_etl.bench.compare import warehouse_figures
from retail_etl.io.delta import TABLES, read_day
from retail_etl.synth.generate import generate_day

ENVIRONMENTS = ["dev", "staging"]
NAMESPACES = ["retail-etl", *(f"retail-etl-{env}" for env in ENVIRONMENTS), "retail-etl-s3", "kube-system"]
S3_KEYS = {"AWS_ACCESS_KEY_ID": "retail-etl-test", "AWS_SECRET_ACCESS_KEY": "retail-etl-test-secret"}
DAY = "2024-01-15"


def tool_path() -> str:
    """kind and kubectl from the cache, helm as the chart tests get it, ahead of PATH."""
    helm_dir = Path(helm_binary()).parent
    return os.pathsep.join([str(CACHE / "bin"), str(helm_dir), os.environ["PATH"]])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    missing = cache_missing()
    if missing:
        reason = f"no cluster cache ({', '.join(missing)}): run k8s/cluster-cache.sh"
        if os.environ.get("RETAIL_ETL_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "RETAIL_ETL_"))},
        **S3_KEYS,
        "PATH": tool_path(),
        "CLUSTER_NAME": CLUSTER,
        "ENVIRONMENTS": " ".join(ENVIRONMENTS),
        "KIND_NODE_IMAGE": node_image(),
        "PYTHON_IMAGE": "retail-etl-standin-python:bookworm",
        "S3_ENDPOINT_URL": "http://s3.retail-etl-s3.svc.cluster.local:9000",
        "HELM_TIMEOUT": "10m",
    }
    subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, capture_output=True)
    try:
        up = subprocess.run(
            ["bash", str(REPO / "k8s" / "up.sh")], env=env, capture_output=True, text=True, timeout=1800
        )
        if up.returncode != 0:
            pytest.fail(f"k8s/up.sh exited {up.returncode}:\n{up.stderr[-6000:]}\n{diagnostics(NAMESPACES)}")
        subprocess.run(["kind", "load", "docker-image", moto_image(), "--name", CLUSTER], env=env, check=True)
        kubectl(
            "apply",
            "-f",
            "-",
            stdin=(Path(__file__).parent / "s3-server.yaml").read_text().replace("MOTO_IMAGE", moto_image()),
        )
        kubectl("-n", "retail-etl-s3", "rollout", "status", "deployment/s3", "--timeout=180s", timeout=200)
        with port_forward("retail-etl-s3", "svc/s3", 9000) as port:
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
            for bucket in ["landing", *(f"warehouse-{env}" for env in ENVIRONMENTS)]:
                s3.create_bucket(Bucket=bucket)
        yield {"env": env, "up_output": up.stdout + up.stderr, "workdir": tmp_path_factory.mktemp("cluster")}
    finally:
        if os.environ.get("RETAIL_ETL_KEEP_CLUSTER") != "1":
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, capture_output=True)


@pytest.fixture(autouse=True)
def explain_failures(request, cluster) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(diagnostics(NAMESPACES))


def helm(cluster: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["helm", "--kube-context", CONTEXT, *args], env=cluster["env"], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_helm_test_passes_in_every_release(cluster):
    for namespace in ["retail-etl", "retail-etl-dev"]:
        result = helm(cluster, "test", "retail-etl", "-n", namespace, "--logs")
        assert result.returncode == 0, f"helm test in {namespace}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"


async def _run_daily(api_url: str, environment: str, run_date: str, timeout: float) -> dict:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name(f"daily-sales-etl/daily-sales-etl-{environment}")
        flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters={"run_date": run_date})
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            current = await client.read_flow_run(flow_run.id)
            if current.state is not None and current.state.is_final():
                return {"id": str(flow_run.id), "state": current.state.type.value, "message": current.state.message,
                        "name": current.name}  # fmt: skip
            await asyncio.sleep(3)
    raise AssertionError(f"flow run {flow_run.id} did not finish within {timeout:.0f} s")


def _landing(cluster: dict) -> Path:
    landing = cluster["workdir"] / "landing"
    if not landing.exists():
        generate_day(landing, DAY, rows=30_000, stores=8, bad_fraction=0.02, seed=23, bad_files=2)
        with port_forward("retail-etl-s3", "svc/s3", 9000) as port:
            s3 = _s3(port)
            for path in sorted((landing / "sales").rglob("*")):
                if path.is_file():
                    s3.upload_file(str(path), "landing", str(path.relative_to(landing)))
    return landing


def _s3(port: int):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


def _published(port: int, warehouse: str, monkeypatch) -> dict:
    for name, value in S3_KEYS.items():
        monkeypatch.setenv(name, value)
    options = {"endpoint_url": f"http://127.0.0.1:{port}"}
    marts = read_day(warehouse, options, TABLES["marts"], DAY)
    quarantine = read_day(warehouse, options, TABLES["quarantine"], DAY)
    return {
        "regions": {
            row.region: (round(row.revenue * 100), int(row.units), int(row.transactions)) for row in marts.itertuples()
        },  # fmt: skip
        "reasons": quarantine["reason"].value_counts().to_dict(),
    }


def _expected(landing: Path, workdir: Path) -> dict:
    warehouse = workdir / "baseline"
    if not warehouse.exists():
        pandas_baseline.run(landing / "sales" / f"sale_date={DAY}", warehouse, DAY)
    figures = warehouse_figures(warehouse, DAY)
    return {
        "regions": {
            region: (round(f["revenue"] * 100), f["units"], f["transactions"])
            for region, f in figures["regions"].items()
        },  # fmt: skip
        "reasons": figures["quarantine_reasons"],
    }


def test_a_run_of_the_daily_deployment_runs_as_a_job_on_dask_and_lands_in_s3(cluster, monkeypatch):
    landing = _landing(cluster)
    with port_forward("retail-etl", "svc/retail-etl-server", 4200) as api_port:
        run = asyncio.run(_run_daily(f"http://127.0.0.1:{api_port}/api", "dev", DAY, timeout=900))
    assert run["state"] == "COMPLETED", run
    # the worker created the flow run's Job in the environment's namespace
    jobs = json.loads(kubectl("-n", "retail-etl-dev", "get", "jobs", "-o", "json"))["items"]
    assert any(run["name"] in json.dumps(job["metadata"]) for job in jobs), [j["metadata"]["name"] for j in jobs]
    # its tasks ran on the Dask worker pods (the release's scheduler saw them)
    assert _dask_transitions() > 0
    with port_forward("retail-etl-s3", "svc/s3", 9000) as s3_port:
        published = _published(s3_port, "s3://warehouse-dev", monkeypatch)
    assert published == _expected(landing, cluster["workdir"])


def _dask_transitions() -> int:
    from distributed import Client

    with port_forward("retail-etl-dev", "svc/retail-etl-dask-scheduler", 8786) as port:
        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def _connects(namespace: str, labels: dict[str, str], host: str, port: int) -> bool:
    """Whether a throwaway pod with these labels in `namespace` opens a TCP connection to host:port."""
    image = json.loads(kubectl("-n", "retail-etl-dev", "get", "deploy/retail-etl-dask-worker", "-o", "json"))["spec"][
        "template"
    ]["spec"]["containers"][0]["image"]
    name = f"probe-{abs(hash((namespace, host, port, tuple(labels.items())))) % 10**8}"
    script = (
        "import socket, sys\n"
        f"s = socket.socket(); s.settimeout(5)\n"
        f"sys.exit(0 if s.connect_ex(({host!r}, {port})) == 0 else 3)\n"
    )
    label_args = ",".join(f"{k}={v}" for k, v in labels.items())
    kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=true", timeout=120)
    kubectl("-n", namespace, "run", name, f"--image={image}", "--image-pull-policy=Never", "--restart=Never",
            *( [f"--labels={label_args}"] if labels else []), "--command", "--", "python", "-c", script)  # fmt: skip
    phase = wait_until(
        f"probe pod {namespace}/{name}",
        lambda: (
            kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}") in ("Succeeded", "Failed")
            and kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        ),
        timeout=120,
    )
    kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)
    return phase == "Succeeded"


def test_network_policies_are_enforced(cluster):
    server = "retail-etl-server.retail-etl.svc.cluster.local"
    scheduler = "retail-etl-dask-scheduler.retail-etl-dev.svc.cluster.local"
    flow_run = {"retail-etl/role": "flow-run"}
    kubectl("create", "namespace", "outsider", check=False)
    # the flow's traffic is admitted ...
    assert _connects("retail-etl-dev", flow_run, server, 4200)
    assert _connects("retail-etl-dev", flow_run, scheduler, 8786)
    # ... a pod outside the allowed set is not
    assert not _connects("outsider", {}, server, 4200)
    assert not _connects("outsider", {}, scheduler, 8786)
    assert not _connects("retail-etl-dev", {"app": "intruder"}, scheduler, 8786)
