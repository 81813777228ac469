"""Commands on deployments: `register` an environment, `promote` a tested build, `make-buckets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_settings
from ..errors import ConfigurationError
from .app import command, console


def _json_option(option: str, text: str | None) -> Any:
    """A JSON option value, or a ConfigurationError naming the option."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"{option} is not valid JSON: {error}") from None


@command()
def register(
    environment: Annotated[str, typer.Option(help="Environment whose deployments to register (tag env:<name>).")],
    prefect_file: Annotated[Path, typer.Option(help="The project's prefect.yaml.")] = Path("prefect.yaml"),
    work_pool: Annotated[
        str | None, typer.Option(help="Use this pool for every deployment (default: prefect.yaml's).")
    ] = None,
    pool_type: Annotated[str, typer.Option(help="Work pool type to create: kubernetes, process, ...")] = "kubernetes",
    base_job_template: Annotated[
        Path | None, typer.Option(help="JSON base job template to push into the pool.")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Image reference for the deployments' jobs.")] = None,
    working_directory: Annotated[str | None, typer.Option(help="Override the pull step's working directory.")] = None,
    job_variables: Annotated[
        str | None, typer.Option(help="JSON object merged into every deployment's job variables.")
    ] = None,
    build: Annotated[
        str | None,
        typer.Option(
            "--build", "--version", help="Build id recorded as each deployment's version (default: this image's)."
        ),
    ] = None,
    wait_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the Prefect API to answer (the chart's Job waits longer).")
    ] = 10.0,
    allowed_namespaces: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated namespaces the worker may create Jobs in; a deployment naming another is refused."
        ),
    ] = None,
    reset_promotions: Annotated[
        bool,
        typer.Option("--reset-promotions", help="Replace builds given by `retail-etl promote` (default: keep them)."),
    ] = False,
) -> None:
    """Create or update an environment's work pool, result storage and deployments (the chart's registration Job).

    Needs a running Prefect API (PREFECT_API_URL); never starts a temporary one. A deployment that
    `retail-etl promote` gave another image keeps it unless --reset-promotions.
    """
    from ..deploy.register import register_environment

    template = _json_option("--base-job-template", base_job_template.read_text() if base_job_template else None)
    overrides = _json_option("--job-variables", job_variables)
    result = register_environment(
        environment,
        prefect_file,
        pool_type=pool_type,
        base_job_template=template,
        image=image,
        work_pool=work_pool,
        working_directory=working_directory,
        job_variables=overrides,
        build=build,
        wait_timeout=wait_timeout,
        allowed_namespaces=[name.strip() for name in (allowed_namespaces or "").split(",") if name.strip()],
        reset_promotions=reset_promotions,
    )
    table = Table(title=f"registered environment {environment}")
    table.add_column("what")
    table.add_column("name")
    table.add_column("result")
    for pool, outcome in result["work_pools"].items():
        table.add_row("work pool", pool, outcome)
    table.add_row(
        "result storage",
        result["result_storage"] or "local warehouse: none needed",
        "saved" if result["result_storage"] else "",
    )
    for deployment in result["deployments"]:
        table.add_row(
            "deployment",
            f"{deployment['flow_name']}/{deployment['name']}",
            f"pool {deployment['work_pool']}, build {deployment['build']}",
        )
    console.print(table)
    for deployment in result["deployments"]:
        if deployment["kept_promotion"]:
            console.print(
                f"kept promoted build of {deployment['name']} ({deployment['kept_promotion']}):"
                f" image {deployment['image']}, build {deployment['build']}; --reset-promotions replaces it",
                highlight=False,
                markup=False,
            )


@command("make-buckets")
def make_buckets(
    buckets: Annotated[list[str], typer.Argument(help="Bucket names to create if missing.")],
) -> None:
    """Create S3 buckets on RETAIL_ETL_S3_ENDPOINT_URL (the chart's MinIO bucket Job)."""
    from ..io.storage import make_bucket

    options = load_settings().storage_options()
    for bucket in buckets:
        console.print(f"bucket {bucket}: {'created' if make_bucket(bucket, options) else 'exists'}")


