"""Promotion of a tested build from one environment to the next, and rollback to an earlier one.

A build is the deployment `version` registration sets (the image's build id). `promote("dev",
"staging")` checks the gate, then either writes staging's deployments through the API (process
pools, the laptop: staging gets dev's image, version and entrypoint and keeps its own pool,
namespace, settings, pull steps and schedule) or, given staging's Helm values file, rewrites the
image there (the Helm/GitOps path: the release image moves worker, Dask and flow-run Jobs together).

The gate: the source's latest *finished* run of the daily deployment must be Completed on exactly
the build being promoted (its `deployment_version`); runs that failed parameter validation never
count. Other families (backfill) ride with the daily one: they must be on the same build, and if
their own latest finished run is of that build it must be Completed too. A rollback
(`build="..."`) needs a Completed daily run of that build in the source environment.

Every promotion is recorded before anything changes: tags and description on the target
deployments, one JSON record under the target's warehouse and an event (see `audit`).

>>> family("daily-sales-etl-dev", "dev")
'daily-sales-etl'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import GateRefused, PromotionRefused, RegistrationError, UnknownBuild, ValuesFileError
from . import audit, values
from .project import Project
from .spec import create_deployment, read_deployment

GATE_FAMILY = "daily-sales-etl"
PROMOTED_TAG = "promoted-from:"
BUILD_TAG = "build:"
FORCED_TAG = "forced-promotion"
ROLLBACK_TAG = "rollback"
#: What Prefect's flow engine writes into the Failed state of a run whose parameters do not validate.
INVALID_PARAMETERS = ("Validation of flow parameters failed", "ParameterBindError", "SignatureMismatchError")


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


@dataclass
class Gate:
    """The gate's verdict on one build."""

    build: str
    verdict: str
    run_id: str | None = None
    state: str | None = None
    forced: bool = False


@dataclass
class Promotion:
    """What `promote` did (or, dry, would do)."""

    gate: Gate
    source_env: str
    target_env: str
    build: str
    previous_build: str | None
    image: str | None
    changes: list[Change] = field(default_factory=list)
    record_url: str | None = None
    diff: str | None = None
    helm_command: list[str] | None = None
    rollback: bool = False
    after_text: str | None = field(default=None, repr=False)  # the rewritten values file


def _image(deployment) -> str | None:
    return (deployment.job_variables or {}).get("image")


def invalid_parameters(run) -> bool:
    """Whether `run` ended because its parameters did not validate (it never started its work)."""
    message = (run.state.message or "") if run.state else ""
    return any(marker in message for marker in INVALID_PARAMETERS)


def finished_runs(client, deployment_id, page: int = 50) -> Iterator[Any]:
    """The deployment's finished runs (Completed, Failed, Crashed, Cancelled), latest end first."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    offset = 0
    while True:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=finished))),
            sort=FlowRunSort.END_TIME_DESC,
            limit=page,
            offset=offset,
        )
        yield from runs
        if len(runs) < page:
            return
        offset += page


def latest_run(client, deployment_id, build: str | None = None):
    """The latest finished run that counts (valid parameters), of `build` if given."""
    for run in finished_runs(client, deployment_id):
        if invalid_parameters(run) or (build is not None and run.deployment_version != build):
            continue
        return run
    return None


def _state(run) -> str:
    return run.state.name if run.state else "unknown"


def gate_deployment(client, deployment, build: str, *, required: bool, pinned: bool):
    """The run that lets `deployment` pass the gate for `build` (None when not required and
    without evidence); GateRefused otherwise, naming the run, its build and `build`."""
    name = deployment.name
    run = latest_run(client, deployment.id, build if pinned else None)
    if run is None:
        if not required:
            return None
        what = f"no finished run of build {build}" if pinned else "never finished a run"
        raise GateRefused(f"{name} has {what}", f"run it on build {build} first, or use --force")
    if run.deployment_version != build:
        if not required:
            return None
        raise GateRefused(
            f"the latest finished run of {name}, {run.name} ({run.id}), ran build {run.deployment_version},"
            f" not build {build} to be promoted",
            f"run {name} on build {build} first, or use --force",
        )
    if not run.state or not run.state.is_completed():
        raise GateRefused(
            f"the latest finished run of {name} on build {build}, {run.name} ({run.id}), is {_state(run)},"
            " not Completed",
            "fix it and run again, or use --force",
        )
    return run


def source_deployments(client, environment: str) -> dict[str, Any]:
    """family -> deployment of `environment` (tag env:<environment>)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    found = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[f"env:{environment}"])), limit=200
    )
    return {family(d.name, environment): d for d in found}


