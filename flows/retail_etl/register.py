"""Registration of one environment: work pool, result storage and deployments.

This is what the Helm chart's registration Job runs on every install and upgrade
(``retail-etl register``), and what the end-to-end tests run against a local
server, so the two cannot drift apart:

1. wait for the Prefect API;
2. create the environment's work pool, or push the chart's base job template into it;
3. save the result-storage block for the environment's warehouse (S3);
4. create or update the environment's deployments from `prefect.yaml`.

>>> resolve_env_templates({"tz": "{{ $RETAIL_ETL_SCHEDULE_TIMEZONE }}"}, {"RETAIL_ETL_SCHEDULE_TIMEZONE": "Europe/Paris"})
{'tz': 'Europe/Paris'}
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .settings import Settings

_ENV_TEMPLATE = re.compile(r"\{\{\s*\$([A-Z0-9_]+)\s*\}\}")


class RegistrationError(RuntimeError):
    """The project file or the environment it names is not usable."""


def resolve_env_templates(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``{{ $NAME }}`` (prefect.yaml's environment syntax) with values from `env`."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                raise RegistrationError(f"prefect.yaml uses {{{{ ${name} }}}} but {name} is not set")
            return env[name]
        return _ENV_TEMPLATE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: resolve_env_templates(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env_templates(item, env) for item in value]
    return value


def template_environment(settings: Settings | None = None) -> dict[str, str]:
    """The process environment, with our settings' defaults for RETAIL_ETL_* names it lacks."""
    settings = settings or Settings()
    defaults = {f"RETAIL_ETL_{name.upper()}": str(value) for name, value in settings.model_dump().items()
                if isinstance(value, (str, int, float)) and not isinstance(value, bool)}
    return {**defaults, **os.environ}


