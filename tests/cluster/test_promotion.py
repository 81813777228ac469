"""Promotion dev -> staging on the Helm path, as a platform team runs it: `retail-etl promote
--values-file ... --apply` checks dev's gate, rewrites staging's values file to dev's build and
runs `helm upgrade --install`; every staging pod then runs that build.

Staging's values file is k8s/values-staging.yaml with what this installation differs in: requests
small enough for a second environment on a 2-core node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from clusterkit import CONTEXT, REPO, kubectl, pods, wait_until
from nights import deployment, prefect_api, s3_endpoint, s3_keys

NAMESPACE = "retail-etl-staging"
SMALL = {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def staging_values(path: Path) -> Path:
    values = yaml.safe_load((REPO / "k8s" / "values-staging.yaml").read_text())
    values["worker"]["resources"] = SMALL
    values["flowRun"]["resources"] = SMALL
    values["dask"]["worker"].update(replicas=1, resources={**SMALL, "limits": {"cpu": "1", "memory": "2Gi"}})
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def prepare_namespace(cluster: dict) -> None:
    """What k8s/up.sh does for an environment before its release: the namespace and MinIO's keys."""
    kubectl("create", "namespace", NAMESPACE, check=False)
    keys = [f"--from-literal={name}={value}" for name, value in s3_keys().items()]
    kubectl("-n", NAMESPACE, "create", "secret", "generic", "retail-etl-s3", *keys)


def build_of(namespace: str, pod: dict) -> str:
    container = pod["spec"]["containers"][0]["name"]
    name = pod["metadata"]["name"]
    return kubectl("-n", namespace, "exec", name, "-c", container, "--", "printenv", "RETAIL_ETL_BUILD").strip()


def test_promotion_runs_devs_build_in_staging(cluster, first_run, tmp_path):
    assert first_run["run"]["state"] == "COMPLETED", first_run["run"]
    prepare_namespace(cluster)
    values = staging_values(tmp_path / "values-staging.yaml")
    with prefect_api() as api, s3_endpoint() as endpoint:
        dev = deployment(api, "daily-sales-etl/daily-sales-etl-dev")
        env = {
            **cluster["env"],
            **s3_keys(),  # the audit record goes into staging's warehouse
            "PREFECT_API_URL": api,
            "RETAIL_ETL_S3_ENDPOINT_URL": endpoint,
            "HELM_KUBECONTEXT": CONTEXT,
        }
        promote = subprocess.run(
            [str(Path(sys.executable).with_name("retail-etl")), "promote", "--from", "dev", "--to", "staging",
             "--values-file", str(values), "--apply", "--namespace", NAMESPACE],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert promote.returncode == 0, promote.stdout[-3000:] + promote.stderr[-3000:]
        staging = deployment(api, "daily-sales-etl/daily-sales-etl-staging")
    assert yaml.safe_load(values.read_text())["image"]["tag"] == dev["image"].rsplit(":", 1)[1]
    assert (staging["version"], staging["image"]) == (dev["version"], dev["image"])

    kubectl("-n", NAMESPACE, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=300s", timeout=320)
    dev_pods = pods("retail-etl-dev", "retail-etl/role=worker")
    staging_pods = wait_until(
        "staging's pods running",
        lambda: [
            p for p in pods(NAMESPACE, "app.kubernetes.io/instance=retail-etl") if p["status"]["phase"] == "Running"
        ],
        timeout=300,
    )
    roles = {pod["metadata"]["labels"]["retail-etl/role"] for pod in staging_pods}
    assert {"worker", "dask-scheduler", "dask-worker"} <= roles, roles
    dev_image_id = dev_pods[0]["status"]["containerStatuses"][0]["imageID"]
    for pod in staging_pods:
        images = [container["image"] for container in pod["spec"]["containers"]]
        assert set(images) == {dev["image"]}, (pod["metadata"]["name"], images)
        for status in pod["status"]["containerStatuses"]:
            assert status["imageID"] == dev_image_id, json.dumps(status)
        assert build_of(NAMESPACE, pod) == dev["version"], pod["metadata"]["name"]
