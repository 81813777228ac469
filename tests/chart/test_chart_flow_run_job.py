"""The Kubernetes Job the worker would create for each environment's deployments.

Built the way prefect-kubernetes builds it (flowrun.py): the pushed base job template, prefect.yaml's
job variables overridden by the registration Job's --job-variables, and its --image. The S3 modes
are in test_chart_s3_modes.py, the per-component pod settings in test_chart_pod_settings.py.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from chartkit import (
    ENVIRONMENTS,
    KUBERNETES_VERSIONS,
    allowed,
    base_job_template,
    deep_merge,
    one,
    render_environment,
    selector_matches,
)
from flowrun import deployments_of, registration_arguments, worker_job


@pytest.mark.parametrize("environment", ["default", "dev", "staging", "prod"])
def test_flow_run_job_of_every_deployment(environment):
    objects = render_environment(environment)
    _, namespace = ENVIRONMENTS[environment]
    env_name = "dev" if environment == "default" else environment
    template = base_job_template(objects)
    image, overrides = registration_arguments(objects)
    platform_namespace = namespace if environment == "default" else "retail-etl"
    s3_secret = "retail-etl-minio" if environment == "default" else "retail-etl-s3"

    for deployment in deployments_of(env_name):
        variables = deep_merge(deployment["work_pool"].get("job_variables") or {}, overrides)
        variables["image"] = image
        job = worker_job(template, variables, "daily-sales-etl")

        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(job, version, strict=True)

        assert job["metadata"]["namespace"] == namespace
        assert (
            isinstance(job["spec"]["ttlSecondsAfterFinished"], int)
            and 0 < job["spec"]["ttlSecondsAfterFinished"] < 10**7
        )
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "retail-etl-flow-run"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["image"] == image == "retail-etl:0.1.0"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert set(container["resources"]["requests"]) == {"cpu", "memory"} == set(container["resources"]["limits"])
        assert container["envFrom"] == [{"secretRef": {"name": s3_secret}}]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RETAIL_ETL_WAREHOUSE"] == f"s3://warehouse-{env_name}"
        assert env["RETAIL_ETL_LANDING"] == "s3://landing"
        assert (
            env["RETAIL_ETL_S3_ENDPOINT_URL"] == f"http://retail-etl-minio.{platform_namespace}.svc.cluster.local:9000"
        )
        assert env["RETAIL_ETL_DASK_ADDRESS"] == f"tcp://retail-etl-dask-scheduler.{namespace}.svc.cluster.local:8786"
        assert env["PREFECT_API_URL"] == f"http://retail-etl-server.{platform_namespace}.svc.cluster.local:4200/api"
        assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env

        # The NetworkPolicies admit the pod Prefect actually creates (it rewrites some labels).
        labels = job["spec"]["template"]["metadata"]["labels"]
        deny = one(objects, "NetworkPolicy", "retail-etl-default-deny")
        assert selector_matches(deny["spec"]["podSelector"], labels)
        assert allowed(one(objects, "NetworkPolicy", "retail-etl-dask-scheduler"), labels, namespace, 8786)
        assert allowed(one(objects, "NetworkPolicy", "retail-etl-dask-worker"), labels, namespace, 8790)
        platform = objects if environment == "default" else render_environment("platform")
        assert allowed(one(platform, "NetworkPolicy", "retail-etl-server"), labels, namespace, 4200)
        assert allowed(one(platform, "NetworkPolicy", "retail-etl-minio"), labels, namespace, 9000)