def deep_merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Project:
    """prefect.yaml, with YAML anchors and ``{{ $VAR }}`` templates resolved."""

    path: Path
    data: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | Path, env: Mapping[str, str] | None = None) -> "Project":
        path = Path(path).resolve()
        if not path.is_file():
            raise RegistrationError(f"{path} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        return cls(path=path, data=resolve_env_templates(raw, env if env is not None else template_environment()))

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def deployments(self) -> list[dict]:
        return list(self.data.get("deployments") or [])

    def environments(self) -> list[str]:
        return sorted({tag.split(":", 1)[1] for d in self.deployments for tag in d.get("tags", [])
                       if tag.startswith("env:")})

    def for_environment(self, environment: str) -> list[dict]:
        chosen = [d for d in self.deployments if f"env:{environment}" in d.get("tags", [])]
        if not chosen:
            raise RegistrationError(
                f"no deployment in {self.path.name} is tagged env:{environment}; known: {', '.join(self.environments())}"
            )
        return chosen

    def pull_steps(self, working_directory: str | None = None) -> list[dict]:
        steps = copy.deepcopy(self.data.get("pull") or [])
        if working_directory:
            for step in steps:
                for name, options in step.items():
                    if name.endswith("set_working_directory"):
                        options["directory"] = working_directory
        return steps


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
    raise TimeoutError(f"Prefect API not healthy after {timeout:.0f} s: {last_error}")


def sync_work_pool(name: str, pool_type: str, base_job_template: dict | None = None) -> str:
    """Create the pool, or bring an existing pool's base job template up to date."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=base_job_template or {}))
            return "created"
        if pool.type != pool_type:
            raise RegistrationError(f"work pool {name} is of type {pool.type}, expected {pool_type}")
        if base_job_template and pool.base_job_template != base_job_template:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=base_job_template))
            return "updated"
        return "unchanged"


def _schedules(spec: dict) -> list:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    schedules = []
    for index, entry in enumerate(spec.get("schedules") or []):
        if "cron" not in entry:
            raise RegistrationError(f"deployment {spec['name']}: only cron schedules are supported")
        schedules.append(DeploymentScheduleCreate(
            schedule=CronSchedule(cron=entry["cron"], timezone=entry.get("timezone") or "UTC"),
            active=bool(entry.get("active", True)),
            slug=entry.get("slug") or f"{spec['name']}-{index}",
        ))
    return schedules


def load_entrypoint(project: Project, entrypoint: str):
    """The flow object an entrypoint names, imported the way Prefect's runner will."""
    from prefect.flows import load_flow_from_entrypoint

    path, _, name = entrypoint.partition(":")
    if path.endswith(".py"):  # a file path, relative to prefect.yaml
        return load_flow_from_entrypoint(f"{project.root / path}:{name}")
    return load_flow_from_entrypoint(entrypoint)  # a module path, e.g. retail_etl.flows:daily_sales_etl


@dataclass
class RegisteredDeployment:
    name: str
    flow_name: str
    deployment_id: str
    work_pool: str


def register_deployments(project: Project, environment: str, image: str | None = None,
                         work_pool: str | None = None, working_directory: str | None = None,
                         job_variables: Mapping | None = None, version: str | None = None) -> list[RegisteredDeployment]:
    """Create or update every deployment of `environment` (tagged ``env:<environment>``)."""
    from prefect.client.orchestration import get_client
    from prefect.utilities.callables import parameter_schema

    registered = []
    with get_client(sync_client=True) as client:
        for spec in project.for_environment(environment):
            flow = load_entrypoint(project, spec["entrypoint"])
            variables = deep_merge(spec.get("work_pool", {}).get("job_variables") or {}, job_variables or {})
            if image:
                variables["image"] = image
            pool = work_pool or spec["work_pool"]["name"]
            deployment_id = client.create_deployment(
                flow_id=client.create_flow_from_name(flow.name),
                name=spec["name"],
                version=version or spec.get("version") or __version__,
                description=spec.get("description") or flow.description,
                tags=list(spec.get("tags") or []),
                entrypoint=spec["entrypoint"],
                parameters=dict(spec.get("parameters") or {}),
                parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(),
                enforce_parameter_schema=True,
                work_pool_name=pool,
                work_queue_name=spec.get("work_pool", {}).get("work_queue_name"),
                job_variables=variables,
                pull_steps=project.pull_steps(working_directory),
                schedules=_schedules(spec),
                concurrency_limit=spec.get("concurrency_limit"),
            )
            registered.append(RegisteredDeployment(spec["name"], flow.name, str(deployment_id), pool))
    return registered


def ensure_result_storage(settings: Settings | None = None) -> str | None:
    """Save the S3 result-storage block for the environment's warehouse; None for a local warehouse."""
    from .storage import is_remote, normalize
    from .tasks import result_storage

    settings = settings or Settings()
    warehouse = normalize(settings.warehouse)
    if not is_remote(warehouse):
        return None
    block = result_storage(warehouse, settings)
    return f"remote-file-system/{block._block_document_name}"


def register_environment(environment: str, prefect_file: str | Path, *, pool_type: str = "kubernetes",
                         base_job_template: dict | None = None, image: str | None = None,
                         work_pool: str | None = None, working_directory: str | None = None,
                         job_variables: Mapping | None = None, version: str | None = None,
                         wait_timeout: float = 300.0) -> dict:
    """Everything the registration Job does, in order; returns what it did."""
    project = Project.load(prefect_file)
    specs = project.for_environment(environment)
    pools = {work_pool or spec["work_pool"]["name"] for spec in specs}
    wait_for_api(wait_timeout)
    pool_results = {pool: sync_work_pool(pool, pool_type, base_job_template) for pool in sorted(pools)}
    storage = ensure_result_storage()
    deployments = register_deployments(project, environment, image=image, work_pool=work_pool,
                                       working_directory=working_directory, job_variables=job_variables,
                                       version=version)
    return {"work_pools": pool_results, "result_storage": storage,
            "deployments": [d.__dict__ for d in deployments]}
