"""Promotion of a tested build from one environment to the next.

`promote("dev", "staging")` reads dev's deployments from the Prefect API and
gives staging's the same image reference, flow version and entrypoint, while
staging keeps its own work pool, namespace, environment settings, pull steps and
schedule. It refuses when dev's daily deployment's latest run did not complete
(unless forced), and records where the build came from in a tag and the
description, so the UI shows it.

>>> family("daily-sales-etl-dev", "dev")
'daily-sales-etl'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import PromotionRefused, RegistrationError
from .project import Project
from .spec import create_deployment

GATE_FAMILY = "daily-sales-etl"
PROMOTED_TAG = "promoted-from:"


def family(deployment_name: str, environment: str) -> str:
    suffix = f"-{environment}"
    if not deployment_name.endswith(suffix):
        raise PromotionRefused(f"deployment {deployment_name} does not end with -{environment}")
    return deployment_name[: -len(suffix)]


@dataclass
class Change:
    """What promotion does to one target deployment."""

    target: str
    action: str  # "update" or "create"
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (before, after)


def _image(deployment) -> str | None:
    return (deployment.job_variables or {}).get("image")


def _latest_finished_run(client, deployment_id):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


def check_gate(client, source_env: str) -> str:
    """The latest run of the source's daily deployment must be Completed; returns its summary."""
    from prefect.exceptions import ObjectNotFound

    name = f"{GATE_FAMILY}/{GATE_FAMILY}-{source_env}"
    try:
        gate = client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise PromotionRefused(f"no deployment {name} to promote from") from None
    run = _latest_finished_run(client, gate.id)
    if run is None:
        raise PromotionRefused(f"{name} has never run", "run it first or use --force")
    if not run.state or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        raise PromotionRefused(
            f"the latest run of {name} ({run.name}, {run.id}) is {state}, not Completed", "fix it or use --force"
        )
    return f"run {run.name} ({run.id}) Completed"


def plan(client, source_env: str, target_env: str, project: Project | None) -> tuple[list[Change], list[dict]]:
    """The changes promotion makes, and the full target deployments to write."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    sources = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[f"env:{source_env}"])), limit=200
    )
    if not sources:
        raise PromotionRefused(f"no deployments tagged env:{source_env}")
    changes, writes = [], []
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for source in sorted(sources, key=lambda d: d.name):
        base = family(source.name, source_env)
        target_name = f"{base}-{target_env}"
        flow = client.read_flow(source.flow_id)
        target = _read_target(client, flow.name, target_name)
        note = (
            f"Promoted from {source_env} ({source.name}, version {source.version}, image {_image(source)}) on {stamp}."
        )
        if target is not None:
            current = {"image": _image(target), "version": target.version, "entrypoint": target.entrypoint}
            job_variables = {**(target.job_variables or {}), "image": _image(source)}
            tags = [t for t in target.tags if not t.startswith(PROMOTED_TAG)] + [f"{PROMOTED_TAG}{source_env}"]
            description = f"{(target.description or '').split(' Promoted from ')[0].rstrip()} {note}".strip()
            write = {
                "action": "update",
                "id": target.id,
                "job_variables": job_variables,
                "version": source.version,
                "entrypoint": source.entrypoint,
                "parameter_openapi_schema": source.parameter_openapi_schema,
                "tags": tags,
                "description": description,
            }
        else:
            spec = _spec_from_project(project, target_env, target_name)
            current = {"image": None, "version": None, "entrypoint": None}
            job_variables = {**(spec.get("work_pool", {}).get("job_variables") or {}), "image": _image(source)}
            write = {
                "action": "create",
                "spec": spec,
                "flow_name": flow.name,
                "job_variables": job_variables,
                "version": source.version,
                "entrypoint": source.entrypoint,
                "parameter_openapi_schema": source.parameter_openapi_schema,
                "tags": list(spec.get("tags") or []) + [f"{PROMOTED_TAG}{source_env}"],
                "description": f"{spec.get('description', '')} {note}".strip(),
            }
        after = {"image": _image(source), "version": source.version, "entrypoint": source.entrypoint}
        fields = {key: (current[key], after[key]) for key in after if current[key] != after[key]}
        changes.append(Change(target=target_name, action=write["action"], fields=fields))
        writes.append(write)
    return changes, writes


def _read_target(client, flow_name: str, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{flow_name}/{name}")
    except ObjectNotFound:
        return None


def _spec_from_project(project: Project | None, environment: str, name: str) -> dict:
    if project is None:
        raise PromotionRefused(f"{name} does not exist yet and no prefect.yaml was given to create it from")
    for spec in project.for_environment(environment):
        if spec["name"] == name:
            return spec
    raise PromotionRefused(f"{name} is not defined in {project.path}")


def apply(client, writes: list[dict], project: Project | None) -> None:
    from prefect.client.schemas.actions import DeploymentUpdate

    for write in writes:
        if write["action"] == "update":
            client.update_deployment(
                write["id"],
                DeploymentUpdate(
                    job_variables=write["job_variables"],
                    version=write["version"],
                    entrypoint=write["entrypoint"],
                    parameter_openapi_schema=write["parameter_openapi_schema"],
                    tags=write["tags"],
                    description=write["description"],
                ),
            )
            continue
        if project is None:  # plan() creates only from a project
            raise PromotionRefused(f"{write['spec']['name']} cannot be created without prefect.yaml")
        create_deployment(
            client,
            write["spec"],
            flow_name=write["flow_name"],
            version=write["version"],
            description=write["description"],
            tags=write["tags"],
            entrypoint=write["entrypoint"],
            parameter_schema=write["parameter_openapi_schema"],
            job_variables=write["job_variables"],
            pull_steps=project.pull_steps(),
        )


def promote(
    source_env: str,
    target_env: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    prefect_file: str | Path | None = None,
) -> tuple[str, list[Change]]:
    """Promote every deployment of `source_env` to `target_env`; returns (gate verdict, changes)."""
    from prefect.client.orchestration import get_client

    if source_env == target_env:
        raise PromotionRefused("--from and --to name the same environment")
    project = None
    if prefect_file and Path(prefect_file).exists():
        try:
            project = Project.load(prefect_file)
        except RegistrationError:
            project = None
    with get_client(sync_client=True) as client:
        try:
            verdict = check_gate(client, source_env)
        except PromotionRefused as refusal:
            if not force:
                raise
            verdict = f"gate skipped with --force: {refusal.reason}"
        changes, writes = plan(client, source_env, target_env, project)
        if not dry_run:
            apply(client, writes, project)
    return verdict, changes
