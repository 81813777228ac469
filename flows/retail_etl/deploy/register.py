"""Registration of one environment: work pool, result storage and deployments.

This is what the Helm chart's registration Job runs on every install and upgrade
(``retail-etl register``), and what the end-to-end tests run against a local
server, so the two cannot drift apart:

1. wait for the Prefect API;
2. create the environment's work pool, or push the chart's base job template into it;
3. save the result-storage block for the environment's warehouse (S3);
4. create or update the environment's deployments from `prefect.yaml`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..config import load_settings
from ..errors import RegistrationError
from ..io.storage import is_remote, normalize
from ..orchestration.results import result_storage
from .project import Project, deep_merge, load_entrypoint
from .spec import create_deployment


def default_image() -> str:
    """The image a deployment runs when none is given: this package's own version.

    >>> default_image() == f"retail-etl:{__version__}"
    True
    """
    return f"retail-etl:{__version__}"


def wait_for_api(timeout: float = 300.0, interval: float = 2.0) -> None:
    """Block until the Prefect API answers its health check (the server may still be starting)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            last_error = client.api_healthcheck()
        if last_error is None:
            return
        time.sleep(interval)
    raise RegistrationError(f"Prefect API not healthy after {timeout:.0f} s: {last_error}")


def sync_work_pool(name: str, pool_type: str, base_job_template: dict | None = None) -> str:
    """Create the pool, or bring an existing pool's base job template up to date."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=pool_type, base_job_template=base_job_template or {})
            )
            return "created"
        if pool.type != pool_type:
            raise RegistrationError(f"work pool {name} is of type {pool.type}, expected {pool_type}")
        if base_job_template and pool.base_job_template != base_job_template:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=base_job_template))
            return "updated"
        return "unchanged"


@dataclass
class RegisteredDeployment:
    name: str
    flow_name: str
    deployment_id: str
    work_pool: str


def deployment_job_variables(spec: Mapping, job_variables: Mapping | None = None, image: str | None = None) -> dict:
    """A deployment's job variables: prefect.yaml's, with `job_variables` and `image` merged over them."""
    variables = deep_merge(spec.get("work_pool", {}).get("job_variables") or {}, job_variables or {})
    if image:
        variables["image"] = image
    variables.setdefault("image", default_image())
    return variables


def check_namespaces(
    project: Project,
    environment: str,
    allowed: Collection[str],
    job_variables: Mapping | None = None,
    base_job_template: Mapping | None = None,
) -> None:
    """Refuse (before registering anything) a deployment whose Jobs would run in a namespace the
    worker has no Role in: it would get 403 on every flow run. A deployment without a `namespace`
    job variable runs in the pool's default (the base job template's), which is checked instead."""
    default = ((base_job_template or {}).get("variables", {}).get("properties", {}).get("namespace") or {}).get(
        "default"
    )
    for spec in project.for_environment(environment):
        namespace = deployment_job_variables(spec, job_variables).get("namespace") or default
        if namespace and namespace not in allowed:
            raise RegistrationError(
                f"deployment {spec['name']} runs its flow-run Jobs in namespace {namespace}, which is not one of"
                f" the worker's job namespaces ({', '.join(allowed)}): add it to the chart's worker.jobNamespaces"
                " or change the deployment's namespace job variable"
            )


def register_deployments(
    project: Project,
    environment: str,
    image: str | None = None,
    work_pool: str | None = None,
    working_directory: str | None = None,
    job_variables: Mapping | None = None,
    version: str | None = None,
) -> list[RegisteredDeployment]:
    """Create or update every deployment of `environment` (tagged ``env:<environment>``)."""
    from prefect.client.orchestration import get_client
    from prefect.utilities.callables import parameter_schema

    registered = []
    with get_client(sync_client=True) as client:
        for spec in project.for_environment(environment):
            flow = load_entrypoint(project, spec["entrypoint"])
            variables = deployment_job_variables(spec, job_variables, image)
            pool = work_pool or spec["work_pool"]["name"]
            deployment_id = create_deployment(
                client,
                spec,
                flow_name=flow.name,
                version=version or spec.get("version") or __version__,
                description=spec.get("description") or flow.description or "",
                tags=list(spec.get("tags") or []),
                entrypoint=spec["entrypoint"],
                parameter_schema=parameter_schema(flow).model_dump_for_openapi(),
                job_variables=variables,
                pull_steps=project.pull_steps(working_directory),
                work_pool=pool,
            )
            registered.append(RegisteredDeployment(spec["name"], flow.name, deployment_id, pool))
    return registered


def ensure_result_storage() -> str | None:
    """Save the S3 result-storage block for the environment's warehouse; None for a local warehouse."""
    settings = load_settings()
    warehouse = normalize(settings.warehouse)
    if not is_remote(warehouse):
        return None
    block = result_storage(warehouse, settings.storage_options())
    return f"remote-file-system/{getattr(block, '_block_document_name', '')}"


def register_environment(
    environment: str,
    prefect_file: str | Path,
    *,
    pool_type: str = "kubernetes",
    base_job_template: dict | None = None,
    image: str | None = None,
    work_pool: str | None = None,
    working_directory: str | None = None,
    job_variables: Mapping | None = None,
    version: str | None = None,
    wait_timeout: float = 300.0,
    allowed_namespaces: Collection[str] | None = None,
) -> dict:
    """Everything the registration Job does, in order; returns what it did. With
    `allowed_namespaces`, nothing is registered if a deployment's Jobs would run elsewhere."""
    project = Project.load(prefect_file)
    specs = project.for_environment(environment)
    if allowed_namespaces:
        check_namespaces(project, environment, allowed_namespaces, job_variables, base_job_template)
    pools = {work_pool or spec["work_pool"]["name"] for spec in specs}
    wait_for_api(wait_timeout)
    pool_results = {pool: sync_work_pool(pool, pool_type, base_job_template) for pool in sorted(pools)}
    storage = ensure_result_storage()
    deployments = register_deployments(
        project,
        environment,
        image=image,
        work_pool=work_pool,
        working_directory=working_directory,
        job_variables=job_variables,
        version=version,
    )
    return {"work_pools": pool_results, "result_storage": storage, "deployments": [asdict(d) for d in deployments]}