@command()
def promote(
    target: Annotated[str, typer.Option("--to", help="Environment to promote to, e.g. staging.")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="Environment whose tested build to promote, e.g. dev (a rollback finds it)."),
    ] = None,
    build: Annotated[
        str | None,
        typer.Option("--build", help="Roll TARGET back to this earlier promoted build (its promotion record)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote past the gate (recorded as forced: tag and audit record).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change and change nothing.")] = False,
    prefect_file: Annotated[
        Path, typer.Option(help="prefect.yaml: known environments, and target deployments to create.")
    ] = Path("prefect.yaml"),
    values_file: Annotated[
        Path | None,
        typer.Option(help="Helm path: rewrite image.repository/tag/digest in this values file instead of the API."),
    ] = None,
    image_ref: Annotated[
        str | None, typer.Option(help="Image of the build, repository:tag[@digest] (default: the source's image).")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="With --values-file: then run helm upgrade --install for the release.")
    ] = False,
    release: Annotated[str, typer.Option(help="Helm release name (--apply).")] = "retail-etl",
    namespace: Annotated[
        str | None, typer.Option(help="Helm release namespace (--apply; default retail-etl-TARGET).")
    ] = None,
    chart: Annotated[Path, typer.Option(help="The chart to upgrade with (--apply).")] = Path("charts/retail-etl"),
    audit_root: Annotated[
        str | None,
        typer.Option(help="Where promotion records go (default: TARGET's warehouse; records under _promotions/)."),
    ] = None,
) -> None:
    """Promote SOURCE's tested build to TARGET (or roll TARGET back with --build), recorded.

    The gate: SOURCE's latest finished daily-sales-etl run must be Completed on exactly the build
    being promoted (the deployment version). Through the API (default) TARGET's deployments get
    SOURCE's image, version and entrypoint and keep their pool, namespace, storage and schedule; with
    --values-file the Helm values file's image is rewritten and the diff printed (--apply: helm
    upgrade). Every promotion is recorded: tags promoted-from:/build: (and forced-promotion), the
    description, TARGET-warehouse/_promotions/<time>-<build>.json and a Prefect event.
    """
    from ..deploy.api import require_api, require_environments
    from ..deploy.promote import promote as promote_build

    if apply and values_file is None:
        raise ConfigurationError("--apply needs --values-file (the API path applies by itself)")
    require_api()
    require_environments(tuple(env for env in (source, target) if env), prefect_file)
    result = promote_build(
        source,
        target,
        build=build,
        force=force,
        dry_run=dry_run,
        prefect_file=prefect_file,
        values_file=values_file,
        image_ref=image_ref,
        helm_apply=apply,
        release_name=release,
        namespace=namespace,
        chart=chart,
        audit_root_url=audit_root,
        storage_options=load_settings().storage_options(),
    )
    out = Console(soft_wrap=True, highlight=False)
    kind = "rollback" if result.rollback else "promotion"
    out.print(f"gate: {result.gate.verdict}", markup=False)
    out.print(
        f"{kind} {result.source_env} -> {result.target_env}: build {result.previous_build} -> {result.build}"
        f" (image {result.image})"
        + (" [FORCED]" if result.gate.forced else "")
        + (" (dry run: nothing changed)" if dry_run else ""),
        markup=False,
    )
    if result.diff is not None:
        out.print(result.diff or f"{values_file}: already on this image (no change)", markup=False, end="")
        if result.helm_command:
            out.print(("would run: " if dry_run else "ran: ") + " ".join(result.helm_command), markup=False)
    else:
        table = Table(title=f"{kind} {result.source_env} -> {result.target_env}")
        for column in ("deployment", "action", "field", "before", "after"):
            table.add_column(column)
        for change in result.changes:
            if not change.fields:
                table.add_row(change.target, change.action, "(no change)", "", "")
            for index, (name, (before, after)) in enumerate(change.fields.items()):
                table.add_row(
                    change.target if index == 0 else "",
                    change.action if index == 0 else "",
                    name,
                    str(before),
                    str(after),
                )
        console.print(table)
    if result.record_url:
        out.print(f"recorded: {result.record_url}", markup=False)


@command("check-install")
def check_install(
    api: Annotated[
        str | None, typer.Option(envvar="PREFECT_API_URL", help="Prefect API URL whose /health must answer.")
    ] = None,
    work_pool: Annotated[str | None, typer.Option(help="Work pool that must exist (needs --api).")] = None,
    base_job_template: Annotated[
        Path | None, typer.Option(help="JSON base job template the work pool must hold.")
    ] = None,
    bucket: Annotated[
        list[str] | None, typer.Option(help="Bucket that must exist on RETAIL_ETL_S3_ENDPOINT_URL (repeatable).")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Dask scheduler that must answer with at least one worker.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the API and for a Dask worker.")] = 60.0,
) -> None:
    """Check an installed release: API health, work pool and its template, buckets, Dask (the chart's `helm test`)."""
    from ..deploy.checks import check_install as run_checks
    from ..errors import DeploymentError

    if work_pool and not api:
        raise ConfigurationError("--work-pool needs --api (or PREFECT_API_URL)")
    if not (api or bucket or dask_address):
        raise ConfigurationError("nothing to check: give --api, --bucket or --dask-address")
    template = _json_option("--base-job-template", base_job_template.read_text() if base_job_template else None)
    results = run_checks(
        api_url=api,
        work_pool=work_pool,
        base_job_template=template,
        buckets=bucket,
        storage_options=load_settings().storage_options() if bucket else None,
        dask_address=dask_address,
        timeout=timeout,
    )
    for result in results:
        console.print(
            f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}", highlight=False, markup=False
        )
    failed = [result for result in results if not result.ok]
    if failed:
        raise DeploymentError(
            f"{len(failed)} of {len(results)} install checks failed: "
            + "; ".join(f"{result.name}: {result.detail}" for result in failed)
        )
