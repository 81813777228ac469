"""Registration of one environment: work pool, result storage and deployments.

This is what the Helm chart's registration Job runs on every install and upgrade
(``retail-etl register``), and what the end-to-end tests run against a local
server, so the two cannot drift apart:

1. wait for the configured Prefect API (never a temporary one);
2. create the environment's work pool, or push the chart's base job template into it;
3. save the result-storage block for the environment's warehouse (S3);
4. create or update the environment's deployments from `prefect.yaml`, each labelled with the
   build being registered (`version`, `version_info`).

A deployment that `retail-etl promote` gave another build (tag ``promoted-from:<env>``) keeps
that build (image, version, entrypoint, parameter schema, promotion tags and note) unless
`reset_promotions`: without Helm, promotion through the API is the environment's truth, and a
re-registration must not silently revert it. With Helm the release image *is* the promoted build
(promotion rewrites the values file), so nothing is kept apart from the promotion's record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..build import build_id
from ..config import load_settings
from ..errors import ConfigurationError, RegistrationError, WorkPoolTypeMismatch
from ..io.storage import is_remote, normalize
from ..orchestration.results import result_storage
from .api import api_connection, require_api
from .project import Project, deep_merge, load_entrypoint
from .spec import create_deployment, read_deployment

#: Tags `retail-etl promote` writes; a deployment carrying one holds a promoted build.
PROMOTION_TAG_PREFIX = "promoted-"
PROMOTED_FROM_TAG = "promoted-from:"


def default_image() -> str:
    """The image a deployment runs when none is given: this package's own version.

    >>> default_image() == f"retail-etl:{__version__}"
    True
    """
    return f"retail-etl:{__version__}"


def schedule_timezone_override() -> str | None:
    """RETAIL_ETL_SCHEDULE_TIMEZONE when it is set (prefect.yaml's literal UTC applies otherwise)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    settings = load_settings()
    if "schedule_timezone" not in settings.model_fields_set:
        return None
    zone = settings.schedule_timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"RETAIL_ETL_SCHEDULE_TIMEZONE={zone!r} is not an IANA time zone (e.g. UTC, Europe/Berlin): "
            "set a valid one or unset it for UTC"
        ) from None
    return zone


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
            raise WorkPoolTypeMismatch(
                f"work pool {name} exists with type {pool.type}, not {pool_type}: delete it"
                f" (prefect work-pool delete {name}) to have it created again, register with"
                f" --pool-type {pool.type}, or use another pool with --work-pool"
            )
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
    build: str
    image: str
    kept_promotion: str | None = None  # the promoted-from tag of a promoted build that was kept


def version_info(build: str) -> Any:
    """Prefect's structured version of a deployment: the build id (Prefect Cloud shows it; an
    open-source server accepts and drops it, so the `version` string carries it too)."""
    from prefect.client.schemas.objects import VersionInfo

    return VersionInfo(type="retail-etl:build", version=build)


def promoted_build(existing: Any, image: str) -> tuple[str, dict] | None:
    """What of `existing` (a deployment read from the API) to keep: its promotion tag and the
    fields of its build, when promotion gave it a build other than `image`; None otherwise."""
    if existing is None:
        return None
    tag = next((t for t in existing.tags if t.startswith(PROMOTED_FROM_TAG)), None)
    current = (existing.job_variables or {}).get("image")
    if tag is None or not current or current == image:
        return None
    return tag, {
        "image": current,
        "version": existing.version,
        "version_info": existing.version_info or (version_info(existing.version) if existing.version else None),
        "entrypoint": existing.entrypoint,
        "parameter_schema": existing.parameter_openapi_schema,
    }


def promotion_record(existing: Any) -> tuple[list[str], str | None]:
    """A promoted deployment's promotion tags and description, which registration carries over."""
    if existing is None or not any(t.startswith(PROMOTED_FROM_TAG) for t in existing.tags):
        return [], None
    return [t for t in existing.tags if t.startswith(PROMOTION_TAG_PREFIX)], existing.description


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
    build: str | None = None,
    reset_promotions: bool = False,
) -> list[RegisteredDeployment]:
    """Create or update every deployment of `environment` (tagged ``env:<environment>``), labelled
    with `build`; a promoted build is kept unless `reset_promotions` (see the module's docstring)."""
    from prefect.client.orchestration import get_client

    from .parameters import deployment_parameter_schema

    build = build or build_id()
    registered = []
    with get_client(sync_client=True) as client:
        for spec in project.for_environment(environment):
            flow = load_entrypoint(project, spec["entrypoint"])
            variables = deployment_job_variables(spec, job_variables, image)
            pool = work_pool or spec["work_pool"]["name"]
            existing = None if reset_promotions else read_deployment(client, flow.name, spec["name"])
            kept = promoted_build(existing, variables["image"])
            promotion_tags, promoted_description = promotion_record(existing)
            fields: dict[str, Any] = {
                "version": build,
                "version_info": version_info(build),
                "entrypoint": spec["entrypoint"],
                "parameter_schema": deployment_parameter_schema(flow),
            }
            if kept is not None:
                variables["image"] = kept[1].pop("image")
                fields.update(kept[1])
            deployment_id = create_deployment(
                client,
                spec,
                flow_name=flow.name,
                description=promoted_description or spec.get("description") or flow.description or "",
                tags=list(spec.get("tags") or []) + promotion_tags,
                job_variables=variables,
                pull_steps=project.pull_steps(working_directory),
                work_pool=pool,
                **fields,
            )
            registered.append(
                RegisteredDeployment(
                    spec["name"],
                    flow.name,
                    deployment_id,
                    pool,
                    build=fields["version"] or "",
                    image=variables["image"],
                    kept_promotion=kept[0] if kept else None,
                )
            )
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
    build: str | None = None,
    wait_timeout: float = 10.0,
    allowed_namespaces: Collection[str] | None = None,
    reset_promotions: bool = False,
    version: str | None = None,
) -> dict:
    """Everything the registration Job does, in order; returns what it did. Nothing is written
    unless the configured API answers, and with `allowed_namespaces` nothing is registered if a
    deployment's Jobs would run elsewhere. `version` is the former name of `build`."""
    project = Project.load(prefect_file).with_schedule_timezone(schedule_timezone_override())
    specs = project.for_environment(environment)
    if allowed_namespaces:
        check_namespaces(project, environment, allowed_namespaces, job_variables, base_job_template)
    pools = {work_pool or spec["work_pool"]["name"] for spec in specs}
    require_api(wait_timeout)
    with api_connection():
        pool_results = {pool: sync_work_pool(pool, pool_type, base_job_template) for pool in sorted(pools)}
        storage = ensure_result_storage()
        deployments = register_deployments(
            project,
            environment,
            image=image,
            work_pool=work_pool,
            working_directory=working_directory,
            job_variables=job_variables,
            build=build or version,
            reset_promotions=reset_promotions,
        )
    return {"work_pools": pool_results, "result_storage": storage, "deployments": [asdict(d) for d in deployments]}