def check_gate(client, source_env: str, sources: dict[str, Any], build: str | None = None) -> Gate:
    """The gate for `build` (default: the build the source's daily deployment is on now)."""
    daily = sources.get(GATE_FAMILY)
    if daily is None:
        raise PromotionRefused(f"no deployment {GATE_FAMILY}-{source_env} to promote from")
    pinned = build is not None and build != daily.version
    build = build or daily.version or "unknown"
    if not pinned:
        for deployment in sorted(sources.values(), key=lambda d: d.name):
            if deployment.version != build:
                raise GateRefused(
                    f"{deployment.name} is on build {deployment.version}, {daily.name} on build {build}",
                    f"register {source_env} with one build before promoting, or use --force",
                )
    run = gate_deployment(client, daily, build, required=True, pinned=pinned)
    if not pinned:
        for name, deployment in sorted(sources.items()):
            if name != GATE_FAMILY:
                gate_deployment(client, deployment, build, required=False, pinned=False)
    return Gate(
        build=build,
        verdict=f"passed: {run.name} ({run.id}) of {daily.name} Completed on build {build}",
        run_id=str(run.id),
        state=_state(run),
    )


def live_release(client, sources: dict[str, Any]) -> dict[str, dict]:
    """What the source deployments run now, per family."""
    release = {}
    for name, source in sources.items():
        release[name] = {
            "flow_name": client.read_flow(source.flow_id).name,
            "image": _image(source),
            "entrypoint": source.entrypoint,
            "version": source.version,
            "parameter_openapi_schema": source.parameter_openapi_schema,
        }
    return release


def recorded_release(records: list[dict], build: str, target_env: str) -> tuple[str, dict[str, dict]]:
    """(source environment, release) of the latest recorded promotion of `build`; UnknownBuild if none."""
    for record in reversed(records):
        if record.get("build") == build and record.get("deployments"):
            release = {name: {**entry, "version": build} for name, entry in record["deployments"].items()}
            return record["source_env"], release
    known = sorted({str(record["build"]) for record in records if record.get("build")})
    raise UnknownBuild(
        f"build {build} was never promoted to {target_env}; recorded builds: {', '.join(known) or 'none'}"
    )


def _spec_from_project(project: Project | None, environment: str, name: str) -> dict:
    if project is None:
        raise PromotionRefused(f"{name} does not exist yet and no prefect.yaml was given to create it from")
    for spec in project.for_environment(environment):
        if spec["name"] == name:
            return spec
    raise PromotionRefused(f"{name} is not defined in {project.path}")


def _promotion_tags(tags, source_env: str, build: str, forced: bool, rollback: bool) -> list[str]:
    ours = (PROMOTED_TAG, BUILD_TAG)
    kept = [t for t in tags or [] if not t.startswith(ours) and t not in (FORCED_TAG, ROLLBACK_TAG)]
    return (
        kept
        + [f"{PROMOTED_TAG}{source_env}", f"{BUILD_TAG}{build}"]
        + ([FORCED_TAG] if forced else [])
        + ([ROLLBACK_TAG] if rollback else [])
    )


