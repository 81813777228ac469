"""The Prefect flows: one sale date (`daily_sales_etl`) and a date range (`backfill`).

Run one day against a temporary local API and Dask cluster::

    from retail_etl.flows import daily_sales_etl
    from retail_etl.runtime import platform
    with platform():
        daily_sales_etl(run_date="2024-01-15", landing="./landing", warehouse="./warehouse")
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.utilities.annotations import unmapped

from .aggregate import mart_frame
from .contract import ROW_REASONS
from .manifest import build_manifest
from .runtime import dask_task_runner
from .settings import Settings
from .storage import location, normalize
from .tasks import (
    aggregate_region,
    configured_extract,
    io_options,
    list_landing_files,
    publish_manifest,
    result_storage,
    transform_bucket,
    validate_files,
)
from .validation import Rules
from .warehouse import StagedDay


class StrictModeError(RuntimeError):
    """--strict and at least one landing file could not be read."""


class EmptyLandingError(FileNotFoundError):
    """No landing file for the day: most likely a wrong path or a late upload, so the
    published day is not replaced by an empty one unless that is asked for."""


def default_run_date(scheduled: datetime | None, timezone: str) -> date:
    """The day before the scheduled time (now, if unscheduled), in the schedule's time zone.

    >>> default_run_date(datetime(2024, 3, 10, 3, 30, tzinfo=ZoneInfo("UTC")), "America/New_York")
    datetime.date(2024, 3, 8)
    """
    moment = pd.Timestamp(scheduled or datetime.now(tz=ZoneInfo("UTC")))
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return moment.tz_convert(ZoneInfo(timezone)).date() - timedelta(days=1)


def _rules(run_date: date, settings: Settings) -> Rules:
    return Rules(
        run_date=run_date,
        max_quantity=settings.max_quantity,
        max_unit_price=settings.max_unit_price,
        regions=frozenset(settings.regions) if settings.regions else None,
    )


def _quarantine_markdown(sale_date: str, manifest: dict) -> str:
    lines = [f"# Quarantine for {sale_date}", "",
             f"{manifest['rows_quarantined']} of {manifest['rows_in']} rows quarantined.", "",
             "| reason | rows |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in manifest["quarantine_reasons"].items()]
    if manifest["files_rejected"]:
        lines += ["", "## Rejected files", "", "| file | reason | detail |", "|---|---|---|"]
        lines += [f"| {f['file']} | {f['reason']} | {f['detail']} |" for f in manifest["files_rejected"]]
    return "\n".join(lines)


def plan_batches(sources: list, target_bytes: int) -> list[list[tuple[int, object]]]:
    """Group files (numbered in name order) into batches of about `target_bytes`, for coarse Dask tasks.

    >>> from types import SimpleNamespace as F
    >>> files = [F(identity={"size": size}) for size in (30, 30, 30, 100, 5)]
    >>> [[index for index, _ in batch] for batch in plan_batches(files, 64)]
    [[0, 1, 2], [3], [4]]
    """
    batches: list[list[tuple[int, object]]] = []
    size = 0
    for index, source in enumerate(sources):
        if not batches or size >= target_bytes:
            batches.append([])
            size = 0
        batches[-1].append((index, source))
        size += int(source.identity.get("size", 0))
    return batches


def plan_buckets(total_bytes: int, bucket_bytes: int, max_buckets: int) -> int:
    """How many transaction_id buckets the day's rows are spread over (each fits one worker).

    >>> plan_buckets(10, 64, 32), plan_buckets(640, 64, 32), plan_buckets(10**6, 64, 32)
    (1, 10, 32)
    """
    return max(1, min(max_buckets, -(-total_bytes // bucket_bytes)))


@flow(name="daily-sales-etl", task_runner=dask_task_runner(), validate_parameters=True)
def daily_sales_etl(run_date: date | None = None, landing: str | None = None, warehouse: str | None = None,
                    strict: bool = False, allow_empty: bool = False) -> dict:
    """Validate, enrich, aggregate and publish one sale date; returns the day's manifest.

    `run_date` defaults to the day before the scheduled time; `landing` and
    `warehouse` default to RETAIL_ETL_LANDING / RETAIL_ETL_WAREHOUSE. With
    `strict`, a landing file that cannot be read fails the day instead of being
    quarantined. A day with no landing file fails (the published day stays) unless
    `allow_empty`, which publishes an empty day.

    The work runs on Dask in three coarse stages that pass paths, never data:
    validate-files (per batch of landing files: cached extraction, field checks,
    rows staged in transaction_id buckets), transform-bucket (per bucket: the
    day-wide duplicate check, enrichment, curated rows staged per region) and
    aggregate-region (per region: the mart row). publish-manifest then swaps the
    staged day in.
    """
    settings = Settings()
    logger = get_run_logger()
    run_date = run_date or default_run_date(flow_run.scheduled_start_time, settings.schedule_timezone)
    sale_date = run_date.isoformat()
    landing = normalize(landing or settings.landing)
    warehouse = normalize(warehouse or settings.warehouse)
    run_id = str(flow_run.id)
    rules = _rules(run_date, settings)
    logger.info("processing %s from %s into %s", sale_date, landing, warehouse)

    storage = result_storage(warehouse, settings)
    io = io_options(settings) | {"result_storage": storage}
    sources = list_landing_files.with_options(**io)(landing, sale_date)
    if not sources:
        if not allow_empty:
            raise EmptyLandingError(f"no landing files for {sale_date} under {landing}/sales/sale_date={sale_date}/ "
                                    "(--allow-empty, or allow_empty=True, publishes an empty day)")
        logger.warning("no landing files for %s under %s: publishing an empty day", sale_date, landing)
    total_bytes = sum(int(source.identity.get("size", 0)) for source in sources)
    buckets = plan_buckets(total_bytes, settings.bucket_bytes, settings.max_buckets)
    batches = plan_batches(sources, settings.batch_bytes)

    day = StagedDay(location(warehouse), sale_date, run_id)
    try:
        extract = configured_extract(warehouse, settings, storage)
        outcomes = [outcome for batch in validate_files.with_options(**io).map(
            batches, unmapped(extract), warehouse, sale_date, run_id, unmapped(rules), buckets).result()
            for outcome in batch] if batches else []
        rejected = [outcome.rejected for outcome in outcomes if outcome.rejected]
        if rejected and strict:
            names = ", ".join(entry["file"].rsplit("/", 1)[-1] for entry in rejected)
            raise StrictModeError(f"--strict: {len(rejected)} unreadable landing file(s) for {sale_date}: {names}")
        accepted = [outcome for outcome in outcomes if not outcome.rejected]

        published = transform_bucket.with_options(**io).map(
            range(buckets), warehouse, sale_date, run_id, unmapped(rules)).result() if accepted else []
        regions = sorted({region for result in published for region in result["regions"]})
        summaries = aggregate_region.with_options(**io).map(
            regions, [day.warehouse.url_of(day.region_dir(region)) for region in regions]).result()

        reasons = Counter()
        for outcome in accepted:
            reasons.update(outcome.reasons)
        reasons["duplicate_transaction"] += sum(result["duplicates"] for result in published)
        manifest = build_manifest(
            run_id=run_id,
            sale_date=sale_date,
            landing=landing,
            rows_in=sum(outcome.rows for outcome in accepted),
            quarantine_reasons={reason: reasons[reason] for reason in ROW_REASONS if reasons[reason]},
            regions=summaries,
            files_accepted=[{"file": outcome.url, "rows": outcome.rows} for outcome in accepted],
            files_rejected=rejected,
        )
        mart = mart_frame(summaries)
        manifest["manifest_url"] = publish_manifest.with_options(**io)(manifest, mart, warehouse, sale_date, run_id)
    except BaseException:
        day.abort()
        raise

    create_table_artifact(
        key="retail-etl-region-figures",
        table=mart.to_dict("records"),
        description=f"Per-region figures for {sale_date} ({manifest['rows_published']} rows published)",
    )
    create_markdown_artifact(key="retail-etl-quarantine", markdown=_quarantine_markdown(sale_date, manifest),
                             description=f"Quarantine summary for {sale_date}")
    return manifest


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


@flow(name="retail-etl-backfill", validate_parameters=True)
def backfill(start: date, end: date, landing: str | None = None, warehouse: str | None = None,
             strict: bool = False, allow_empty: bool = False) -> list[dict]:
    """Run `daily_sales_etl` for every date from start to end (inclusive) as subflows.

    Every day is attempted; the backfill fails at the end if any day failed.
    """
    logger = get_run_logger()
    days = date_range(start, end)
    daily = daily_sales_etl.with_options(task_runner=dask_task_runner())
    manifests, failed = [], []
    for number, day in enumerate(days, start=1):
        state = daily(run_date=day, landing=landing, warehouse=warehouse, strict=strict, allow_empty=allow_empty,
                      return_state=True)
        if state.is_completed():
            manifest = state.result()
            manifests.append(manifest)
            logger.info("day %d/%d %s: %d rows in, %d published, %d quarantined", number, len(days), day,
                        manifest["rows_in"], manifest["rows_published"], manifest["rows_quarantined"])
        else:
            failed.append(day.isoformat())
            logger.error("day %d/%d %s failed: %s", number, len(days), day, state.message)
    if failed:
        raise RuntimeError(f"backfill: {len(failed)} of {len(days)} days failed: {', '.join(failed)}")
    return manifests
