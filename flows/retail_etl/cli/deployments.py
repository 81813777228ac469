"""Commands on deployments: `register` an environment, `promote` a tested build, `make-buckets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
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
    source: Annotated[str, typer.Option("--from", help="Environment whose tested build to promote, e.g. dev.")],
    target: Annotated[str, typer.Option("--to", help="Environment to promote it to, e.g. staging.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the source's latest daily run did not complete.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change and change nothing.")] = False,
    prefect_file: Annotated[
        Path, typer.Option(help="prefect.yaml, used to create target deployments that do not exist yet.")
    ] = Path("prefect.yaml"),
) -> None:
    """Give TARGET's deployments SOURCE's image and flow version; TARGET keeps pool, namespace, storage, schedule.

    Reads the source deployments from the Prefect API (PREFECT_API_URL). Refuses unless the
    latest run of daily-sales-etl-SOURCE completed (--force overrides). Records the promotion in
    the target's tags (promoted-from:SOURCE) and description.
    """
    from ..deploy.api import require_api, require_environments
    from ..deploy.promote import promote as promote_build

    require_api()
    require_environments((source, target), prefect_file)
    verdict, changes = promote_build(source, target, force=force, dry_run=dry_run, prefect_file=prefect_file)
    console.print(f"gate: {verdict}")
    table = Table(title=f"promotion {source} -> {target}" + (" (dry run: nothing changed)" if dry_run else ""))
    for column in ("deployment", "action", "field", "before", "after"):
        table.add_column(column)
    for change in changes:
        if not change.fields:
            table.add_row(change.target, change.action, "(no change)", "", "")
        for index, (name, (before, after)) in enumerate(change.fields.items()):
            table.add_row(
                change.target if index == 0 else "", change.action if index == 0 else "", name, str(before), str(after)
            )
    console.print(table)


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
