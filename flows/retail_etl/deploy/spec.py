"""One deployment written to the Prefect API, the same way by registration and promotion.

>>> [s.schedule.cron for s in schedules({"name": "d", "schedules": [{"cron": "0 6 * * *"}]})]
['0 6 * * *']
"""

from __future__ import annotations

from typing import Any

from ..errors import RegistrationError


def schedules(spec: dict) -> list:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    created = []
    for index, entry in enumerate(spec.get("schedules") or []):
        if "cron" not in entry:
            raise RegistrationError(f"deployment {spec['name']}: only cron schedules are supported")
        created.append(
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron=entry["cron"], timezone=entry.get("timezone") or "UTC"),
                active=bool(entry.get("active", True)),
                slug=entry.get("slug") or f"{spec['name']}-{index}",
            )
        )
    return created


def read_deployment(client: Any, flow_name: str, name: str) -> Any:
    """The deployment `flow_name/name`, or None when there is none yet."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{flow_name}/{name}")
    except ObjectNotFound:
        return None


def create_deployment(
    client: Any,
    spec: dict,
    *,
    flow_name: str,
    version: str,
    description: str,
    tags: list[str],
    entrypoint: str,
    parameter_schema: dict,
    job_variables: dict,
    pull_steps: list[dict],
    work_pool: str | None = None,
    version_info: Any = None,
) -> str:
    """Create or update the deployment `spec` describes (prefect.yaml's entry); returns its id.

    Registration passes the entry's own entrypoint and the build it registers (`version`, and
    `version_info`: a prefect VersionInfo); promotion passes the source environment's, and keeps
    the rest (pool, queue, parameters, schedule) of `spec`.
    """
    pool = spec.get("work_pool") or {}
    deployment_id = client.create_deployment(
        flow_id=client.create_flow_from_name(flow_name),
        name=spec["name"],
        version=version,
        version_info=version_info,
        description=description,
        tags=tags,
        entrypoint=entrypoint,
        parameters=dict(spec.get("parameters") or {}),
        parameter_openapi_schema=parameter_schema,
        enforce_parameter_schema=True,
        work_pool_name=work_pool or pool["name"],
        work_queue_name=pool.get("work_queue_name"),
        job_variables=job_variables,
        pull_steps=pull_steps,
        schedules=schedules(spec),
        concurrency_limit=spec.get("concurrency_limit"),
    )
    return str(deployment_id)
