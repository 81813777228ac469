"""Builds the flow-run Job exactly as the worker would: the chart's base job template (the ConfigMap
the registration Job pushes into the pool) with the job variables the registration Job gives each
deployment (prefect.yaml's, overridden by the Job's --job-variables, plus --image), through
prefect-kubernetes' KubernetesWorkerJobConfiguration.from_template_and_values(...) and
prepare_for_flow_run(...)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import yaml
from chartkit import REPO, base_job_template, deep_merge, find

PREFECT_FILE = REPO / "prefect.yaml"


def registration_arguments(objects: list[dict]) -> tuple[str, dict]:
    """(--image, --job-variables) of the registration Job."""
    (job,) = [j for j in find(objects, "Job") if j["metadata"]["name"].endswith("-register")]
    args = job["spec"]["template"]["spec"]["containers"][0]["command"]
    return args[args.index("--image") + 1], json.loads(args[args.index("--job-variables") + 1])


def deployments_of(environment: str) -> list[dict]:
    """prefect.yaml's deployments of one environment (tag env:<environment>)."""
    assert PREFECT_FILE.exists(), "prefect.yaml is missing"
    # `{{ $NAME }}` placeholders are filled from the registering process's environment.
    text = re.sub(r"\{\{\s*\$([A-Z0-9_]+)\s*\}\}", "UTC", PREFECT_FILE.read_text())
    project = yaml.safe_load(text)
    found = [d for d in project["deployments"] if f"env:{environment}" in (d.get("tags") or [])]
    assert found, f"prefect.yaml has no deployment tagged env:{environment}"
    return found


def worker_job(template: dict, job_variables: dict, flow_name: str) -> dict:
    from prefect.client.schemas.objects import Flow, FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async def build():
        # No block or variable references in the template, so no API client is needed.
        configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
            template, job_variables, client=object()
        )
        flow_run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="nightly-run")
        configuration.prepare_for_flow_run(flow_run, flow=Flow(id=flow_run.flow_id, name=flow_name))
        return configuration.job_manifest

    return asyncio.run(build())


def flow_run_jobs(objects: list[dict], environment: str, overrides: dict | None = None) -> list[dict]:
    """The Job of every deployment of `environment` registered by this render's registration Job
    (`overrides` replaces its --job-variables, to show what they prevent)."""
    image, job_variables = registration_arguments(objects)
    if overrides is not None:
        job_variables = overrides
    template = base_job_template(objects)
    jobs = []
    for deployment in deployments_of(environment):
        variables = deep_merge(deployment["work_pool"].get("job_variables") or {}, job_variables)
        variables["image"] = image
        jobs.append(worker_job(template, variables, "daily-sales-etl"))
    return jobs


def job_container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container
