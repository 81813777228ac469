"""The Prefect flows: one sale date (`daily_sales_etl`) and a date range (`backfill`).

Run one day against a temporary local API and Dask cluster::

    from prefect_dask import DaskTaskRunner
    from retail_etl.config import load_settings
    from retail_etl.orchestration.flows import daily_sales_etl
    from retail_etl.orchestration.platform import platform

    with platform(load_settings()) as (_, address):
        daily = daily_sales_etl.with_options(task_runner=DaskTaskRunner(address=address))
        daily(run_date="2024-01-15", landing="./landing", warehouse="./warehouse")

Settings are read once, when a flow starts; the rules a deployment may want to vary
(regions, maxima) are parameters whose defaults come from those settings.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import unmapped
from prefect_dask import DaskTaskRunner
from pydantic import Field

from .. import __version__
from ..build import build_id
from ..config import Settings, load_settings, split_regions
from ..contract.manifest import Manifest
from ..core.accounting import build_manifest, reason_counts
from ..core.aggregate import mart_frame, region_summaries
from ..core.checks import Rules
from ..core.dates import date_range, default_run_date  # noqa: F401 (re-exported for callers)
from ..core.parse import ParseLimits
from ..core.planning import plan_batches, plan_buckets
from ..errors import BackfillError, EmptyLandingError, StrictModeError
from ..io.housekeeping import due, remove_stale_scratch, summary, vacuum_warehouse
from ..io.publish import DayPublication
from ..io.storage import normalize
from .concurrent import as_finished
from .exclusive import exclusive_day
from .naming import artifact_key, backfill_run_name, daily_run_name, label_run, resolve_run_date
from .platform import SettingsDaskTaskRunner, runner_at, settings_runner
from .results import ExtractionCache, result_storage
from .same_build import check_same_build
from .tasks import (
    io_options,
    list_landing_files,
    publish_day,
    transform_bucket,
    validate_files,
)

#: How often a warehouse is housekept: the first run of a day published after this long does it.
HOUSEKEEPING_EVERY = timedelta(days=1)


def rules_for(
    run_date: date,
    settings: Settings,
    regions: list[str] | None = None,
    max_quantity: int | None = None,
    max_unit_price: float | None = None,
) -> Rules:
    """The day's rules: explicit values first, the settings' defaults otherwise."""
    allowed = split_regions(regions) if regions is not None else settings.regions
    return Rules(
        run_date=run_date,
        max_quantity=settings.max_quantity if max_quantity is None else max_quantity,
        max_unit_price=settings.max_unit_price if max_unit_price is None else max_unit_price,
        regions=frozenset(allowed) if allowed else None,
    )


def _quarantine_markdown(manifest: Manifest) -> str:
    lines = [
        f"# Quarantine for {manifest.sale_date} in {manifest.environment}",
        "",
        f"Build `{manifest.build}`, run `{manifest.run_id}`.",
        "",
        f"{manifest.rows_quarantined} of {manifest.rows_in} rows quarantined.",
        "",
        "| reason | rows |",
        "|---|---:|",
    ]
    lines += [f"| {reason} | {count} |" for reason, count in manifest.quarantine_reasons.items()]
    if manifest.files_rejected:
        lines += ["", "## Rejected files", "", "| file | reason | detail |", "|---|---|---|"]
        lines += [f"| {f.file} | {f.reason} | {f.detail} |" for f in manifest.files_rejected]
    return "\n".join(lines)


@flow(name="daily-sales-etl", task_runner=settings_runner(), validate_parameters=True, flow_run_name=daily_run_name)
def daily_sales_etl(
    run_date: date | None = None,
    landing: str | None = None,
    warehouse: str | None = None,
    strict: bool = False,
    allow_empty: bool = False,
    regions: list[str] | None = None,
    max_quantity: int | None = None,
    max_unit_price: float | None = None,
) -> Manifest:
    """Validate, enrich, aggregate and publish one sale date; returns the day's manifest.

    `run_date` defaults to the day before the scheduled time; `landing`, `warehouse`,
    `regions` and the maxima default to their RETAIL_ETL_* settings. With `strict`, a
    landing file that cannot be read fails the day instead of being quarantined. A day
    with no landing file fails (the published day stays) unless `allow_empty`, which
    publishes an empty day.

    The work runs on Dask in two coarse stages that pass paths and small summaries,
    never data: validate-files (per batch of landing files: cached extraction, field
    checks, rows staged in transaction_id buckets) and transform-bucket (per bucket:
    the day-wide duplicate check, enrichment, curated rows written per region, and
    their per-region totals). The flow adds the totals up into the mart, and
    publish-day commits the day.
    """
    settings = load_settings()
    logger = get_run_logger()
    run_date = resolve_run_date(run_date, flow_run.scheduled_start_time, settings)
    sale_date = run_date.isoformat()
    environment, build = settings.environment, build_id()
    landing = normalize(landing or settings.landing)
    warehouse = normalize(warehouse or settings.warehouse)
    options = settings.storage_options()
    run_id = str(flow_run.id)
    rules = rules_for(run_date, settings, regions, max_quantity, max_unit_price)
    logger.info(
        "processing %s from %s into %s (environment %s, build %s)", sale_date, landing, warehouse, environment, build
    )
    label_run(run_id, environment, sale_date, build, logger)
    context = FlowRunContext.get()
    if context is not None and isinstance(context.task_runner, DaskTaskRunner):
        check_same_build(context.task_runner.client, build)

    retries = io_options(settings.io_retries, settings.retry_delay_seconds, settings.retry_jitter_factor)
    io = retries | {"result_storage": result_storage(warehouse, options)}
    day = DayPublication(warehouse, options, sale_date, run_id)
    with exclusive_day(warehouse, options, sale_date, run_id, settings.day_wait_seconds, settings.day_lease_seconds):
        try:
            removed = remove_stale_scratch(warehouse, options, settings.scratch_retention, keep=run_id)
            if removed.paths:
                logger.info("removed scratch of %d earlier run(s)", len(removed.paths))
        except Exception as error:  # housekeeping never decides a day's outcome
            logger.warning("could not remove old scratch (a later run will): %s", error)
        try:
            manifest, mart = _publish(day, landing, io, settings, rules, strict, allow_empty, build, logger)
        finally:
            _remove_scratch(day, logger)

    # One key per environment (its history is the days): the UI never shows another environment's day.
    create_table_artifact(
        key=artifact_key("retail-etl-region-figures", environment),
        table=[{str(key): value for key, value in row.items()} for row in mart.to_dict("records")],
        description=f"Per-region figures for {sale_date} in {environment} ({manifest.rows_published} rows "
        f"published, build {build})",
    )
    create_markdown_artifact(
        key=artifact_key("retail-etl-quarantine", environment),
        markdown=_quarantine_markdown(manifest),
        description=f"Quarantine summary for {sale_date} in {environment} (build {build})",
    )
    _housekeeping(warehouse, options, settings, environment, logger)
    return manifest


def _remove_scratch(day: DayPublication, logger: Any) -> None:
    """Drop the run's scratch; if the store refuses, the next run's clean-up gets it (the day's
    outcome does not depend on it)."""
    try:
        day.cleanup()
    except Exception as error:
        logger.warning("could not remove scratch %s (a later run will): %s", day.scratch, error)


def _housekeeping(warehouse: str, options: dict[str, Any], settings: Settings, environment: str, logger: Any) -> None:
    """Once a day per warehouse, after a day is published: what `retail-etl vacuum` does, reported
    in the log and as an artifact. A failure here is only logged: the day is already published."""
    try:
        if not due(warehouse, options, HOUSEKEEPING_EVERY):
            return
        report = vacuum_warehouse(
            warehouse, options, settings.vacuum_retention, settings.scratch_retention, settings.cache_expiration
        )
        logger.info("housekeeping of %s: %s", warehouse, summary(report))
        rows = "\n".join(
            f"| {kind} | {len(sweep.paths):,} | {sweep.bytes / 2**20:,.1f} |" for kind, sweep in report.items()
        )
        create_markdown_artifact(
            key=artifact_key("retail-etl-housekeeping", environment),
            markdown=f"# Housekeeping of {warehouse}\n\n| removed | count | MiB |\n|---|---:|---:|\n{rows}\n",
            description=f"Housekeeping in {environment}: {summary(report)}",
        )
    except Exception as error:  # never fail a published day for its housekeeping
        logger.warning("housekeeping of %s failed (the day is published): %s", warehouse, error)


def _publish(
    day: DayPublication,
    landing: str,
    io: dict[str, Any],
    settings: Settings,
    rules: Rules,
    strict: bool,
    allow_empty: bool,
    build: str,
    logger: Any,
) -> tuple[Manifest, pd.DataFrame]:
    """The day's work while it holds its slot: validate, de-duplicate, aggregate, commit."""
    warehouse, options, sale_date, run_id = day.warehouse, day.options, day.sale_date, day.run_id
    listing = list_landing_files.with_options(**io)(landing, sale_date, options)
    sources = listing.files
    if listing.skipped:
        logger.info("skipped %d entries of the landing folder that are not landing files", len(listing.skipped))
    if not sources:
        if not allow_empty:
            raise EmptyLandingError(
                f"no landing files for {sale_date} under {landing}/sales/sale_date={sale_date}/ "
                "(--allow-empty, or allow_empty=True, publishes an empty day)"
            )
        logger.warning("no landing files for %s under %s: publishing an empty day", sale_date, landing)
    total_bytes = sum(int(source.identity.get("size", 0)) for source in sources)
    slots = _dask_threads()
    buckets = plan_buckets(total_bytes, settings.bucket_bytes, settings.max_buckets, slots)
    batches = plan_batches(sources, settings.batch_bytes, settings.batch_files, slots)
    logger.info(
        "%d landing files: %d batches, %d buckets (%d Dask threads)", len(sources), len(batches), buckets, slots
    )

    cache = ExtractionCache(warehouse, options, settings.cache_expiration)
    limits = ParseLimits(settings.max_record_lines, settings.max_record_bytes)
    validated = (
        validate_files.with_options(**io)
        .map(
            batches,
            unmapped(cache),
            warehouse,
            unmapped(options),
            sale_date,
            run_id,
            unmapped(rules),
            buckets,
            unmapped(limits),
        )
        .result()
        if batches
        else []
    )
    if validated:
        logger.info("extraction cache: %d of %d batches reused", sum(b.cached for b in validated), len(validated))
    rejected = [record for batch in validated for record in batch.rejected]
    if rejected and strict:
        names = ", ".join(entry.file.rsplit("/", 1)[-1] for entry in rejected)
        raise StrictModeError(f"--strict: {len(rejected)} unreadable landing file(s) for {sale_date}: {names}")
    accepted = [record for batch in validated for record in batch.accepted]

    buckets_done = (
        transform_bucket.with_options(**io)
        .map(range(buckets), warehouse, unmapped(options), sale_date, run_id, unmapped(rules))
        .result()
        if accepted
        else []
    )
    curated = [data_file for bucket in buckets_done for data_file in bucket.curated]
    summaries = region_summaries(totals for bucket in buckets_done for totals in bucket.totals)

    manifest = build_manifest(
        run_id=run_id,
        sale_date=sale_date,
        landing=landing,
        version=__version__,
        build=build,
        environment=settings.environment,
        accepted=accepted,
        rejected=rejected,
        reasons=reason_counts((batch.reasons for batch in validated), sum(b.duplicates for b in buckets_done)),
        regions=summaries,
        skipped=listing.skipped,
    )
    mart = mart_frame(summaries)
    quarantine = [f for batch in validated for f in batch.quarantine] + [
        f for bucket in buckets_done for f in bucket.quarantine
    ]
    files = {"curated": curated, "quarantine": quarantine}
    published = publish_day.with_options(**io)(manifest, mart, files, warehouse, options, sale_date, run_id)
    return published, mart