def plan(
    client,
    source_env: str,
    target_env: str,
    release: dict[str, dict],
    project: Project | None,
    gate: Gate,
    rollback: bool = False,
) -> tuple[list[Change], list[dict]]:
    """The changes promotion makes, and the full target deployments to write."""
    changes, writes = [], []
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    how = "FORCED past the gate" if gate.forced else f"gate run {gate.run_id}"
    for name, source in sorted(release.items()):
        target_name = f"{name}-{target_env}"
        target = read_deployment(client, source["flow_name"], target_name)
        note = (
            f"{'Rolled back' if rollback else 'Promoted'} from {source_env}: build {source['version']},"
            f" image {source['image']}, {how}, on {stamp}."
        )
        schema = source.get("parameter_openapi_schema")
        if target is not None:
            current = {"image": _image(target), "version": target.version, "entrypoint": target.entrypoint}
            base = (target.description or "").split(" Promoted from ")[0].split(" Rolled back from ")[0].rstrip()
            write = {
                "action": "update",
                "id": target.id,
                "job_variables": {**(target.job_variables or {}), "image": source["image"]},
                "parameter_openapi_schema": schema or target.parameter_openapi_schema,
                "tags": _promotion_tags(target.tags, source_env, source["version"], gate.forced, rollback),
                "description": f"{base} {note}".strip(),
            }
        else:
            spec = _spec_from_project(project, target_env, target_name)
            current = {"image": None, "version": None, "entrypoint": None}
            write = {
                "action": "create",
                "spec": spec,
                "flow_name": source["flow_name"],
                "job_variables": {**(spec.get("work_pool", {}).get("job_variables") or {}), "image": source["image"]},
                "parameter_openapi_schema": schema,
                "tags": _promotion_tags(spec.get("tags"), source_env, source["version"], gate.forced, rollback),
                "description": f"{spec.get('description', '')} {note}".strip(),
            }
        write.update(version=source["version"], entrypoint=source["entrypoint"])
        after = {"image": source["image"], "version": source["version"], "entrypoint": source["entrypoint"]}
        fields = {key: (current[key], after[key]) for key in after if current[key] != after[key]}
        changes.append(Change(target=target_name, action=write["action"], fields=fields))
        writes.append(write)
    return changes, writes


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


def _warehouse(deployment=None, spec: dict | None = None) -> str | None:
    variables = (deployment.job_variables if deployment is not None else None) or (
        (spec or {}).get("work_pool", {}).get("job_variables") or {}
    )
    return (variables.get("env") or {}).get("RETAIL_ETL_WAREHOUSE")


def audit_root(
    target_daily, project: Project | None, target_env: str, values_file: Path | None, override: str | None
) -> str:
    """Where the target's promotion records live: its warehouse (deployment, prefect.yaml or values file)."""
    if override:
        return override
    found = _warehouse(target_daily) if target_daily is not None else None
    if not found and project is not None and target_env in project.environments():
        specs = [s for s in project.for_environment(target_env) if s["name"] == f"{GATE_FAMILY}-{target_env}"]
        found = _warehouse(spec=specs[0]) if specs else None
    if not found and values_file is not None and values_file.is_file():
        import yaml

        found = ((yaml.safe_load(values_file.read_text()) or {}).get("etl") or {}).get("warehouse")
    if not found:
        raise PromotionRefused(f"no warehouse known for {target_env} to record the promotion in: give --audit-root")
    return str(found)


def _load_project(prefect_file: str | Path | None) -> Project | None:
    if prefect_file and Path(prefect_file).exists():
        try:
            return Project.load(prefect_file)
        except RegistrationError:
            return None
    return None


def _check_environments(project: Project | None, *environments: str | None) -> None:
    if project is None:
        return
    known = project.environments()
    for environment in environments:
        if environment is not None and environment not in known:
            raise PromotionRefused(
                f"unknown environment {environment}: known ones are {', '.join(known)} (tags env:<name> in"
                f" {project.path.name})"
            )


def promote(
    source_env: str | None,
    target_env: str,
    *,
    build: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    prefect_file: str | Path | None = None,
    values_file: str | Path | None = None,
    image_ref: str | None = None,
    helm_apply: bool = False,
    release_name: str = "retail-etl",
    namespace: str | None = None,
    chart: str | Path = "charts/retail-etl",
    audit_root_url: str | None = None,
    storage_options: dict | None = None,
) -> Promotion:
    """Promote `source_env`'s build (or `build`, a rollback) to `target_env`, recorded; see the module."""
    from prefect.client.orchestration import get_client

    if source_env == target_env:
        raise PromotionRefused("--from and --to name the same environment")
    if source_env is None and build is None:
        raise PromotionRefused("--from is required unless --build names an earlier promotion to roll back to")
    project = _load_project(prefect_file)
    _check_environments(project, source_env, target_env)
    values_path = Path(values_file) if values_file is not None else None
    if values_path is not None and not values_path.is_file():
        raise ValuesFileError(f"values file {values_path} does not exist")
    with get_client(sync_client=True) as client:
        targets = source_deployments(client, target_env)
        target_daily = targets.get(GATE_FAMILY)
        previous = target_daily.version if target_daily is not None else None
        root = audit_root(target_daily, project, target_env, values_path, audit_root_url)
        records: list[dict] = []
        recorded_source = None
        if build is not None:
            records = audit.read_records(root, storage_options)
            matching = [r for r in records if r.get("build") == build and (source_env in (None, r.get("source_env")))]
            recorded_source = matching[-1]["source_env"] if matching else None
        source_env = source_env or recorded_source
        if source_env is None:  # no --from, and no record of the build to say where it came from
            recorded_release(records, str(build), target_env)  # raises UnknownBuild
            raise UnknownBuild(f"build {build} was never promoted to {target_env}")
        if source_env == target_env:
            raise PromotionRefused("--from and --to name the same environment")
        sources = source_deployments(client, source_env)
        if not sources:
            raise PromotionRefused(f"no deployments tagged env:{source_env}")
        try:
            gate = check_gate(client, source_env, sources, build)
        except GateRefused as refusal:
            if not force:
                raise
            daily = sources.get(GATE_FAMILY)
            gate = Gate(
                build=build or (daily.version if daily is not None else None) or "unknown",
                verdict=f"FORCED past the gate: {refusal.reason}",
                forced=True,
            )
        daily_now = sources.get(GATE_FAMILY)
        rollback = build is not None and (daily_now is None or build != daily_now.version)
        if rollback:
            _, release = recorded_release(records, gate.build, target_env)
        else:
            release = live_release(client, sources)
        image = image_ref or (release.get(GATE_FAMILY) or {}).get("image")
        result = Promotion(gate, source_env, target_env, gate.build, previous, image, rollback=rollback)
        record = audit.PromotionRecord(
            source_env=source_env,
            target_env=target_env,
            build=gate.build,
            previous_build=previous,
            image=image,
            gate_run_id=gate.run_id,
            gate_state=gate.state,
            forced=gate.forced,
            kind="api",
            rollback=rollback,
            deployments={
                name: {key: entry[key] for key in ("flow_name", "image", "entrypoint")}
                for name, entry in release.items()
            },
        )
        if values_path is not None:
            _promote_values(result, record, values_path, image, helm_apply, release_name, namespace, chart)
            if not dry_run:
                record.kind = "values-file+helm" if helm_apply else "values-file"
                result.record_url = audit.write_record(root, record, storage_options)
                values_path.write_text(result.after_text or "")
                if helm_apply and result.helm_command:
                    values.run_helm(result.helm_command)
                _emit(record)
            return result
        changes, writes = plan(client, source_env, target_env, release, project, gate, rollback)
        result.changes = changes
        if not dry_run:
            result.record_url = audit.write_record(root, record, storage_options)
            apply(client, writes, project)
            _emit(record)
    return result


def _promote_values(
    result: Promotion,
    record: audit.PromotionRecord,
    path: Path,
    image: str | None,
    helm_apply: bool,
    release_name: str,
    namespace: str | None,
    chart: str | Path,
) -> None:
    if not image:
        raise ValuesFileError(f"no image known for build {result.build}: give --image-ref repository:tag@digest")
    before = path.read_text()
    after = values.rewrite_image(before, values.parse_image_ref(image))
    result.diff = values.unified_diff(before, after, path)
    result.after_text = after
    if helm_apply:
        result.helm_command = values.helm_command(
            release_name, chart, namespace or f"retail-etl-{result.target_env}", path
        )


def _emit(record: audit.PromotionRecord) -> None:
    try:
        audit.emit(record)
    except Exception:  # the event feed is a convenience; the warehouse record is the durable one
        return