def _dask_threads() -> int:
    """Threads of the Dask workers this flow's tasks run on (1 when unknown): the parallelism the
    day's batches and buckets are planned for."""
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if not isinstance(runner, DaskTaskRunner):
        return 1
    try:
        return max(1, sum(runner.client.nthreads().values()))
    except Exception:  # planning must not fail a day: one slot is a valid plan
        return 1


def _shared_scheduler() -> TaskRunner[Any]:
    """A runner for subflows on this flow's own Dask scheduler (one cluster for the whole range)."""
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if isinstance(runner, SettingsDaskTaskRunner):
        return runner_at(runner.scheduler_address())
    if isinstance(runner, DaskTaskRunner) and runner.address:
        return runner_at(runner.address)
    return settings_runner()


@flow(
    name="retail-etl-backfill", task_runner=settings_runner(), validate_parameters=True, flow_run_name=backfill_run_name
)
def backfill(
    start: date,
    end: date,
    landing: str | None = None,
    warehouse: str | None = None,
    strict: bool = False,
    allow_empty: bool = False,
    regions: list[str] | None = None,
    max_quantity: int | None = None,
    max_unit_price: float | None = None,
    concurrency: Annotated[int, Field(ge=1)] | None = None,
) -> list[Manifest]:
    """Run `daily_sales_etl` for every date from start to end (inclusive) as subflows, up to
    `concurrency` days at once (default RETAIL_ETL_BACKFILL_CONCURRENCY) on this flow's Dask cluster.

    Each day is its own subflow run: published atomically with its own manifest, its lease keeping
    any other run of the day apart. Every day is attempted; the backfill fails at the end if any
    day failed. Returns the manifests in date order.
    """
    settings = load_settings()
    logger = get_run_logger()
    days = date_range(start, end)
    daily = daily_sales_etl.with_options(task_runner=_shared_scheduler())
    parameters = {
        "landing": landing,
        "warehouse": warehouse,
        "strict": strict,
        "allow_empty": allow_empty,
        "regions": regions,
        "max_quantity": max_quantity,
        "max_unit_price": max_unit_price,
    }
    width = min(settings.backfill_concurrency if concurrency is None else concurrency, len(days))
    logger.info("%d days, %d at a time", len(days), width)
    calls = {day: {"run_date": day, **parameters} for day in days}
    manifests: dict[date, Manifest] = {}
    failed: list[str] = []
    for done, (day, state) in enumerate(as_finished(daily, calls, width), start=1):
        if state.is_completed():
            manifest: Manifest = state.result()
            manifests[day] = manifest
            logger.info(
                "day %d/%d %s: %d rows in, %d published, %d quarantined",
                done,
                len(days),
                day,
                manifest.rows_in,
                manifest.rows_published,
                manifest.rows_quarantined,
            )
        else:
            failed.append(day.isoformat())
            logger.error("day %d/%d %s failed: %s", done, len(days), day, state.message)
    if failed:
        raise BackfillError(f"backfill: {len(failed)} of {len(days)} days failed: {', '.join(sorted(failed))}")
    return [manifests[day] for day in days]
